"""Each graph's input model, through the Python API (``Agent.invoke``) on fake tools: >= 1000 generated
records per graph (empty/huge/odd-unicode strings, wrong types, out-of-range spans, missing, non-image,
truncated, corrupt and bomb-header images). Every case is a valid answer or a typed error; nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fake_agent import CANDIDATES, CUES, FakeKB
from hypothesis import given
from hypothesis import strategies as st
from robust_agents import caption_agent, i2cr_agent, insgenel_agent, roc_agent
from robust_helpers import (
    FUZZ,
    Tally,
    anything,
    image_values,
    make_image_zoo,
    spans,
    text_or_wrong,
    text_values,
    wrong_types,
)

from groundgraph.graphs.enriched_caption.state import EnrichedCaptionResult
from groundgraph.graphs.i2cr.state import I2CRResult
from groundgraph.graphs.insgenel.state import InsgenelResult
from groundgraph.graphs.roc.state import RocResult

pytestmark = pytest.mark.robustness


@pytest.fixture(scope="module")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return make_image_zoo(tmp_path_factory.mktemp("zoo"))


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly ``strategy``, sometimes a wrong type."""
    return st.one_of(strategy, strategy, strategy, wrong_types)


def field(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field that is valid four times in five: whole records are then often valid, and each bad field
    is tried against otherwise good ones."""
    return st.tuples(st.integers(0, 9), valid, hostile).map(lambda t: t[1] if t[0] < 8 else t[2])


def mostly(record: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A record nine times in ten, else a value that is no object at all."""
    return st.tuples(st.integers(0, 9), record, wrong_types).map(lambda t: t[1] if t[0] < 9 else t[2])


# --- i2cr --------------------------------------------------------------------------------------------
def i2cr_records(zoo: dict[str, str]) -> st.SearchStrategy[Any]:
    return mostly(i2cr_objects(zoo))


def i2cr_objects(zoo: dict[str, str]) -> st.SearchStrategy[dict[str, Any]]:
    candidate = st.fixed_dictionaries({"id": text_or_wrong, "name": text_or_wrong},
                                      optional={"description": text_or_wrong, "extra": anything})
    candidates = st.one_of(st.none(), st.just([]), st.just(CANDIDATES), st.just(CANDIDATES),
                           st.lists(candidate, max_size=4), st.lists(st.sampled_from(CANDIDATES), max_size=4),
                           wrong_types)
    cue_kinds = st.sampled_from(["ocr", "caption", "dense_captions", "tags", "objects"]) | st.text(max_size=6)
    cues = st.one_of(st.just(CUES), st.dictionaries(cue_kinds, text_or_wrong | st.lists(text_values, max_size=3),
                                                    max_size=5), wrong_types)
    good_images = st.sampled_from([None, zoo["ok.png"], zoo["ok.jpg"], zoo["gray.png"], zoo["symlink_in.png"]])
    return st.fixed_dictionaries({
        "mention": field(st.sampled_from(["Carroll Baker", "Baker", "  Carroll  "]), text_or_wrong),
        "context": field(text_values, wrong_types),
        "image": field(good_images, image_values(zoo)),
        "candidates": field(st.sampled_from([CANDIDATES, CANDIDATES[1:], None]), candidates),
        "visual_cues": field(st.sampled_from([CUES, {}]), cues),
    }, optional={"id": anything, "unexpected": anything})


def test_i2cr_input_fuzz(zoo: dict[str, str], work: Path) -> None:
    agent = i2cr_agent(work / "i2cr.sqlite")
    kb_ids = {m.entity.id for m in FakeKB().lookup("", 10)}
    tally = Tally("i2cr input")

    def check(out: Any, record: Any) -> None:
        assert isinstance(out, I2CRResult), type(out)
        given_ids = {str(c["id"]) for c in (record.get("candidates") or [])}
        allowed = given_ids or kb_ids
        assert out.entity is None or out.entity.id in allowed, f"{out.entity} not among {sorted(allowed)}"

    @FUZZ
    @given(record=i2cr_records(zoo))
    def case(record: Any) -> None:
        tally.run(lambda: agent.invoke(record), lambda out: check(out, record))

    case()
    tally.assert_clean()


# --- roc ---------------------------------------------------------------------------------------------
SENTENCES = ["Alice plays for Ajax since 2019", "Bob married Carol in Paris", "Alice Alice Ajax"]


def roc_records(zoo: dict[str, str]) -> st.SearchStrategy[Any]:
    names = st.one_of(st.sampled_from(["Alice", "Ajax", "Bob", "Carol", "Paris", "alice", "since 2019"]),
                      text_or_wrong)
    entity = st.one_of(st.fixed_dictionaries({}, optional={
        "name": names, "pos": st.one_of(spans, wrong_types),
        "type": st.sampled_from(["per", "org", "loc", "misc", "PER", "thing"]) | wrong_types}), wrong_types)
    tokens = st.one_of(st.just(SENTENCES[0].split()), st.lists(text_values, max_size=8), wrong_types)
    text = st.one_of(st.sampled_from(SENTENCES), text_or_wrong)
    good_images = st.sampled_from([None, zoo["ok.png"], zoo["ok.jpg"], zoo["rgba.png"]])
    by_text = st.fixed_dictionaries({
        "text": field(st.sampled_from(SENTENCES[:1]), text),
        "head": field(st.sampled_from([{"name": "Alice"}, {"pos": [0, 5]}, {"name": "Alice", "type": "per"}]),
                      entity),
        "tail": field(st.sampled_from([{"name": "Ajax"}, {"pos": [16, 20]}, {"name": "Ajax", "type": "org"}]),
                      entity),
        "image": field(good_images, image_values(zoo)),
    }, optional={"tokens": tokens, "id": anything})
    by_tokens = st.fixed_dictionaries({
        "tokens": field(st.just(SENTENCES[0].split()), tokens),
        "head": field(st.sampled_from([{"name": "Alice"}, {"pos": [0, 1]}]), entity),
        "tail": field(st.sampled_from([{"name": "Ajax"}, {"pos": [3, 4]}]), entity),
    }, optional={"text": text, "image": image_values(zoo), "id": anything})
    return mostly(st.one_of(by_text, by_tokens))


def test_roc_input_fuzz(zoo: dict[str, str], work: Path) -> None:
    agent = roc_agent(work)
    labels = set(agent.context.labels)
    tally = Tally("roc input")

    def check(out: Any) -> None:
        assert isinstance(out, RocResult), type(out)
        assert out.relation in labels, f"{out.relation!r} is not a label"
        assert set(out.scores) <= labels

    @FUZZ
    @given(record=roc_records(zoo))
    def case(record: Any) -> None:
        tally.run(lambda: agent.invoke(record), check)

    case()
    tally.assert_clean()


# --- enriched_caption --------------------------------------------------------------------------------
def caption_records(zoo: dict[str, str]) -> st.SearchStrategy[Any]:
    cues = st.one_of(st.dictionaries(st.sampled_from(["caption", "ocr", "article_caption"]) | st.text(max_size=5),
                                     text_or_wrong | st.lists(text_values, max_size=2), max_size=3), wrong_types)
    good_images = st.sampled_from([zoo["ok.png"], zoo["ok.jpg"], zoo["palette.gif"], zoo["one_pixel.png"]])
    record = st.fixed_dictionaries({
        "image": field(good_images, st.one_of(st.sampled_from(sorted(zoo.values())), anything)),
        "visual_cues": field(st.sampled_from([{}, {"caption": "a rocket"}, {"ocr": "DSCOVR"}]), cues),
    }, optional={"id": anything})
    return mostly(record)


def test_enriched_caption_input_fuzz(zoo: dict[str, str], work: Path) -> None:
    agent = caption_agent(work)
    articles = {"rocket-2015", "cat-2022"}
    tally = Tally("enriched_caption input")

    def check(out: Any) -> None:
        assert isinstance(out, EnrichedCaptionResult), type(out)
        assert out.article is None or out.article.id in articles
        assert out.caption.strip()

    @FUZZ
    @given(record=caption_records(zoo))
    def case(record: Any) -> None:
        tally.run(lambda: agent.invoke(record), check)

    case()
    tally.assert_clean()


# --- insgenel ----------------------------------------------------------------------------------------
DOC = "Steve Jobs had founded Apple with Steve Wozniak. Steve studied at Stanford University in New York."


def test_insgenel_input_fuzz(work: Path) -> None:
    from insgenel_fakes import ENTITIES

    agent = insgenel_agent(work)
    kb_ids = {e["id"] for e in ENTITIES}
    tally = Tally("insgenel input")

    def check(out: Any, text: str) -> None:
        assert isinstance(out, InsgenelResult), type(out)
        for span in out.spans:
            assert text[span.start:span.end] == span.mention, span
            assert span.entity_id in kb_ids, span.entity_id

    text = st.one_of(st.sampled_from([DOC, DOC[:40], DOC.upper(), DOC + " " + DOC]),
                     st.builds(lambda a, b: a + " " + b, text_values, st.sampled_from([DOC, "Paris", "Apple"])),
                     text_or_wrong)
    record = st.fixed_dictionaries({"text": field(st.sampled_from([DOC, DOC[:40]]), text)},
                                   optional={"id": anything, "junk": anything})

    @FUZZ
    @given(record=mostly(record))
    def case(record: Any) -> None:
        tally.run(lambda: agent.invoke(record), lambda out: check(out, record["text"]))

    case()
    tally.assert_clean()


# --- the langgraph dev server's graph (i2cr) -------------------------------------------------------------
def test_server_graph_input_fuzz(zoo: dict[str, str], work: Path) -> None:
    """What ``langgraph dev`` serves (``agents/server_graphs.py``), invoked in process with the context the
    server builds: the posted input is untrusted, and image paths must lie in the allowed roots."""
    from groundgraph.agents.server_graphs import server_graph

    agent = i2cr_agent(work / "server.sqlite", roots=[str(Path(zoo["ok.png"]).parent)])
    graph = server_graph("i2cr", agent=agent)
    context = graph.builder.context_schema()
    tally = Tally("langgraph server graph (i2cr)")

    def check(state: Any, record: Any) -> None:
        result = state["result"]
        given_ids = {str(c["id"]) for c in (record.get("candidates") or [])}
        allowed = given_ids or {m.entity.id for m in FakeKB().lookup("", 10)}
        assert result["entity"] is None or result["entity"]["id"] in allowed, result

    @FUZZ
    @given(record=i2cr_objects(zoo))
    def case(record: Any) -> None:
        tally.run(lambda: graph.invoke(record, context=context), lambda out: check(out, record))

    case()
    tally.assert_clean()
