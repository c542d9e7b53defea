"""Surface forms of KB entities, found in a document and merged into decision spans.

INSGENEL-R calls its generator only where the text admits a choice. This module finds every
place where some alias of some KB entity occurs (a token-level dictionary match, longest
first), and merges overlapping matches into :class:`DecisionSpan` objects; a span that holds
one mention and one entity is decided by copying, without a model.

The KB lists names only, so aliases are generated from each name (:func:`generate_aliases`):
the bare name without a parenthetical, without a leading "The", without a corporate suffix,
without a comma qualifier, a person's last and first names, acronyms. Each alias keeps the
family it came from: the decision step weighs a full name above a first name.
"""

from __future__ import annotations

import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from groundgraph.tools.kb import display_name

if TYPE_CHECKING:
    from groundgraph.tools.kb import KnowledgeBase


class AliasFamily(StrEnum):
    """Where an alias came from; the decision step trusts them differently."""

    NAME = "name"  # the entity's readable name
    BARE = "bare"  # name without a trailing "(qualifier)": "Iron Man (2008 film)" -> "Iron Man"
    NO_ARTICLE = "no_article"  # "The Home Depot" -> "Home Depot"
    NO_SUFFIX = "no_suffix"  # "Arsenal F.C." -> "Arsenal", "Lennar Corporation" -> "Lennar"
    NO_QUALIFIER = "no_qualifier"  # "Madison, Wisconsin" -> "Madison"; "United States of America" -> "United States"
    PARTIAL = "partial"  # a distinctive word of a longer name: "Stanford University" -> "Stanford"
    LAST_NAME = "last_name"  # persons: "Steve Jobs" -> "Jobs", "Maria Goeppert Mayer" -> "Goeppert Mayer"
    FIRST_NAME = "first_name"  # persons: "Steve Jobs" -> "Steve"
    SHORT_PERSON = "short_person"  # persons: "George W. Bush" -> "George Bush"
    NICKNAME = "nickname"  # persons: "Robert Nardelli" -> "Bob Nardelli" (and "Bob" as a first name)
    ACRONYM = "acronym"  # "United Nations" -> "UN", "U.N."
    ABBREVIATION = "abbreviation"  # a standard short form of the whole name: "California" -> "Calif."


#: aliases that name the entity fully; the rest are partial and need support from context
FULL_FAMILIES = frozenset({AliasFamily.NAME, AliasFamily.BARE, AliasFamily.NO_ARTICLE,
                           AliasFamily.NO_SUFFIX, AliasFamily.NO_QUALIFIER,
                           AliasFamily.SHORT_PERSON, AliasFamily.NICKNAME, AliasFamily.ABBREVIATION})
ALL_FAMILIES = frozenset(AliasFamily)

# Corporate and club suffixes that a text often leaves out ("Arsenal" for "Arsenal F.C.").
_SUFFIXES = (
    "Inc", "Inc.", "Incorporated", "Corp", "Corp.", "Corporation", "Co", "Co.", "Company", "Ltd",
    "Ltd.", "Limited", "plc", "PLC", "LLC", "L.L.C.", "AG", "SA", "S.A.", "N.V.", "GmbH",
    "F.C.", "FC", "A.F.C.", "AFC", "C.F.", "CF", "S.C.", "SC", "RFC", "R.F.C.", "Group",
    "Holdings", "Entertainment",
)
_SUFFIX_WORDS = frozenset({"Inc", "Corp", "Co", "Ltd", "plc", "PLC", "LLC"})
_SUFFIX_RE = re.compile(r"^(.*?\S)[\s,]+(?:" + "|".join(re.escape(s) for s in _SUFFIXES) + r")$")
# Lower-case particles that belong inside person names ("Ludwig van Beethoven").
_NAME_PARTICLES = frozenset({"de", "da", "del", "della", "der", "den", "di", "du", "la", "le",
                             "van", "von", "bin", "ibn", "al", "el", "y", "dos", "das", "ter"})
_GENERATIONAL = frozenset({"Jr.", "Jr", "Sr.", "Sr", "II", "III", "IV"})
# Function words that acronyms skip ("Bank of America" -> "BoA" is not generated; "BA" is not either).
_ACRONYM_SKIP = frozenset({"of", "the", "and", "for", "in", "on", "at", "de", "&"})

# Common English given-name short forms (general knowledge, not drawn from any benchmark).
_NICKNAMES: dict[str, tuple[str, ...]] = {
    "Robert": ("Bob", "Rob", "Bobby"), "William": ("Bill", "Will", "Billy"), "James": ("Jim", "Jimmy"),
    "Joseph": ("Joe",), "Michael": ("Mike",), "Daniel": ("Dan", "Danny"), "David": ("Dave",),
    "Thomas": ("Tom", "Tommy"), "Charles": ("Chuck", "Charlie"), "Richard": ("Rick", "Dick", "Rich"),
    "Stephen": ("Steve",), "Steven": ("Steve",), "Christopher": ("Chris",), "Anthony": ("Tony",),
    "Edward": ("Ed", "Ted", "Eddie"), "Benjamin": ("Ben",), "Samuel": ("Sam",),
    "Nicholas": ("Nick",), "Patrick": ("Pat",), "Peter": ("Pete",), "Lawrence": ("Larry",),
    "Gerald": ("Jerry",), "Jeffrey": ("Jeff",), "Gregory": ("Greg",), "Matthew": ("Matt",),
    "Andrew": ("Andy",), "Timothy": ("Tim",), "Kenneth": ("Ken",), "Ronald": ("Ron",),
    "Donald": ("Don",), "Douglas": ("Doug",), "Frederick": ("Fred",), "Henry": ("Hank", "Harry"),
    "John": ("Jack", "Johnny"), "Jonathan": ("Jon",), "Alexander": ("Alex",), "Alejandro": ("Alex",),
    "Elizabeth": ("Liz", "Beth"), "Katherine": ("Kate", "Katy"), "Catherine": ("Kate", "Cathy"),
    "Jacqueline": ("Jackie",), "Susan": ("Sue",), "Jennifer": ("Jen", "Jenny"),
    "Margaret": ("Maggie", "Peggy"), "Victoria": ("Vicky",), "Cornelis": ("Cor",),
}

_WORD = re.compile(r"\w+", re.UNICODE)

# Weekdays and months are dates, which entity-linking conventions (AIDA, ELEVANT) never link; alone they
# only ever match a namesake ("Tuesday" -> Tuesday Weld, "November" -> the month as a KB entry).
_CALENDAR_WORDS = frozenset({
    "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday", "january", "february",
    "march", "april", "may", "june", "july", "august", "september", "october", "november", "december",
})

# The AP style abbreviations of US state names, as news datelines use them ("DETROIT, Mich."); "Miss." is
# left out (the title); states AP never shortens (Texas, Ohio...) have none.
_STATE_ABBREVIATIONS: dict[str, str] = {
    "Alabama": "Ala.", "Arizona": "Ariz.", "Arkansas": "Ark.", "California": "Calif.", "Colorado": "Colo.",
    "Connecticut": "Conn.", "Delaware": "Del.", "Florida": "Fla.", "Georgia": "Ga.", "Illinois": "Ill.",
    "Indiana": "Ind.", "Kansas": "Kan.", "Kentucky": "Ky.", "Louisiana": "La.", "Maryland": "Md.",
    "Massachusetts": "Mass.", "Michigan": "Mich.", "Minnesota": "Minn.", "Missouri": "Mo.", "Montana": "Mont.",
    "Nebraska": "Neb.", "Nevada": "Nev.", "New Hampshire": "N.H.", "New Jersey": "N.J.", "New Mexico": "N.M.",
    "New York": "N.Y.", "North Carolina": "N.C.", "North Dakota": "N.D.", "Oklahoma": "Okla.", "Oregon": "Ore.",
    "Pennsylvania": "Pa.", "Rhode Island": "R.I.", "South Carolina": "S.C.", "South Dakota": "S.D.",
    "Tennessee": "Tenn.", "Vermont": "Vt.", "Virginia": "Va.", "Washington": "Wash.",
    "West Virginia": "W.Va.", "Wisconsin": "Wis.", "Wyoming": "Wyo.",
}

# Nationality and regional adjectives (general knowledge, a closed class): in a longer name they say where
# the thing is ("Iraqi Governing Council", "Indian Army"), so alone they are never that name's partial alias.
_DEMONYMS = frozenset({
    "afghan", "african", "albanian", "algerian", "american", "andorran", "angolan", "arab", "arabian",
    "argentine", "argentinian", "armenian", "asian", "australian", "austrian", "azerbaijani", "bahraini",
    "bangladeshi", "belarusian", "belgian", "bolivian", "bosnian", "brazilian", "british", "bulgarian", "burmese",
    "cambodian", "cameroonian", "canadian", "caribbean", "chadian", "chilean", "chinese", "colombian",
    "congolese", "croatian", "cuban", "cypriot", "czech", "danish", "dutch", "ecuadorian", "egyptian", "emirati",
    "english", "eritrean", "estonian", "ethiopian", "european", "filipino", "finnish", "french", "georgian",
    "german", "ghanaian", "greek", "guatemalan", "haitian", "honduran", "hungarian", "icelandic", "indian",
    "indonesian", "iranian", "iraqi", "irish", "israeli", "italian", "ivorian", "jamaican", "japanese",
    "jordanian", "kazakh", "kenyan", "korean", "kosovar", "kurdish", "kuwaiti", "kyrgyz", "laotian", "latin",
    "latvian", "lebanese", "liberian", "libyan", "lithuanian", "luxembourgish", "macedonian", "malagasy",
    "malaysian", "malian", "maltese", "mexican", "moldovan", "mongolian", "montenegrin", "moroccan", "mozambican",
    "namibian", "nepalese", "nigerian", "nigerien", "norwegian", "omani", "pakistani", "palestinian",
    "panamanian", "paraguayan", "persian", "peruvian", "polish", "portuguese", "qatari", "romanian", "russian",
    "rwandan", "saudi", "scottish", "senegalese", "serbian", "singaporean", "slovak", "slovenian", "somali",
    "spanish", "sudanese", "swedish", "swiss", "syrian", "taiwanese", "tajik", "tanzanian", "thai", "tibetan",
    "tunisian", "turkish", "turkmen", "ugandan", "ukrainian", "uruguayan", "uzbek", "venezuelan", "vietnamese",
    "welsh", "yemeni", "zambian", "zimbabwean"
})


# --- normalisation and tokens -----------------------------------------------------------------
def fold(text: str) -> str:
    """Strip diacritics and unify quotes so 'Tomé' matches 'Tome' and ’ matches '."""
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'")
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


@dataclass(frozen=True, slots=True)
class Token:
    """A word of the text with its character offsets and the punctuation before it."""

    text: str
    start: int
    end: int
    gap: str  # punctuation between the previous word and this one, spaces removed


def tokenize(text: str) -> list[Token]:
    """Words (\\w+ runs) with offsets; the punctuation between two words is kept as ``gap``."""
    tokens: list[Token] = []
    prev_end = 0
    for m in _WORD.finditer(text):
        gap = re.sub(r"\s+", "", text[prev_end : m.start()]) if tokens else ""
        tokens.append(Token(m.group(), m.start(), m.end(), gap))
        prev_end = m.end()
    return tokens


def _gap_key(gap: str) -> str:
    # A space, a hyphen and a period between words are interchangeable ("St. Louis", "St Louis",
    # "CAC-40", "CAC 40"); other punctuation (",", "'", "&") must match.
    return "" if gap in ("", "-", ".", "\u2013") else fold(gap)


def surface_key(surface: str, *, lower: bool = False) -> tuple[str, ...]:
    """The lookup key of a surface form: folded words joined with their significant gaps."""
    parts: list[str] = []
    for i, tok in enumerate(tokenize(fold(surface))):
        g = _gap_key(tok.gap)
        if i and g:
            parts.append(g)
        parts.append(tok.text.lower() if lower else tok.text)
    return tuple(parts)


# --- aliases ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Alias:
    """One surface form of one entity."""

    surface: str
    entity_id: str
    family: AliasFamily


def strip_qualifier(name: str) -> str:
    """'Iron Man (2008 film)' -> 'Iron Man'."""
    return re.sub(r"\s*\([^)]*\)\s*$", "", name).strip()


def _is_capitalised(word: str) -> bool:
    return word[:1].isupper()


@dataclass
class NameStats:
    """Word statistics of the KB's names, to tell person names from others without types.

    ``first`` / ``last`` count the first / last words of entities described as persons;
    ``words`` counts, per word, the names that contain it. All come from the KB itself.
    """

    first: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    last: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    words: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @classmethod
    def from_names(cls, entities: Iterable[tuple[str, str]]) -> NameStats:
        """From (name, description) pairs."""
        stats = cls()
        for name, description in entities:
            shown = strip_qualifier(display_name(name))
            for w in set(shown.replace(",", " ").split()):
                stats.words[fold(w)] += 1
            if describes_person(description):
                words = [w for w in shown.split(",")[0].split() if w not in _GENERATIONAL]
                if len(words) >= 2 and _is_capitalised(words[0]) and len(words[0].rstrip(".")) > 1:
                    stats.first[fold(words[0])] += 1
                    stats.last[fold(words[-1])] += 1
        return stats

    def is_first_name(self, word: str) -> bool:
        w = fold(word)
        if re.fullmatch(r"[A-Z]\.", word):  # an initial: "T. S. Eliot"
            return True
        # mostly seen opening person names, not inside other names ("American" is not)
        return self.first[w] >= 1 and self.first[w] * 2 >= self.words[w] - self.first[w]

    def is_rare(self, word: str) -> bool:
        return self.words[fold(word)] <= 2

    def is_last_name(self, word: str) -> bool:
        w = fold(word)
        # a known surname, or a word rare among names ("Nordegren"); not a head like "Airport"
        return self.last[w] >= 1 or self.words[w] <= 3


def looks_like_person_name(name: str, stats: NameStats) -> bool:
    """A name-only test: 2-5 capitalised words (or name particles), opening with a first name
    and closing with a plausible surname; a comma qualifier means a place ("Madison, Wisconsin").
    """
    bare = strip_qualifier(name)
    if "," in bare and bare.split(",", 1)[1].strip() not in _GENERATIONAL:
        return False
    words = [w for w in bare.replace(",", " ").split() if w not in _GENERATIONAL]
    if not 2 <= len(words) <= 5 or any(ch.isdigit() for ch in name):
        return False
    if words[-1] in _SUFFIXES:  # "Arsenal F.C.", "Carl Zeiss AG"
        return False
    first_ok = stats.is_first_name(words[0]) and stats.is_last_name(words[-1])
    # an unknown first name still passes before a surname seen on described persons ("Tiger Woods")
    rare_ok = stats.is_rare(words[0]) and stats.last[fold(words[-1])] >= 1
    if not (first_ok or rare_ok):
        return False
    return all(w in _NAME_PARTICLES or _is_capitalised(w) for w in words[1:])


def describes_person(description: str) -> bool:
    """MEL-style descriptions ('Name: ... Sex: male. Birth: ...') mark persons."""
    return "Sex:" in description or "Occupation:" in description


def _person_parts(name: str) -> tuple[str, str, list[str]] | None:
    """(first, last, middle words) of a person's name, or None when it has one word."""
    words = [w for w in strip_qualifier(name).split(",")[0].split() if w not in _GENERATIONAL]
    if len(words) < 2:
        return None
    first = words[0]
    # The last name keeps its particles: "Ludwig van Beethoven" -> "van Beethoven" and "Beethoven".
    i = len(words) - 1
    while i > 1 and words[i - 1] in _NAME_PARTICLES:
        i -= 1
    last = " ".join(words[i:])
    return first, last, words[1:i]


def acronyms(name: str) -> list[str]:
    """'United Nations' -> ['UN', 'U.N.']; 'United States of America' also -> ['US', 'U.S.'].

    Only for names of 2+ capitalised words; the part before " of " gives a second acronym
    because news writes "U.S." far more often than "U.S.A.".
    """
    out: list[str] = []
    heads = [name] + ([name.split(" of ")[0]] if " of " in name else [])
    for head in heads:
        words = [w for w in re.split(r"[\s\-]+", head) if w]
        initials = [w[0] for w in words if w.lower() not in _ACRONYM_SKIP and w[:1].isalpha()]
        if len(initials) < 2 or not all(c.isupper() for c in initials):
            continue
        out += ["".join(initials), ".".join(initials) + "."]
    return list(dict.fromkeys(out))


def content_words(name: str) -> list[str]:
    """Capitalised words of a name that could stand for it alone (no function words, 3+ letters)."""
    words = re.findall(r"[\w'’.&-]+", strip_qualifier(name))
    return [w.strip(".") for w in words
            if w[:1].isupper() and len(w.strip(".")) >= 3 and w.lower() not in _ACRONYM_SKIP
            and not w.strip(".").isdigit()]


def generate_aliases(entity_id: str, name: str, *, person: bool,
                     families: frozenset[AliasFamily] = ALL_FAMILIES,
                     word_frequency: Callable[[str], int] | None = None,
                     max_partial_frequency: int = 3) -> list[Alias]:
    """Every alias of one entity, each with its family; duplicates (same surface) keep the first.

    ``word_frequency(word)`` counts the KB names that contain a word: a word of a non-person
    name becomes a PARTIAL alias only when it is rare among names ("Stanford" yes,
    "University" no). Without it no partial aliases are made.
    """
    shown = display_name(name)
    out: dict[str, AliasFamily] = {}

    def add(surface: str, family: AliasFamily) -> None:
        surface = surface.strip().strip(",")
        if family in families and surface and _WORD.search(surface) and surface not in out:
            out[surface] = family

    add(shown, AliasFamily.NAME)
    bare = strip_qualifier(shown)
    add(bare, AliasFamily.BARE)
    if not person and shown in _STATE_ABBREVIATIONS:
        add(_STATE_ABBREVIATIONS[shown], AliasFamily.ABBREVIATION)
    for base in dict.fromkeys([shown, bare]):
        if base.startswith("The ") and len(base) > 4:
            add(base[4:], AliasFamily.NO_ARTICLE)
        m = _SUFFIX_RE.match(base)
        if m and len(m.group(1)) > 2:
            add(m.group(1).rstrip(","), AliasFamily.NO_SUFFIX)
        words = base.split()
        if len(words) > 1 and words[-1] in _GENERATIONAL:  # "Martin Luther King Jr."
            add(" ".join(words[:-1]).rstrip(","), AliasFamily.NO_SUFFIX)
        if "," in base and not person:
            head = base.split(",")[0].strip()
            if len(head) > 2:
                add(head, AliasFamily.NO_QUALIFIER)
        if " of " in base and not person:  # "United States of America" -> "United States"
            head = base.split(" of ")[0].strip()
            if len(head.split()) >= 2 and all(_is_capitalised(w) for w in head.split()):
                add(head, AliasFamily.NO_QUALIFIER)
    if person:
        parts = _person_parts(bare)
        if parts:
            first, last, middle = parts
            if middle:
                add(f"{first} {last}", AliasFamily.SHORT_PERSON)
                add(" ".join([*middle, last]), AliasFamily.LAST_NAME)  # "Goeppert Mayer"
            if "," in bare:
                add(bare.split(",")[0], AliasFamily.SHORT_PERSON)
            add(last, AliasFamily.LAST_NAME)
            if " " in last:  # "van Beethoven" -> also "Beethoven"
                add(last.split()[-1], AliasFamily.LAST_NAME)
            if len(first.rstrip(".")) > 1:
                add(first, AliasFamily.FIRST_NAME)
            for nick in _NICKNAMES.get(first, ()):
                add(f"{nick} {last}", AliasFamily.NICKNAME)
                add(nick, AliasFamily.FIRST_NAME)
    else:
        for acro in acronyms(bare):
            add(acro, AliasFamily.ACRONYM)
        words = content_words(bare)
        if word_frequency is not None and len(bare.split()) > 1:
            for w in words:
                if word_frequency(w) <= max_partial_frequency and fold(w).lower() not in _DEMONYMS:
                    add(w, AliasFamily.PARTIAL)
    return [Alias(s, entity_id, f) for s, f in out.items()]


# --- the alias table and the matcher ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AliasHit:
    """An entity a mention may refer to, through which alias family."""

    entity_id: str
    family: AliasFamily
    exact_case: bool  # False when found only by the case-insensitive key


@dataclass(frozen=True)
class Mention:
    """A stretch of text that equals some alias, with every entity that alias can name."""

    start: int
    end: int
    text: str
    hits: tuple[AliasHit, ...]

    @property
    def entity_ids(self) -> list[str]:
        return list(dict.fromkeys(h.entity_id for h in self.hits))


class AliasTable:
    """Surface-form keys -> aliases, for token-level dictionary matching."""

    def __init__(self, aliases: Iterable[Alias] = ()) -> None:
        self._exact: dict[tuple[str, ...], list[Alias]] = defaultdict(list)
        self._lower: dict[tuple[str, ...], list[Alias]] = defaultdict(list)
        self._max_len = 1
        self.size = 0
        self.persons: set[str] = set()  # entity ids judged to be persons when the table was built
        self.names: dict[str, str] = {}  # entity id -> readable name
        for a in aliases:
            self.add(a)

    def add(self, alias: Alias) -> None:
        key = surface_key(alias.surface)
        if not key:
            return
        self._exact[key].append(alias)
        self._lower[tuple(k.lower() for k in key)].append(alias)
        self._max_len = max(self._max_len, len(key))
        self.size += 1

    @classmethod
    def from_entities(cls, entities: Iterable[tuple[str, str, str]], *,
                      families: frozenset[AliasFamily] = ALL_FAMILIES,
                      stats: NameStats | None = None,
                      max_partial_frequency: int = 3) -> AliasTable:
        """Build from (id, name, description) triples; persons are told apart as documented."""
        items = list(entities)
        if stats is None:
            stats = NameStats.from_names((n, d) for _, n, d in items)
        frequency = stats.words
        table = cls()
        for eid, name, desc in items:
            table.names[eid] = display_name(name)
            person = describes_person(desc) or looks_like_person_name(display_name(name), stats)
            if person:
                table.persons.add(eid)
            for alias in generate_aliases(eid, name, person=person, families=families,
                                          word_frequency=lambda w: frequency[fold(w)],
                                          max_partial_frequency=max_partial_frequency):
                table.add(alias)
        return table

    @classmethod
    def from_kb(cls, kb: KnowledgeBase, **kwargs: Any) -> AliasTable:
        """Build from every entity of a built :class:`KnowledgeBase` (names and descriptions)."""
        ids = list(dict.fromkeys(eid for _, eid in kb.iter_surface_forms()))
        entities = kb.get_many(ids)
        return cls.from_entities(((e.id, e.name, e.description) for e in entities), **kwargs)

    def aliases_of(self, surface: str) -> list[Alias]:
        return list(self._exact.get(surface_key(surface), []))

    def find(self, text: str, *, case_insensitive: Callable[[Sequence[Token]], bool] | None = None,
             allowed: Callable[[Alias], bool] | None = None,
             extend_suffixes: bool = True) -> list[Mention]:
        """Every maximal-at-its-start match of an alias in ``text``.

        At each word, the longest alias starting there is taken (shorter ones starting at the
        same word are dropped: "New York City" wins over "New York"); matches starting at later
        words may still overlap it and are merged by :func:`decision_spans`.
        ``case_insensitive(tokens)`` says whether a lower-cased match is acceptable for these
        words (e.g. an all-capitals headline); ``allowed`` filters aliases (e.g. to the
        retrieved candidates). A mention takes in a hashtag's "#" and, with
        ``extend_suffixes``, a corporate suffix right after it ("Amgen Inc.").
        """
        tokens = tokenize(text)
        keys = [fold(t.text) for t in tokens]
        gaps = [_gap_key(t.gap) for t in tokens]
        mentions: list[Mention] = []
        for i in range(len(tokens)):
            key: list[str] = []
            spans: list[tuple[int, tuple[str, ...]]] = []
            for j in range(i, len(tokens)):
                if j > i and gaps[j]:
                    key.append(gaps[j])
                key.append(keys[j])
                if len(key) > self._max_len:
                    break
                spans.append((j, tuple(key)))
            for j, k in reversed(spans):
                if i == j and keys[i].lower() in _CALENDAR_WORDS:
                    continue
                hits = self._hits(k, tokens[i : j + 1], case_insensitive, allowed)
                start, end = tokens[i].start, tokens[j].end
                if hits and _inside_compound(text, start, end):
                    # a part of a longer name never comes out of a hyphenated word ("Wal" of "Wal-Mart");
                    # a full name may ("Atlanta-based")
                    hits = [h for h in hits if h.family in FULL_FAMILIES]
                if hits and not (end < len(text) and text[end] == "."):
                    # an abbreviation needs its period: "Mass" is a church service, "Mass." the state
                    hits = [h for h in hits if h.family is not AliasFamily.ABBREVIATION]
                if hits:
                    # keep a final period that belongs to the alias ("U.S.", "Inc.")
                    if end < len(text) and text[end] == "." and any(
                            fold(h_surface).endswith(".") for h_surface in self._surfaces(k)):
                        end += 1
                    if start > 0 and text[start - 1] == "#":
                        start -= 1
                    if extend_suffixes and j + 1 < len(tokens) and tokens[j + 1].text in _SUFFIX_WORDS \
                            and tokens[j + 1].gap in ("", ",") and end <= tokens[j + 1].start:
                        end = tokens[j + 1].end
                        if end < len(text) and text[end] == ".":
                            end += 1
                    mentions.append(Mention(start, end, text[start:end], tuple(hits)))
                    break
        return mentions

    def _surfaces(self, key: tuple[str, ...]) -> Iterator[str]:
        for a in self._exact.get(key, []):
            yield a.surface
        for a in self._lower.get(tuple(k.lower() for k in key), []):
            yield a.surface

    def _hits(self, key: tuple[str, ...], toks: Sequence[Token],
              case_insensitive: Callable[[Sequence[Token]], bool] | None,
              allowed: Callable[[Alias], bool] | None) -> list[AliasHit]:
        found: dict[str, AliasHit] = {}
        for a in self._exact.get(key, []):
            if (allowed is None or allowed(a)) and a.entity_id not in found:
                found[a.entity_id] = AliasHit(a.entity_id, a.family, True)
        if case_insensitive is not None and case_insensitive(toks):
            for a in self._lower.get(tuple(k.lower() for k in key), []):
                if (allowed is None or allowed(a)) and a.entity_id not in found:
                    found[a.entity_id] = AliasHit(a.entity_id, a.family, False)
        # Within one surface, an entity found by its full name outranks one found by a part.
        return sorted(found.values(), key=lambda h: (h.family not in FULL_FAMILIES, not h.exact_case))


def _inside_compound(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is glued by a hyphen to a word before or after it."""
    after = end + 1 < len(text) and text[end] in "-\u2010\u2011" and text[end + 1].isalnum()
    before = start >= 2 and text[start - 1] in "-\u2010\u2011" and text[start - 2].isalnum()
    return after or before


# --- decision spans ------------------------------------------------------------------------
@dataclass(frozen=True)
class Option:
    """One (mention, entity) choice inside a decision span."""

    start: int
    end: int
    mention: str
    entity_id: str
    family: AliasFamily
    exact_case: bool


@dataclass
class DecisionSpan:
    """Overlapping mentions merged: the unit the decision step resolves at once."""

    start: int
    end: int
    mentions: list[Mention] = field(default_factory=list)

    @property
    def options(self) -> list[Option]:
        return [Option(m.start, m.end, m.text, h.entity_id, h.family, h.exact_case)
                for m in self.mentions for h in m.hits]

    @property
    def is_copy(self) -> bool:
        """One mention naming one entity: decided without a model."""
        return len(self.mentions) == 1 and len(self.mentions[0].hits) == 1


def drop_nested(mentions: Sequence[Mention]) -> list[Mention]:
    """Remove mentions lying strictly inside a longer one ("Steve" inside "Steve Jobs")."""
    out = []
    for m in mentions:
        inside = any(o is not m and o.start <= m.start and m.end <= o.end
                     and (o.end - o.start) > (m.end - m.start) for o in mentions)
        if not inside:
            out.append(m)
    return out


def decision_spans(mentions: Sequence[Mention], *, keep_nested: bool = False) -> list[DecisionSpan]:
    """Merge overlapping mentions into decision spans, in text order.

    Nested mentions are dropped first unless ``keep_nested``: a longer match is the more
    specific reading, and keeping "Steve" inside "Steve Jobs" would only add model calls.
    Crossing matches ("New York Times Square": "New York Times" / "Times Square") stay in one
    span, as alternatives.
    """
    ms = sorted(mentions if keep_nested else drop_nested(mentions), key=lambda m: (m.start, -m.end))
    spans: list[DecisionSpan] = []
    for m in ms:
        if spans and m.start < spans[-1].end:
            spans[-1].mentions.append(m)
            spans[-1].end = max(spans[-1].end, m.end)
        else:
            spans.append(DecisionSpan(m.start, m.end, [m]))
    return spans


def all_caps(tokens: Sequence[Token]) -> bool:
    """Words in capitals ("NEW YORK", a dateline) may match a name case-insensitively."""
    letters = "".join(t.text for t in tokens)
    return len(letters) > 3 and letters.isupper()


def caps_or_capitalised_phrase(tokens: Sequence[Token]) -> bool:
    """Capitals, or a phrase of 2+ words opening with a capital ("Isle of Wight festival",
    "Grand Rapids airport"): later words of a name are often written in lower case."""
    return all_caps(tokens) or (len(tokens) >= 2 and tokens[0].text[:1].isupper())


def all_caps_or_lower(tokens: Sequence[Token]) -> bool:
    """Also lower-case words of 2+ words or 5+ letters ("miami heat", "facebook"): for texts
    that ignore case, such as tweets."""
    letters = "".join(t.text for t in tokens)
    if caps_or_capitalised_phrase(tokens):
        return True
    return letters.islower() and (len(tokens) >= 2 or len(letters) >= 5)


def writes_in_lower_case(text: str) -> bool:
    """Whether a text ignores capitalisation (many tweets): then lower-case words may be names.

    True when at least half its sentences open in lower case, or under 8% of its words are
    capitalised.
    """
    pieces = [p for p in re.split(r"(?<=[.!?])\s+|\n+", text) if p.strip()]
    openings = [re.search(r"[A-Za-z]", p) for p in pieces]
    lower = sum(1 for m in openings if m and m.group().islower())
    words = re.findall(r"[A-Za-z][\w']*", text)
    capitalised = sum(w[0].isupper() for w in words)
    return lower * 2 >= max(1, len(pieces)) or capitalised < 0.08 * max(1, len(words))


def case_policy(text: str) -> Callable[[Sequence[Token]], bool]:
    """The case-insensitive test to use for ``text``: capitals only, or also lower case."""
    return all_caps_or_lower if writes_in_lower_case(text) else caps_or_capitalised_phrase
