"""insgenel matching and retrieval without models: aliases, the matcher, decision spans, chunks."""

from __future__ import annotations

import pytest

from groundgraph.graphs.insgenel.matching import (
    AliasFamily,
    AliasHit,
    AliasTable,
    Mention,
    NameStats,
    acronyms,
    all_caps,
    decision_spans,
    fold,
    generate_aliases,
    looks_like_person_name,
    surface_key,
)
from groundgraph.graphs.insgenel.retrieval import DocumentRetriever, chunk_text
from groundgraph.tools.errors import InputError

PERSON_DESC = "Name: {n}. Sex: male. Birth: 1950. Occupation: engineer."
ENTITIES = [
    ("Q19837", "Steve Jobs", ""),
    ("Q1", "Steve Ballmer", ""),
    ("Q2", "Steve Wozniak", PERSON_DESC.format(n="Steve Wozniak")),
    ("Q3", "Steve Allen", PERSON_DESC.format(n="Steve Allen")),
    ("Q4", "Steve Martin", PERSON_DESC.format(n="Steve Martin")),
    ("Q312", "Apple", ""),
    ("Q41506", "Stanford University", ""),
    ("Q60", "New York City", ""),
    ("Q1384", "New York", ""),
    ("Q11299", "New York Times", ""),
    ("Q5", "Times Square", ""),
    ("Q864407", "The Home Depot", ""),
    ("Q30", "United States of America", ""),
    ("Q61", "Washington, D.C.", ""),
    ("Q9", "Arsenal F.C.", ""),
    ("Q10", "Iron Man (2008 film)", ""),
    ("Q11", "Carol Tomé", ""),
    ("Q12", "Robert Nardelli", PERSON_DESC.format(n="Robert Nardelli")),
]


@pytest.fixture(scope="module")
def table() -> AliasTable:
    return AliasTable.from_entities(ENTITIES)


def ids(mentions: list[Mention], text: str) -> dict[str, set[str]]:
    return {text[m.start : m.end]: set(m.entity_ids) for m in mentions}


# --- aliases -------------------------------------------------------------------------------------
def test_person_aliases_include_last_first_and_nickname() -> None:
    got = {a.surface: a.family for a in generate_aliases("Q12", "Robert Nardelli", person=True)}
    assert got["Robert Nardelli"] is AliasFamily.NAME
    assert got["Nardelli"] is AliasFamily.LAST_NAME
    assert got["Robert"] is AliasFamily.FIRST_NAME
    assert got["Bob Nardelli"] is AliasFamily.NICKNAME
    assert got["Bob"] is AliasFamily.FIRST_NAME


def test_non_person_aliases() -> None:
    def forms(name: str) -> dict[str, AliasFamily]:
        return {a.surface: a.family for a in generate_aliases("X", name, person=False,
                                                              word_frequency=lambda w: 1)}

    assert forms("Iron Man (2008 film)")["Iron Man"] is AliasFamily.BARE
    assert forms("The Home Depot")["Home Depot"] is AliasFamily.NO_ARTICLE
    assert forms("Arsenal F.C.")["Arsenal"] is AliasFamily.NO_SUFFIX
    assert forms("Washington, D.C.")["Washington"] is AliasFamily.NO_QUALIFIER
    usa = forms("United States of America")
    assert usa["United States"] is AliasFamily.NO_QUALIFIER
    assert usa["U.S."] is AliasFamily.ACRONYM and usa["USA"] is AliasFamily.ACRONYM
    assert forms("Stanford University")["Stanford"] is AliasFamily.PARTIAL
    # a person's name gives no acronym and no partial words
    assert "SJ" not in {a.surface for a in generate_aliases("P", "Steve Jobs", person=True)}


def test_partial_aliases_skip_words_common_among_names() -> None:
    common = {"University": 50}
    got = {a.surface for a in generate_aliases("X", "Stanford University", person=False,
                                                word_frequency=lambda w: common.get(w, 1))}
    assert "Stanford" in got and "University" not in got


def test_a_nationality_adjective_is_never_a_partial_alias() -> None:
    def surfaces(name: str) -> set[str]:
        return {a.surface for a in generate_aliases("X", name, person=False, word_frequency=lambda w: 1)}

    assert "Iraqi" not in surfaces("Iraqi Governing Council") and "Governing" in surfaces("Iraqi Governing Council")
    assert "Indian" not in surfaces("Indian Army")
    assert "Americans" in surfaces("Americans")  # an entity so named keeps its name


def test_families_can_be_switched_off() -> None:
    got = {a.family for a in generate_aliases("Q12", "Robert Nardelli", person=True,
                                               families=frozenset({AliasFamily.NAME}))}
    assert got == {AliasFamily.NAME}


def test_acronyms_need_two_capitalised_words() -> None:
    assert acronyms("United Nations") == ["UN", "U.N."]
    assert acronyms("Apple") == []
    assert acronyms("rock music") == []


def test_person_names_told_apart_by_kb_statistics() -> None:
    stats = NameStats.from_names([(n, d) for _, n, d in ENTITIES])
    assert looks_like_person_name("Steve Jobs", stats)  # "Steve" opens described persons
    assert not looks_like_person_name("Stanford University", stats)
    assert not looks_like_person_name("Washington, D.C.", stats)
    assert not looks_like_person_name("Apple", stats)
    table = AliasTable.from_entities(ENTITIES)
    assert {"Q19837", "Q1", "Q2"} <= table.persons and "Q41506" not in table.persons


# --- the matcher ------------------------------------------------------------------------------
def test_keys_fold_diacritics_spacing_and_hyphens() -> None:
    assert fold("Tomé’s") == "Tome's"
    assert surface_key("A.G. Edwards") == surface_key("A. G. Edwards")
    assert surface_key("CAC-40") == surface_key("CAC 40")
    assert surface_key("Washington, D.C.") != surface_key("Washington D.C.")


def test_longest_match_and_diacritics(table: AliasTable) -> None:
    text = "Carol Tome flew to New York City, then to New York."
    got = ids(table.find(text), text)
    assert got["Carol Tome"] == {"Q11"}
    assert got["New York City"] == {"Q60"}  # not "New York" inside it
    assert got["New York"] == {"Q1384"}


def test_first_name_is_ambiguous_full_name_is_not(table: AliasTable) -> None:
    text = "Steve Jobs met Steve at Apple."
    mentions = table.find(text)
    got = ids(mentions, text)
    assert got["Steve Jobs"] == {"Q19837"}
    assert got["Steve"] >= {"Q19837", "Q1", "Q2", "Q3", "Q4"}
    first = next(m for m in mentions if m.text == "Steve")
    assert all(h.family is AliasFamily.FIRST_NAME for h in first.hits)


def test_matches_respect_word_boundaries_and_case(table: AliasTable) -> None:
    text = "Applesauce and apple pie; pineapple. NEW YORK CITY (AP)"
    assert table.find(text) == []
    caps = [m for s in decision_spans(table.find(text, case_insensitive=all_caps)) for m in s.mentions]
    assert [(m.text, m.entity_ids) for m in caps] == [("NEW YORK CITY", ["Q60"])]
    assert not caps[0].hits[0].exact_case


def test_acronym_keeps_its_final_period_and_suffix_is_taken_in(table: AliasTable) -> None:
    text = "The U.S. economy. Shares of The Home Depot Inc. fell."
    got = ids(table.find(text), text)
    assert got["U.S."] == {"Q30"}
    assert got["The Home Depot Inc."] == {"Q864407"}


def test_a_part_of_a_name_is_not_cut_from_a_hyphenated_word_but_a_full_name_is() -> None:
    table = AliasTable.from_entities([("Q1", "Wal Hannington", PERSON_DESC.format(n="Wal Hannington")),
                                      ("Q2", "Atlanta", "")])
    assert table.aliases_of("Wal")  # a first-name alias exists ...
    text = "Wal-Mart rose, while the Atlanta-based retailer fell. Wal said so."
    # ... but is only found where the word stands alone
    assert [(m.text, m.entity_ids) for m in table.find(text)] == [("Atlanta", ["Q2"]), ("Wal", ["Q1"])]
    assert table.find(text)[1].start == text.index("Wal said")


def test_a_weekday_or_month_alone_is_never_a_mention() -> None:
    table = AliasTable.from_entities([("Q1", "Tuesday Weld", PERSON_DESC.format(n="Tuesday Weld")),
                                      ("Q2", "November", ""), ("Q3", "Sunday Times", "")])
    text = "On Tuesday in November, Tuesday Weld read the Sunday Times."
    found = [m.text for s in decision_spans(table.find(text)) for m in s.mentions]
    assert found == ["Tuesday Weld", "Sunday Times"]


def test_a_us_state_is_found_by_its_dateline_abbreviation() -> None:
    table = AliasTable.from_entities([("Q1166", "Michigan", ""), ("Q99", "California", ""),
                                      ("Q771", "Massachusetts", "")])
    assert {a.family for a in table.aliases_of("Mich.")} == {AliasFamily.ABBREVIATION}
    text = "GRAND RAPIDS, Mich. (AP) - Like Calif. and Michigan, it rose."
    assert [(m.text, m.entity_ids) for m in table.find(text)] == [
        ("Mich.", ["Q1166"]), ("Calif.", ["Q99"]), ("Michigan", ["Q1166"])]
    assert table.find("Mich said so, and Mass ended.") == []  # the period is part of an abbreviation


def test_hashtag_is_part_of_the_mention(table: AliasTable) -> None:
    text = "Loving #Apple today"
    assert [m.text for m in table.find(text)] == ["#Apple"]


def test_document_with_no_known_entity(table: AliasTable) -> None:
    text = "the quick brown fox jumps over the lazy dog"
    assert table.find(text) == []
    assert decision_spans(table.find(text)) == []


def test_allowed_filter_restricts_entities(table: AliasTable) -> None:
    text = "Steve spoke."
    (m,) = table.find(text, allowed=lambda a: a.entity_id in {"Q1", "Q2"})
    assert set(m.entity_ids) == {"Q1", "Q2"}


# --- decision spans --------------------------------------------------------------------------
def _m(start: int, end: int, *entity_ids: str) -> Mention:
    return Mention(start, end, "x" * (end - start),
                   tuple(AliasHit(e, AliasFamily.NAME, True) for e in entity_ids))


def test_nested_mention_dropped_and_copy_span() -> None:
    spans = decision_spans([_m(0, 10, "A"), _m(0, 5, "B", "C"), _m(6, 10, "D")])
    assert len(spans) == 1
    assert (spans[0].start, spans[0].end) == (0, 10)
    assert spans[0].is_copy and spans[0].options[0].entity_id == "A"


def test_crossing_mentions_merge_into_one_span() -> None:
    # "New York Times Square": "New York Times" [0, 14) and "Times Square" [9, 21)
    spans = decision_spans([_m(0, 14, "Q11299"), _m(9, 21, "Q5")])
    assert len(spans) == 1 and (spans[0].start, spans[0].end) == (0, 21)
    assert not spans[0].is_copy
    assert {(o.start, o.end, o.entity_id) for o in spans[0].options} == {(0, 14, "Q11299"), (9, 21, "Q5")}


def test_chains_of_overlaps_merge_and_disjoint_spans_stay_apart() -> None:
    spans = decision_spans([_m(0, 5, "A"), _m(4, 9, "B"), _m(8, 12, "C"), _m(20, 25, "D", "E")])
    assert [(s.start, s.end) for s in spans] == [(0, 12), (20, 25)]
    assert len(spans[0].mentions) == 3
    assert not spans[1].is_copy and len(spans[1].options) == 2


def test_keep_nested_keeps_inner_options() -> None:
    spans = decision_spans([_m(0, 10, "A"), _m(0, 5, "B")], keep_nested=True)
    assert len(spans) == 1 and len(spans[0].options) == 2


def test_real_overlap_from_text(table: AliasTable) -> None:
    text = "He walked from New York Times Square to the office."
    spans = decision_spans(table.find(text))
    assert len(spans) == 1
    got = {(o.mention, o.entity_id) for o in spans[0].options}
    assert ("New York Times", "Q11299") in got and ("Times Square", "Q5") in got


# --- chunks ----------------------------------------------------------------------------------
def test_chunks_cover_a_long_document_with_overlap() -> None:
    words = [f"w{i}" for i in range(1000)]
    text = " ".join(words)  # one "sentence" far longer than a chunk
    chunks = chunk_text(text, max_words=60, overlap_words=10)
    covered: set[int] = set()
    for c in chunks:
        assert text[c.start : c.end] == c.text and len(c.text.split()) <= 60
        covered.update(int(w[1:]) for w in c.text.split())
    assert covered == set(range(1000))
    for a, b in zip(chunks, chunks[1:], strict=False):  # consecutive windows overlap
        assert b.start < a.end


def test_matching_a_long_document_loses_nothing_at_chunk_borders(table: AliasTable) -> None:
    filler = " ".join(["word"] * 59)
    text = " ".join(f"{filler} Stanford University" for _ in range(30))
    retrieval = DocumentRetriever(table).retrieve(text)
    found = [m for m in retrieval.mentions if m.text == "Stanford University"]
    assert len(found) == 30
    chunks = retrieval.chunks
    for m in found:  # every mention lies whole inside some chunk, so it has context
        assert any(c.start <= m.start and m.end <= c.end for c in chunks)


def test_sentences_become_chunks_and_short_ones_join() -> None:
    text = "Steve Jobs founded Apple in California. Yes. Then he left Apple for a while."
    chunks = chunk_text(text)
    assert [c.text for c in chunks] == ["Steve Jobs founded Apple in California.",
                                        "Yes. Then he left Apple for a while."]


def test_empty_document_is_an_input_error(table: AliasTable) -> None:
    with pytest.raises(InputError):
        DocumentRetriever(table).retrieve("   ")
    with pytest.raises(InputError):
        chunk_text("x", max_words=5, overlap_words=5)


# --- the decision step with fakes (no model) ----------------------------------------------------
class FakeLLM:
    """Prefers the option named ``favourite``; records every call."""

    name = "llm.fake"

    def __init__(self, favourite: str) -> None:
        self.favourite = favourite
        self.calls: list[tuple[str, list[str]]] = []

    def choose(self, prompt: str, options, *, calibration_prompt=None):  # type: ignore[no-untyped-def]
        from groundgraph.tools.llm import pick

        self.calls.append((prompt, list(options)))
        return pick(options, [0.0 if o == self.favourite else -8.0 for o in options], "fake")

    def generate(self, prompt: str, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("not used")


def _linker(table: AliasTable, llm: FakeLLM | None, **config):  # type: ignore[no-untyped-def]
    from groundgraph.graphs.insgenel.decide import DecideConfig, DocumentLinker, SpanDecider
    from groundgraph.tools.embedder import HashingEmbedder

    decider = SpanDecider(HashingEmbedder(), table.names.__getitem__, llm=llm,
                          config=DecideConfig(use_llm=llm is not None, **config))
    return DocumentLinker(table, DocumentRetriever(table), decider)


def test_llm_is_called_once_per_ambiguous_span_never_for_copies(table: AliasTable) -> None:
    llm = FakeLLM("Steve Jobs")
    text = "Steve, the former CEO of Apple, spoke at Stanford University."
    result = _linker(table, llm).link(text)
    ambiguous = [d for d in result.decisions if len({o.entity_id for o in d.span.options}) > 1]
    assert result.llm_calls == len(llm.calls) == len(ambiguous) >= 1
    assert all(not d.llm_called for d in result.decisions if d.span.is_copy)
    prompt, options = llm.calls[0]
    assert '"Steve"' in prompt and "former CEO of Apple" in prompt and "Steve Jobs" in options
    assert result.naive_llm_calls == len(result.retrieval.mentions) > result.llm_calls
    steve = next(d for d in result.decisions if d.span.options[0].mention == "Steve")
    assert steve.options[0].option.entity_id == "Q19837"  # the LLM's favourite ranks first


def test_links_are_offsets_into_the_text_and_pronouns_are_opt_in(table: AliasTable) -> None:
    text = "Robert Nardelli quit. He said Nardelli was tired."
    plain = _linker(table, None, threshold=0.0).link(text)
    assert all(text[lk.start : lk.end] == lk.mention for lk in plain.links)
    assert ("Robert Nardelli", "Q12") in {(lk.mention, lk.entity_id) for lk in plain.links}
    assert not any(lk.method == "pronoun" for lk in plain.links)
    with_pronouns = _linker(table, None, threshold=0.0, link_pronouns=True).link(text)
    assert ("He", "Q12", "pronoun") in {(lk.mention, lk.entity_id, lk.method) for lk in with_pronouns.links}


def test_no_entity_when_the_threshold_is_not_met(table: AliasTable) -> None:
    result = _linker(table, None, threshold=1.0).link("Steve Jobs founded Apple.")
    assert result.links == [] and all(d.method == "no_entity" for d in result.decisions)
    with pytest.raises(InputError):
        _linker(table, None).link("  ")
