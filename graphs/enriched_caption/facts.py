"""Text helpers of the enriched_caption graph: sentences, passage windows, who/what/when/where/why facts,
and the guard that checks an LLM caption against its sources. Pure functions, no models.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
_MONTH = r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sept?(?:ember)?|" \
         r"Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)\.?"
DATE_RE = re.compile(
    rf"\b(?:{_MONTH}\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}}|\d{{1,2}}\s+{_MONTH}\s+\d{{4}}|{_MONTH}\s+\d{{4}})\b")
YEAR_RE = re.compile(r"\b(1[5-9]\d\d|20\d\d)\b")
# "WASHINGTON, D.C. — ", "CAPE CANAVERAL, Florida — ": the place a news story was filed from
DATELINE_RE = re.compile(r"^\s*([A-Z][A-Z .'’\-]{1,40}(?:,\s*[^—–\n]{1,40}?)?)\s*(?:—|–|--)\s*")
_ABBREV = {"mr", "mrs", "ms", "dr", "st", "jr", "sr", "no", "gen", "lt", "col", "capt", "sgt", "rev", "prof", "mt",
           "a.m", "p.m", "e.g", "i.e", "etc", "vs", "inc", "co", "corp", "ltd"}
# capitalised only because they open a sentence: role nouns and common openers before a name
_STARTERS = {"under", "after", "before", "from", "during", "with", "for", "as", "when", "while", "since", "owner",
             "volunteer", "photographer", "supervisor", "councillor", "curator", "judges", "staff", "residents",
             "scientists", "researchers", "officials", "astronomers", "doctors", "farmers", "workers", "employers",
             "managing", "director", "president", "minister", "chairman", "professor", "senator", "mayor"}
_CONNECTORS = {"of", "the", "de", "van", "von", "der", "den", "al", "bin", "la", "le", "du", "and"}
_NOT_NAMES = {*MONTHS, "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday", "The", "A",
              "An", "In", "On", "At", "From", "After", "Before", "His", "Her", "Their", "Its", "It", "He", "She",
              "They", "We", "I", "This", "That", "These", "Those", "There", "Each", "Many", "More", "Most", "Some"}


def split_sentences(text: str) -> list[str]:
    """Sentences of a news text; abbreviations (Dr., a.m.) and initials (U.S., D.C.) do not end one."""
    pieces = re.split(r"(?<=[.!?])\s+(?=[A-Z0-9\"“‘(])", " ".join(text.split()))
    out: list[str] = []
    for piece in pieces:
        if out:
            last = out[-1].rsplit(None, 1)[-1].lower().rstrip(".")
            if last in _ABBREV or re.fullmatch(r"(?:[a-z]\.)*[a-z]", last):
                out[-1] = f"{out[-1]} {piece}"
                continue
        out.append(piece)
    return [s.strip() for s in out if s.strip()]


def strip_dateline(sentence: str) -> tuple[str, str]:
    """(sentence without its dateline, the dateline place in title case or '')."""
    m = DATELINE_RE.match(sentence)
    if not m:
        return sentence, ""
    place = m.group(1).strip()
    head, _, rest = place.partition(",")
    shown = head.title() + (f",{rest}" if rest else "")
    return sentence[m.end():].strip(), shown.replace("D.c.", "D.C.")


def windows(sentences: Sequence[str], size: int, stride: int = 1) -> list[tuple[int, int]]:
    """[start, end) sentence ranges of sliding windows; one window if the text is shorter than ``size``."""
    n = len(sentences)
    if n == 0:
        return []
    if n <= size:
        return [(0, n)]
    starts = list(range(0, n - size + 1, stride))
    if starts[-1] != n - size:
        starts.append(n - size)
    return [(s, s + size) for s in starts]


def format_date(iso: str) -> str:
    """'1998-03-05' -> 'March 5, 1998'; '1998-12' -> 'December 1998'; anything else unchanged."""
    m = re.fullmatch(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?", iso.strip())
    if not m:
        return iso.strip()
    year, month, day = m.groups()
    if not month or not 1 <= int(month) <= 12:
        return year
    name = MONTHS[int(month) - 1]
    return f"{name} {int(day)}, {year}" if day else f"{name} {year}"


def _tokens(text: str) -> list[str]:
    """Words, numbers and punctuation marks (a comma or dash ends a name)."""
    return re.findall(r"[A-Za-zÀ-ÖØ-öø-ÿ][\w’'\-.]*\w|[A-Za-zÀ-ÖØ-öø-ÿ]|\d[\d,.]*\d|\d|[^\w\s]", text)


def entities(text: str) -> list[str]:
    """Capitalised multi-word names (and single capitalised words not opening a sentence), in order."""
    found: list[str] = []
    for sentence in split_sentences(text):
        sentence, _ = strip_dateline(sentence)
        toks = _tokens(sentence)
        i = 0
        while i < len(toks):
            if toks[i][0].isupper() and toks[i] not in _NOT_NAMES:
                j = i + 1
                while j < len(toks) and (toks[j][0].isupper() or toks[j][0].isdigit() and len(toks[j]) <= 3
                                         or (toks[j].lower() in _CONNECTORS and j + 1 < len(toks)
                                             and toks[j + 1][0].isupper())):
                    j += 1  # "Falcon 9", "Space Launch Complex 40", "Museum of Antiquities" stay one name
                start = i + 1 if i == 0 and toks[i].lower() in _STARTERS else i  # "Owner Lena Okafor"
                name = " ".join(toks[start:j])
                if name and (j - start > 1 or start > 0):  # a lone capitalised first word is just sentence case
                    found.append(name)
                i = j
            else:
                i += 1
    return found


def salient_entities(article_text: str, lead: str, k: int = 3) -> list[str]:
    """Names ranked by how often the article mentions them (their last word counts too), lead first on ties."""
    names = entities(article_text)
    if not names:
        return []
    words = Counter(w for n in names for w in n.split())
    lead_names = set(entities(lead))
    score: dict[str, float] = {}
    for n in dict.fromkeys(names):
        score[n] = names.count(n) + words[n.split()[-1]] * 0.5 + (2.0 if n in lead_names else 0.0) \
            + 1.0 * (len(n.split()) > 1)
    order = sorted(score, key=lambda n: -score[n])
    out: list[str] = []
    for n in order:  # drop a name contained in a better one ("Collins" within "Eileen Collins")
        if not any(n in o for o in out):
            out.append(n)
    return out[:k]


_WHY_RE = re.compile(r"\b(because|so that|in order to|to help|aimed at|after|as part of|which will|to warn|to "
                     r"save|to keep|to show|to protect|to deploy|could help|plans to|will)\b", re.I)


def extract_facts(article: dict[str, Any], passages: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """who / what / when / where / why of a matched article, each with where it came from."""
    sentences = split_sentences(article.get("text", ""))
    lead_raw = sentences[0] if sentences else ""
    lead, dateline = strip_dateline(lead_raw)
    ranked = [p for p in passages if p.get("kind") == "window"]
    passage_text = " ".join(p["text"] for p in ranked) or " ".join(sentences[1:3])
    dates = DATE_RE.findall(lead) or DATE_RE.findall(passage_text)
    when = dates[0] if dates else format_date(article.get("date", ""))
    where = (article.get("place") or "").strip() or dateline
    who = salient_entities(article.get("text", ""), lead)
    # why: a passage sentence (not the lead) that gives a reason, purpose or consequence
    why = ""
    for p in ranked:
        for s in split_sentences(p["text"]):
            s_clean, _ = strip_dateline(s)
            if s_clean != lead and _WHY_RE.search(s_clean):
                why = s_clean
                break
        if why:
            break
    return {
        "who": who,
        "what": lead,
        "when": when,
        "where": where,
        "why": why,
        "sources": {"what": "the article's lead sentence",
                    "when": "a date in the text" if dates else "the article date",
                    "where": "the article place" if article.get("place") else ("the dateline" if dateline else "none"),
                    "who": "names the article mentions most", "why": "a selected passage" if why else "none"},
    }


def words(text: str) -> int:
    return len(re.findall(r"\w+", text))


def sentence(text: str) -> str:
    """Text as one sentence: stripped, capitalised, ending with a full stop."""
    t = " ".join(text.split()).strip().rstrip(" ;,:")
    if not t:
        return ""
    t = t[0].upper() + t[1:]
    return t if t[-1] in ".!?" else t + "."


def guard(candidate: str, facts: dict[str, Any], sources: Iterable[str], *, max_words: int) -> list[str]:
    """Problems that make an LLM caption unusable: key facts dropped, or names/numbers not in the sources.

    An empty list means the caption may be used.
    """
    problems: list[str] = []
    text = " ".join(candidate.split())
    n = words(text)
    if n < 6:
        problems.append(f"too short ({n} words)")
    if n > max_words:
        problems.append(f"too long ({n} words > {max_words})")
    source = " ".join(sources)
    source_low = source.lower()
    low = text.lower()
    year = YEAR_RE.search(facts.get("when") or "")
    if year and year.group(0) not in text:
        problems.append(f"dropped the year {year.group(0)}")
    who = facts.get("who") or []
    if who and who[0].split()[-1].lower() not in low:
        problems.append(f"dropped the main name {who[0]!r}")
    where = (facts.get("where") or "").split(",")[0].strip()
    if where and where.lower() not in low:
        problems.append(f"dropped the place {where!r}")
    invented = [e for e in entities(text) if not all(w.lower() in source_low for w in e.split())]
    if invented:
        problems.append(f"names not in the sources: {invented[:5]}")
    numbers = [x for x in re.findall(r"\d[\d,.]*\d|\d", text) if x.strip(".,") not in source]
    if numbers:
        problems.append(f"numbers not in the sources: {numbers[:5]}")
    return problems
