"""Trace history, forks, streaming and the viewers (text, HTML, CLI) on i2cr runs with fake tools."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_agent import RECORD, fake_agent
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

from groundgraph.agents import cli_trace, traces
from groundgraph.agents.agent import TraceEvent
from groundgraph.agents.cli import app
from groundgraph.agents.runs import RunRecord, RunStore
from groundgraph.tools.errors import InputError


def render(renderable: Any) -> str:
    console = Console(width=220, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text()


@pytest.fixture()
def agent(tmp_path: Path) -> Any:
    # round 1 picks Q2 and fails IAV; round 2 adds the caption and passes
    return fake_agent(tmp_path / "traces.sqlite", order=["Q2", "Q1"], inter=[0.0, 50.0])


def test_history_lists_each_step_with_the_node_that_ran_and_its_events(agent: Any) -> None:
    result = agent.invoke(RECORD)
    steps = agent.history(result.run_id)
    assert [s.step for s in steps] == list(range(-1, len(steps) - 1))
    assert steps[0].source == "input" and steps[0].next == ["__start__"]
    ran = [s.ran[0] for s in steps[2:]]
    assert ran == ["select", "verify_intra", "verify_inter", "fetch_visual_cue", "select", "verify_intra",
                   "verify_inter", "fuse"]
    for s in steps[2:]:  # every node step added exactly its own event
        assert [e.node for e in s.events] == s.ran
    assert steps[-1].next == [] and steps[-1].values["result"]["entity"]["id"] == "Q2"
    assert sum(len(s.events) for s in steps) == len(agent.trace(result.run_id))


def test_trace_returns_typed_events_with_gate_scores(agent: Any) -> None:
    events = agent.trace(agent.invoke(RECORD).run_id)
    assert all(isinstance(e, TraceEvent) for e in events)
    inter = [e for e in events if e.node == "verify_inter"]
    assert [e.scores["inter"]["passed"] for e in inter] == [False, True]
    assert inter[0].scores["inter"]["threshold"] == 31.0


def test_fork_from_a_past_step_with_changed_state_is_a_new_run_with_its_parent(agent: Any) -> None:
    parent = agent.invoke(RECORD)
    assert parent.entity.id == "Q2"
    # step 0: before the first select; rejecting Q2 makes select choose Q1
    fork = agent.fork(parent.run_id, 0, {"rejected": ["Q2"]})
    assert fork.run_id != parent.run_id
    assert fork.entity.id == "Q1"
    record = agent.store.get(fork.run_id)
    assert record.parent_run_id == parent.run_id and record.status == "done"
    assert record.answer == "Q1 (Carroll Baker)"
    first = agent.history(fork.run_id)[0]
    assert first.source == "fork" and first.events[-1].node == "fork"
    assert first.events[-1].model_dump()["updates"] == ["rejected"]
    # the parent run is untouched
    assert agent.history(parent.run_id)[-1].values["result"]["entity"]["id"] == "Q2"


def test_fork_mid_run_keeps_earlier_rounds_and_runs_the_next_node_again(agent: Any) -> None:
    parent = agent.invoke(RECORD)
    steps = agent.history(parent.run_id)
    after_iav = next(s for s in steps if s.ran == ["verify_inter"])  # round 1 failed IAV -> fetch_visual_cue
    assert after_iav.next == ["fetch_visual_cue"]
    fork = agent.fork(parent.run_id, after_iav.step, {"cue_queue": ["tags"]})
    assert fork.cues_used == ["tags"]  # the changed queue decided which cue round 2 got
    nodes = [e.node for e in agent.trace(fork.run_id)]
    assert nodes[:4] == ["select", "verify_intra", "verify_inter", "fork"]
    assert nodes[4] == "fetch_visual_cue"


@pytest.mark.parametrize(("step", "updates", "message"), [
    (99, {}, "has no step 99"),
    (0, {"no_such_key": 1}, "unknown state key"),
])
def test_fork_rejects_bad_steps_and_keys(agent: Any, step: int, updates: dict[str, Any], message: str) -> None:
    run_id = agent.invoke(RECORD).run_id
    with pytest.raises(InputError, match=message):
        agent.fork(run_id, step, updates)


def test_fork_of_the_last_step_or_an_unknown_run_is_refused(agent: Any) -> None:
    run_id = agent.invoke(RECORD).run_id
    last = agent.history(run_id)[-1].step
    with pytest.raises(InputError, match="last"):
        agent.fork(run_id, last, {})
    with pytest.raises(InputError, match="no run"):
        agent.fork("nope", 0, {})


def test_stream_v2_yields_progress_from_nodes_as_they_happen(agent: Any) -> None:
    parts = list(agent.stream(RECORD))
    kinds = [p["type"] for p in parts]
    assert kinds[-1] == "result" and parts[-1]["data"].entity.id == "Q2"
    assert {"custom", "updates"} <= set(kinds)
    custom = [p["data"] for p in parts if p["type"] == "custom"]
    assert custom[0] == {"node": "select", "round": 1, "message": "selected Roy Carroll"}
    # each node's progress message comes before that node's state update
    order = [(p["type"], p["data"]["node"] if p["type"] == "custom" else next(iter(p["data"])))
             for p in parts[:-1]]
    for i, (kind, node) in enumerate(order):
        if kind == "updates":
            assert ("custom", node) in order[:i]
    assert all(set(p) == {"type", "ns", "data"} for p in parts)


def test_parse_updates_reads_json_values_and_plain_strings() -> None:
    assert traces.parse_updates(["round=2", 'cues={"caption": "a dog"}', "mention=Paris"]) == {
        "round": 2, "cues": {"caption": "a dog"}, "mention": "Paris"}
    with pytest.raises(InputError):
        traces.parse_updates(["no-equals-sign"])


def test_scores_accept_gates_plain_numbers_and_unknown_values() -> None:
    event = TraceEvent(node="x", round=1, decision="d", why="w", time=0.0, scores={
        "intra": {"value": 0.2, "threshold": 0.3, "passed": False}, "inter": {"value": None, "threshold": 31.0,
                                                                                "passed": None},
        "Q42": 3.5, "label": "n/a"})
    rows = {s.name: s for s in traces.scores_of(event)}
    assert traces.score_text(rows["intra"]) == "intra 0.2 < 0.3 FAIL"
    assert "unverifiable" in traces.score_text(rows["inter"])
    assert traces.score_text(rows["Q42"]) == "Q42 3.5"
    assert rows["label"].value is None and rows["label"].extra == "n/a"


def test_text_view_shows_steps_scores_against_thresholds_and_tool_latency(agent: Any) -> None:
    run_id = agent.invoke(RECORD).run_id
    text = render(traces.text_view(traces.load_run(agent.store, run_id)))
    assert f"run {run_id}" in text and "answer: Q2 (Roy Carroll)" in text
    assert "inter 0 < 31 FAIL" in text and "inter 50 >= 31 pass" in text
    assert re.search(r"image_text\.fake\.score \d+\.\d ms", text)
    assert "cue: caption" in text


def test_runs_table_lists_recent_runs(agent: Any) -> None:
    first = agent.invoke(RECORD)
    fork = agent.fork(first.run_id, 0, {"rejected": ["Q2"]})
    text = render(traces.runs_table(agent.store.list()))
    assert first.run_id in text and fork.run_id in text
    assert "Q1 (Carroll Baker)" in text and f"fork of {first.run_id[:8]}" in text


def _png(path: Path, size: tuple[int, int] = (64, 48)) -> Path:
    Image.new("RGB", size, (200, 30, 30)).save(path)
    return path


def test_html_is_self_contained_with_round_cards_cues_and_gate_bars(agent: Any, tmp_path: Path) -> None:
    image = _png(tmp_path / "mention.png")
    run_id = agent.invoke({**RECORD, "image": str(image)}).run_id
    page = traces.render_html(traces.load_run(agent.store, run_id))
    assert "<script" not in page and not re.search(r"(src|href)=\"(https?:)?//", page)
    assert 'id="input-image"' in page and 'src="data:image/png;base64,' in page
    assert page.count('class="card round"') == 2
    assert 'data-round="2"' in page and "cue added" in page and "a woman smiling" in page
    assert page.count("<svg") == 4  # intra and inter gate bars in each of two rounds
    assert "vs threshold" in page and 'class="gate fail"' in page and 'class="gate pass"' in page


def test_large_images_are_re_encoded_or_left_out(tmp_path: Path) -> None:
    big = tmp_path / "big.png"  # noise: a PNG of several MB
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (1200, 1600, 3), dtype=np.uint8)).save(big)
    assert big.stat().st_size > 1_000_000
    uri, note = traces.image_data_uri(big, max_bytes=2_000)
    assert uri is None and "not embedded" in note
    uri, note = traces.image_data_uri(big, max_bytes=1_000_000)
    assert uri is not None and uri.startswith("data:image/jpeg;base64,") and "re-encoded" in note
    uri, note = traces.image_data_uri(tmp_path / "missing.png")
    assert uri is None and "not embedded" in note


def test_viewers_work_for_any_graph_from_its_events() -> None:
    # events of another graph: no select, no cues; numbers and gates named by that graph
    events = [
        TraceEvent(node="retrieve", round=0, decision="8 relations", why="dense retrieval", time=0.0,
                   scores={"founded_by": 0.71, "member_of": 0.42},
                   tool_calls=[{"tool": "embedder", "what": "embed", "latency_ms": 3.2}], relation="founded_by"),
        TraceEvent(node="decide", round=0, decision="founded_by", why="margin over None", time=0.0,
                   scores={"margin": {"value": 0.29, "threshold": 0.1, "passed": True}}),
    ]
    step = traces.Step(step=1, source="loop", ran=["retrieve"], next=["decide"], checkpoint_id="c", events=events)
    record = RunRecord(run_id="r1", graph="roc", profile="cpu", status="done", input_summary="s", input={},
                       answer="founded_by", started=0.0, finished=1.0)
    view = traces.RunView(run_id="r1", graph="roc", record=record, steps=[step])
    page = traces.render_html(view)
    assert "Round 0" in page and "founded_by" in page and "margin" in page and "embedder.embed 3.2 ms" in page
    text = render(traces.text_view(view))
    assert "margin 0.29 >= 0.1 pass" in text and "relation: founded_by" in text


# --- CLI ------------------------------------------------------------------------------------------
def test_cli_trace_list_show_html_and_fork(agent: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = str(agent.store.path)
    run_id = agent.invoke(RECORD).run_id
    runner = CliRunner()

    res = runner.invoke(app, ["trace", "list", "--db", db, "--json"])
    assert res.exit_code == 0, res.output
    assert [r["run_id"] for r in json.loads(res.output)] == [run_id]

    res = runner.invoke(app, ["trace", "show", run_id, "--db", db, "--json"])
    assert res.exit_code == 0, res.output
    shown = json.loads(res.output)
    assert [s["ran"] for s in shown["steps"]][-1] == ["fuse"]

    page = tmp_path / "run.html"
    res = runner.invoke(app, ["trace", "html", run_id, "--db", db, "-o", str(page)])
    assert res.exit_code == 0, res.output
    assert "Round 2" in page.read_text()

    monkeypatch.setattr(cli_trace, "_fork_agent", lambda graph, settings, store: agent)
    res = runner.invoke(app, ["trace", "fork", run_id, "--db", db, "--step", "0", "--set", 'rejected=["Q2"]'])
    assert res.exit_code == 0, res.output
    assert "answer: Q1 (Carroll Baker)" in res.output and f"fork of {run_id} at step 0" in res.output
    forks = [r for r in RunStore(db).list() if r.parent_run_id == run_id]
    assert len(forks) == 1 and forks[0].answer == "Q1 (Carroll Baker)"


def test_cli_show_of_an_unknown_run_is_a_clear_error(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["trace", "show", "nope", "--db", str(tmp_path / "t.sqlite")])
    assert res.exit_code != 0
    assert isinstance(res.exception, InputError) and "trace list" in str(res.exception)

