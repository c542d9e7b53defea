"""The insgenel graph without models: the real KB over a small entity file with the hashing embedder and a
fake LLM. Each node, the agent's answer and trace, decision spans on hand-made overlaps, a document with no
known entity, a long chunked document, input and config errors, the evaluation's metric code, the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from insgenel_fakes import FakeLLM, kb_file, make_ctx, make_kb
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.runtime import Runtime

from groundgraph.agents.agent import Agent
from groundgraph.agents.evaluation.insgenel import gold_links, inkb_counts, prf, retriever_recall, summarize
from groundgraph.agents.settings import load_settings
from groundgraph.agents.toolbox import Toolbox
from groundgraph.graphs.insgenel import SPEC, InsgenelConfig, InsgenelInput
from groundgraph.graphs.insgenel import nodes as insgenel_nodes
from groundgraph.graphs.insgenel.context import make_context
from groundgraph.graphs.insgenel.decide import DocumentLinker
from groundgraph.graphs.insgenel.graph import build, initial_state, run_plain
from groundgraph.graphs.insgenel.matching import AliasFamily, AliasHit, Mention
from groundgraph.graphs.insgenel.retrieval import chunk_text
from groundgraph.graphs.insgenel.state import mention_to_dict
from groundgraph.tools.errors import ConfigError, InputError

DOC = ("After the death of Steve, the former CEO of Apple, his commencement speech at Stanford University "
       "was watched thousands of times. Steve Jobs had founded Apple with Steve Wozniak.")


def agent_with(ctx: Any, tmp_path: Path) -> Agent:
    settings = load_settings("cpu", trace={"db": str(tmp_path / "traces.sqlite")})
    toolbox = Toolbox({"embedder": {"backend": "hashing"}, "kb": {"backend": "sqlite"}})  # the context is given
    return Agent(SPEC, settings, toolbox=toolbox, context=ctx, trace=True)


@pytest.fixture()
def llm() -> FakeLLM:
    return FakeLLM("Steve Jobs")


@pytest.fixture()
def agent(tmp_path: Path, llm: FakeLLM) -> Agent:
    return agent_with(make_ctx(tmp_path, llm, threshold=0.0), tmp_path)


def run_state(ctx: Any, text: str) -> dict[str, Any]:
    return run_plain(initial_state(InsgenelInput(text=text), ctx.config), ctx)


# --- the graph end to end (fakes) --------------------------------------------------------------
def test_agent_links_a_document_with_offsets_scores_and_a_trace(agent: Agent, llm: FakeLLM) -> None:
    out = agent.invoke({"text": DOC, "id": 7})
    assert out.id == "7" and out.run_id
    got = {(s.mention, s.entity_id) for s in out.spans}
    assert {("Steve Jobs", "Q19837"), ("Steve Wozniak", "Q483382"), ("Stanford University", "Q41506")} <= got
    assert ("Steve", "Q19837") in got  # the ambiguous first name, chosen by the (fake) LLM
    for s in out.spans:
        assert DOC[s.start : s.end] == s.mention and 0.0 <= s.score <= 1.0 and s.entity_name
    assert [(s.start, s.end) for s in out.spans] == sorted((s.start, s.end) for s in out.spans)
    assert out.llm_calls == len(llm.calls) >= 1 and out.naive_calls > out.llm_calls and out.llm_used
    assert out.copied >= 3 and "Q19837" in out.retrieved
    events = agent.trace(out.run_id)
    assert [e.node for e in events] == ["retrieve", "match", "decide", "fuse"]
    assert events[0].tool_calls and all(c["latency_ms"] >= 0 for c in events[0].tool_calls)
    assert any("choose calls" in c["what"] for c in events[2].tool_calls)


def test_graph_nodes_agree_with_the_core_linker(tmp_path: Path, llm: FakeLLM) -> None:
    ctx = make_ctx(tmp_path, llm)
    state = run_state(ctx, DOC)
    core = DocumentLinker(ctx.table, ctx.retriever(), ctx.decider()).link(DOC)
    assert state["result"]["spans"] == [lk.as_dict() for lk in core.links]
    assert state["result"]["naive_calls"] == core.naive_llm_calls
    assert state["llm_calls"] == core.llm_calls
    json.loads(json.dumps({k: v for k, v in state.items()}))  # JSON-native all the way


def test_state_checkpoints_and_progress_stream(tmp_path: Path, llm: FakeLLM) -> None:
    ctx = make_ctx(tmp_path, llm)
    graph = build().compile(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": "t1"}}
    parts = list(graph.stream(initial_state(InsgenelInput(text=DOC), ctx.config), cfg, context=ctx,
                              stream_mode=["updates", "custom"], version="v2"))
    custom = [p["data"]["node"] for p in parts if p["type"] == "custom"]
    assert custom == ["retrieve", "match", "decide", "fuse"]
    history = list(graph.get_state_history(cfg))
    assert len(history) >= 5 and history[0].values["result"]["spans"]


def test_without_an_llm_nothing_is_called(tmp_path: Path, llm: FakeLLM) -> None:
    off = run_state(make_ctx(tmp_path, llm, use_llm=False), DOC)
    assert off["result"]["llm_calls"] == 0 and llm.calls == [] and off["result"]["llm_used"] is False
    none = run_state(make_ctx(tmp_path / "b", None), DOC)
    assert none["result"]["llm_calls"] == 0 and none["result"]["llm_used"] is False


def test_document_with_no_known_entity(agent: Agent, llm: FakeLLM) -> None:
    out = agent.invoke({"text": "the weather was mild and nobody in particular went anywhere today."})
    assert out.spans == [] and out.decision_spans == 0 and out.llm_calls == 0 and out.naive_calls == 0
    assert llm.calls == []


# --- decision spans on hand-made overlaps --------------------------------------------------------
def _m(text: str, start: int, end: int, *ids: str) -> dict[str, Any]:
    hits = tuple(AliasHit(i, AliasFamily.NAME, True) for i in ids)
    return mention_to_dict(Mention(start, end, text[start:end], hits))


def test_match_node_merges_overlaps_into_decision_spans() -> None:
    text = "New York Times Square, Steve Jobs and Paris."
    mentions = [
        _m(text, 0, 14, "Q9684"),  # New York Times
        _m(text, 0, 8, "Q1384"),  # New York: nested in the longer match, dropped
        _m(text, 9, 21, "Q11259"),  # Times Square: crosses "New York Times", same span
        _m(text, 23, 33, "Q19837"),  # Steve Jobs
        _m(text, 23, 28, "Q19837", "Q181162"),  # Steve: nested, dropped
        _m(text, 38, 43, "Q90"),  # Paris: alone
    ]
    events: list[Any] = []
    out = insgenel_nodes.match({"text": text, "mentions": mentions}, Runtime(context=None, stream_writer=events.append))
    spans = [(s["start"], s["end"], s["mentions"]) for s in out["spans"]]
    assert spans == [(0, 21, [0, 2]), (23, 33, [3]), (38, 43, [5])]
    assert out["trace"][0]["node"] == "match" and events[0]["node"] == "match"


def test_touching_matches_stay_apart_and_chains_merge() -> None:
    text = "ABCDEFGHIJ"
    mentions = [_m(text, 0, 3, "A"), _m(text, 3, 6, "B"), _m(text, 5, 8, "C"), _m(text, 7, 10, "D")]
    out = insgenel_nodes.match({"text": text, "mentions": mentions}, Runtime(context=None, stream_writer=print))
    assert [(s["start"], s["end"]) for s in out["spans"]] == [(0, 3), (3, 10)]


# --- a long document -----------------------------------------------------------------------------
def test_long_document_is_chunked_and_nothing_is_lost_at_chunk_borders(tmp_path: Path) -> None:
    # one endless sentence: chunking cuts it into overlapping word windows; names sit on every border
    filler = ["and", "then", "the", "meeting", "went", "on", "for", "quite", "a", "while", "with", "many", "words"]
    words: list[str] = []
    names = ["Steve Jobs", "Stanford University", "Robert Nardelli", "Microsoft"]
    for i in range(120):
        words += filler[: 3 + i % 7]
        words += names[i % len(names)].split()
    text = " ".join(words) + "."
    ctx = make_ctx(tmp_path, None, chunk_words=12, chunk_overlap=3, threshold=0.0)
    chunks = chunk_text(text, max_words=12, overlap_words=3)
    assert len(chunks) > 100 and chunks[0].start == 0 and chunks[-1].end == len(text)
    covered = sorted((c.start, c.end) for c in chunks)
    assert all(b[0] <= a[1] for a, b in zip(covered, covered[1:], strict=False))  # no gap between windows
    state = run_state(ctx, text)
    linked = {(s["start"], s["mention"]) for s in state["result"]["spans"]}
    expected = {(i, n) for n in names for i in _occurrences(text, n)}
    assert len(expected) == 120 and expected <= linked
    assert len(state["chunks"]) == len(chunks)


def _occurrences(text: str, name: str) -> list[int]:
    out, i = [], text.find(name)
    while i >= 0:
        out.append(i)
        i = text.find(name, i + 1)
    return out


# --- errors at the boundary ----------------------------------------------------------------------
@pytest.mark.parametrize("bad, says", [({"text": ""}, "at least 1 character"), ({"text": "   \n"}, "blank"),
                                       ({}, "text"), ({"text": 3}, "string"), ("a doc", "object")])
def test_bad_input_is_a_clear_input_error(agent: Agent, bad: Any, says: str) -> None:
    with pytest.raises(InputError, match="invalid insgenel input|must be an object") as exc:
        agent.invoke(bad)
    assert says in str(exc.value)


def test_config_errors_at_the_boundary(tmp_path: Path) -> None:
    kb = make_kb(tmp_path)
    with pytest.raises(ConfigError, match="'embedder'"):
        make_context({"kb": kb, "embedder": None}, InsgenelConfig())
    with pytest.raises(ConfigError, match="'kb'"):
        make_context({"kb": None, "embedder": kb.embedder}, InsgenelConfig())
    from groundgraph.tools.kb import KnowledgeBase

    with pytest.raises(ConfigError, match="--kb"):
        make_context({"kb": KnowledgeBase(embedder=kb.embedder), "embedder": kb.embedder}, InsgenelConfig())
    with pytest.raises(ValueError, match="chunk_overlap"):
        InsgenelConfig(chunk_words=10, chunk_overlap=10)
    with pytest.raises(ValueError):
        InsgenelConfig(unknown=1)  # type: ignore[call-arg]


def test_alias_table_is_built_once_per_kb(tmp_path: Path) -> None:
    a = make_ctx(tmp_path, None)
    b = make_context({"kb": a.kb, "embedder": a.embedder, "llm": None}, InsgenelConfig(use_llm=False))
    assert a.table is b.table and any("built in" in n for n in a.notes) and any("cached" in n for n in b.notes)


def test_profiles_configure_insgenel() -> None:
    for profile in ("cpu", "gpu"):
        settings = load_settings(profile)
        InsgenelConfig(**settings.graphs.get("insgenel", {}))  # valid against the typed config


# --- evaluation metrics --------------------------------------------------------------------------
RECORD = {
    "text": "Steve's talk at Stanford. Paris, later: New York.",
    "evaluation_span": [0, 40],
    "labels": [
        {"span": [0, 5], "entity_id": "Q19837"},
        {"span": [16, 24], "entity_id": "Q41506"},
        {"span": [26, 31], "entity_id": "<NIL>"},
        {"span": [40, 48], "entity_id": "Q60"},  # outside the evaluation span
        {"span": [16, 20], "entity_id": "Q1", "parent": 1},  # nested: not scored
    ],
}


def test_inkb_counts_expand_spans_and_count_nil_links_as_false_positives() -> None:
    assert gold_links(RECORD) == {(0, 5): "Q19837", (16, 24): "Q41506", (26, 31): "<NIL>"}
    # "Steve's" expands to the same word as "Steve"; Paris is NIL; New York lies outside the span
    predicted = {(0, 7): "Q19837", (16, 24): "Q2283", (26, 31): "Q90", (40, 48): "Q60", (9, 13): "Q5"}
    assert inkb_counts(RECORD, predicted) == (1, 3, 1)  # tp; fp: wrong entity, NIL, unknown span; fn: wrong
    assert inkb_counts(RECORD, {}) == (0, 0, 2)
    assert prf(1, 3, 1) == {"precision": 0.25, "recall": 0.5, "f1": 0.3333}
    assert prf(0, 0, 0)["f1"] == 0.0
    assert retriever_recall(RECORD, ["Q41506", "Q60", "Q7"]) == (1, 2)


def test_summary_counts_calls_and_recall() -> None:
    rows = [{"tp": 3, "fp": 1, "fn": 2, "gold_entities": 4, "retrieved_gold": 3, "retrieved": 20, "llm_calls": 1,
             "naive_calls": 10, "decision_spans": 5, "copied": 3, "links": 4, "seconds": 0.5},
            {"tp": 1, "fp": 0, "fn": 0, "gold_entities": 1, "retrieved_gold": 1, "retrieved": 10, "llm_calls": 0,
             "naive_calls": 2, "decision_spans": 1, "copied": 1, "links": 1, "seconds": 0.25}]
    s = summarize(rows, [{"id": 3, "error": "InputError: x"}], wall=1.5)
    assert (s["tp"], s["fp"], s["fn"], s["documents"], s["errors"]) == (4, 1, 2, 3, 1)
    assert s["retriever_recall"] == 0.8 and s["llm_calls"] == 1 and s["naive_calls"] == 12
    assert s["llm_call_reduction"] == round(1 - 1 / 12, 4) and s["docs_per_s"] == 2.0


# --- the CLI -------------------------------------------------------------------------------------
def cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    from groundgraph.agents import cli as cli_module

    monkeypatch.setattr(sys, "argv", ["groundgraph", *argv])
    with pytest.raises(SystemExit) as exit_:
        cli_module.main()
    return int(exit_.value.code or 0)


def test_cli_refuses_a_run_without_text_and_a_missing_kb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("GROUNDGRAPH_HOME", str(tmp_path))
    assert cli(["run", "insgenel", "--kb", str(kb_file(tmp_path))], monkeypatch) == 2
    assert "give --text" in capsys.readouterr().err
    assert cli(["eval", "insgenel", "--data", str(tmp_path / "none.jsonl")], monkeypatch) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli(["run", "insgenel", "--text", "x", "--kb", str(tmp_path / "nope.jsonl")], monkeypatch) == 2
    assert "knowledge-base file not found" in capsys.readouterr().err
