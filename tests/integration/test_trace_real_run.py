"""A real i2cr run (cpu profile, packaged models) on a shipped demo record, then trace show, html and fork."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from groundgraph.agents import cli_trace
from groundgraph.agents.checks import data_path
from groundgraph.agents.cli import app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def real_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, dict[str, Any], Any]:
    pytest.importorskip("groundgraph.graphs.i2cr.scoring", reason="the i2cr candidate scorer is not there yet")
    from groundgraph.agents.agent import load_agent

    db = tmp_path_factory.mktemp("traces") / "traces.sqlite"
    agent = load_agent("i2cr", "cpu", trace={"db": str(db)})
    record = json.loads(data_path("demo_mel.jsonl").read_text().splitlines()[0])
    record.pop("image", None)  # the demo records carry the image's file name only, not its pixels
    return agent, record, agent.invoke(record)


def test_real_run_is_stored_with_its_trace(real_run: tuple[Any, dict[str, Any], Any]) -> None:
    agent, record, result = real_run
    assert result.entity is not None and result.entity.id in {c["id"] for c in record["candidates"]}
    events = agent.trace(result.run_id)
    assert events[0].node == "select" and events[-1].node == "fuse"
    assert any(e.scores.get("intra") for e in events if e.node == "verify_intra")
    assert all(c.get("latency_ms") is not None for e in events for c in e.tool_calls)
    stored = agent.store.get(result.run_id)
    assert stored.status == "done" and stored.answer.startswith(result.entity.id)


def test_trace_show_and_html_of_the_real_run(real_run: tuple[Any, dict[str, Any], Any], tmp_path: Path) -> None:
    agent, _, result = real_run
    db = str(agent.store.path)
    runner = CliRunner()
    shown = runner.invoke(app, ["trace", "show", result.run_id, "--db", db, "--json"])
    assert shown.exit_code == 0, shown.output
    steps = json.loads(shown.output)["steps"]
    assert [s["ran"] for s in steps][-1] == ["fuse"]
    assert sum(len(s["events"]) for s in steps) == len(agent.trace(result.run_id))
    page = tmp_path / "run.html"
    res = runner.invoke(app, ["trace", "html", result.run_id, "--db", db, "-o", str(page)])
    assert res.exit_code == 0, res.output
    html = page.read_text()
    assert 'class="card round"' in html and "vs threshold" in html and result.entity.name in html


def test_fork_of_the_real_run_excluding_its_answer(real_run: tuple[Any, dict[str, Any], Any],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    agent, _, result = real_run
    monkeypatch.setattr(cli_trace, "_fork_agent", lambda graph, settings, store: agent)  # reuse the loaded models
    res = CliRunner().invoke(app, ["trace", "fork", result.run_id, "--db", str(agent.store.path), "--step", "0",
                                   "--set", f'rejected=["{result.entity.id}"]', "--json"])
    assert res.exit_code == 0, res.output
    forked = json.loads(res.output)
    assert forked["entity"]["id"] != result.entity.id  # the rejected answer is never chosen again
    assert agent.store.get(forked["run_id"]).parent_run_id == result.run_id
