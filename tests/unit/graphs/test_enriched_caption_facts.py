"""Text helpers of enriched_caption: sentences, datelines, windows, dates, facts and the LLM guard."""

from __future__ import annotations

import pytest

from groundgraph.graphs.enriched_caption import facts as F

ARTICLE = {
    "id": "a1", "title": "Falcon 9 launches DSCOVR", "date": "2015-02-11", "place": "Cape Canaveral, Florida",
    "text": ("CAPE CANAVERAL, Florida — A SpaceX Falcon 9 rocket lifted off on February 11, 2015, carrying "
             "DSCOVR. The satellite is a joint mission of NOAA and NASA. It will watch the solar wind to warn of "
             "geomagnetic storms. The launch came after two attempts were called off."),
}


def test_sentences_do_not_break_at_abbreviations_or_initials() -> None:
    text = "WASHINGTON, D.C. — Dr. Smith met U.S. officials at 9 a.m. on Monday. They talked. Then they left!"
    assert F.split_sentences(text) == [
        "WASHINGTON, D.C. — Dr. Smith met U.S. officials at 9 a.m. on Monday.", "They talked.", "Then they left!"]


@pytest.mark.parametrize(("sentence", "rest", "place"), [
    ("WASHINGTON, D.C. — NASA said so.", "NASA said so.", "Washington, D.C."),
    ("BOSTON — Hopper retired.", "Hopper retired.", "Boston"),
    ("CAPE CANAVERAL, Florida -- A rocket.", "A rocket.", "Cape Canaveral, Florida"),
    ("No dateline here — at all.", "No dateline here — at all.", ""),
])
def test_dateline_is_split_off(sentence: str, rest: str, place: str) -> None:
    assert F.strip_dateline(sentence) == (rest, place)


def test_windows_slide_and_cover_the_end() -> None:
    assert F.windows(list("abcde"), 2) == [(0, 2), (1, 3), (2, 4), (3, 5)]
    assert F.windows(list("abcde"), 2, stride=2) == [(0, 2), (2, 4), (3, 5)]
    assert F.windows(list("ab"), 3) == [(0, 2)]
    assert F.windows([], 3) == []


@pytest.mark.parametrize(("iso", "shown"), [
    ("1998-03-05", "March 5, 1998"), ("1998-12", "December 1998"), ("1998", "1998"), ("spring", "spring"),
    ("1998-13", "1998"),
])
def test_format_date(iso: str, shown: str) -> None:
    assert F.format_date(iso) == shown


def test_entities_keep_numbers_and_connectors_and_stop_at_commas() -> None:
    names = F.entities("Owner Lena Okafor, 34, flew a Falcon 9 to the Museum of Antiquities in Harlow.")
    assert names == ["Lena Okafor", "Falcon 9", "Museum of Antiquities", "Harlow"]


def test_facts_come_from_the_lead_the_fields_and_the_passages() -> None:
    passages = [{"text": "It will watch the solar wind to warn of geomagnetic storms.", "kind": "window"}]
    facts = F.extract_facts(ARTICLE, passages)
    assert facts["what"].startswith("A SpaceX Falcon 9 rocket lifted off")  # dateline removed
    assert facts["when"] == "February 11, 2015"
    assert facts["where"] == "Cape Canaveral, Florida"
    assert facts["why"] == "It will watch the solar wind to warn of geomagnetic storms."
    assert "SpaceX Falcon 9" in facts["who"]


def test_when_falls_back_to_the_article_date_and_where_to_the_dateline() -> None:
    article = {**ARTICLE, "place": "", "text": "BOSTON — Hopper retired aboard a ship. She was 79."}
    facts = F.extract_facts({**article, "date": "1986-08"}, [])
    assert facts["when"] == "August 1986"
    assert facts["where"] == "Boston"


def test_guard_accepts_a_faithful_rephrasing() -> None:
    facts = F.extract_facts(ARTICLE, [])
    ok = "On February 11, 2015 a SpaceX Falcon 9 rocket lifted off from Cape Canaveral carrying DSCOVR."
    assert F.guard(ok, facts, [ARTICLE["text"], ARTICLE["place"]], max_words=60) == []


@pytest.mark.parametrize(("caption", "problem"), [
    ("A SpaceX Falcon 9 rocket lifted off from Cape Canaveral carrying DSCOVR.", "dropped the year 2015"),
    ("In 2015 a Falcon 9 rocket carrying DSCOVR lifted off.", "dropped the place 'Cape Canaveral'"),
    ("In 2015 Elon Musk watched a SpaceX Falcon 9 leave Cape Canaveral.", "names not in the sources"),
    ("In 2015 a SpaceX Falcon 9 left Cape Canaveral with 12 satellites.", "numbers not in the sources"),
    ("Rocket 2015.", "too short"),
])
def test_guard_rejects_dropped_facts_and_inventions(caption: str, problem: str) -> None:
    facts = F.extract_facts(ARTICLE, [])
    problems = F.guard(caption, facts, [ARTICLE["text"], ARTICLE["place"]], max_words=60)
    assert any(problem in p for p in problems), problems


def test_sentence_capitalises_and_ends_with_a_stop() -> None:
    assert F.sentence("  a rocket on a pad; ") == "A rocket on a pad."
    assert F.sentence("Done!") == "Done!"
    assert F.sentence("   ") == ""
