"""The roc graph end to end with real packaged models on the shipped MNRE sample: zero-shot MiniLM, a
tiny encoder trained by `groundgraph train roc`, predicted entity types, and `groundgraph eval roc`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from groundgraph.agents.agent import Agent
from groundgraph.agents.evaluation.roc import roc_input
from groundgraph.agents.registry import graph_spec
from groundgraph.agents.settings import load_settings
from groundgraph.graphs.roc.encoding import ENTITY_TYPES, instance_from_record
from groundgraph.graphs.roc.training import RocEncoder, read_records

pytestmark = pytest.mark.integration


def cli(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from groundgraph.agents import cli as cli_module

    monkeypatch.setattr(sys, "argv", ["groundgraph", *argv])
    with pytest.raises(SystemExit) as exit_:
        cli_module.main()
    assert exit_.value.code in (0, None)


@pytest.fixture(scope="module")
def sample(fixtures_dir: Path) -> Path:
    return fixtures_dir / "mnre_sample.jsonl"


@pytest.fixture(scope="module")
def trained(sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An encoder trained for two steps through the CLI (the real training code path)."""
    out = tmp_path_factory.mktemp("roc") / "model"
    with pytest.MonkeyPatch.context() as mp:
        cli(["train", "roc", "--train", str(sample), "--val", str(sample), "--out", str(out), "--epochs", "1",
             "--batch-size", "10", "--max-steps", "2"], mp)
    return out


def agent(tmp_path: Path, **config: Any) -> Agent:
    settings = load_settings("cpu", graphs={"roc": config}, trace={"db": str(tmp_path / "traces.sqlite")})
    return Agent(graph_spec("roc"), settings, trace=True)


def test_zero_shot_minilm_answers_a_label_of_the_set_with_a_trace(sample: Path, tmp_path: Path) -> None:
    roc = agent(tmp_path, encoder="embedder")
    labels = set(roc.context.labels)
    assert len(labels) == 23 and roc.context.encoder_source.startswith("zero-shot embedder.sentence_transformers")
    for record in read_records(sample)[:4]:
        out = roc.invoke(roc_input(record))
        assert out.relation in labels and set(out.scores) == labels
        assert -1.0 <= out.score <= 1.0 and len(out.top_k) == 5
        events = roc.trace(out.run_id)
        assert [e.node for e in events] == ["encode", "retrieve", "decide", "fuse"]
        assert events[0].tool_calls[0]["latency_ms"] >= 0 and "[H]" in events[0].marked_text


def test_trained_encoder_brings_its_rule_and_format_and_agrees_with_the_core(
        trained: Path, sample: Path, tmp_path: Path) -> None:
    meta = json.loads((trained / "roc.json").read_text())
    roc = agent(tmp_path, encoder=str(trained))
    ctx = roc.context
    assert ctx.rule_source == "roc.json" and ctx.rule.model_dump() == meta["none_rule"]
    assert ctx.encoder_source.startswith("trained ROC encoder")
    records = read_records(sample)[:6]
    core = RocEncoder.load(trained).predict([instance_from_record(r) for r in records])
    assert [roc.invoke(roc_input(r)).relation for r in records] == core


def test_predicted_types_with_the_shipped_classifier(sample: Path, tmp_path: Path) -> None:
    roc = agent(tmp_path, encoder="embedder", use_types=True)
    out = roc.invoke(roc_input(read_records(sample)[0]))
    assert out.head.type in ENTITY_TYPES and out.head.type_source == "predicted"
    assert "(" in out.marked_text.split("| head:")[1]  # "head: Cap and Gown (thing)"


def test_eval_writes_the_report_and_the_confusion_matrix(trained: Path, sample: Path, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    report = tmp_path / "roc.json"
    cli(["eval", "roc", "--data", str(sample), "--val", str(sample), "--model", str(trained), "--report", str(report),
         "--ablation", "full", "--ablation", "zero_shot_label_names", "--limit", "12"], monkeypatch)
    data = json.loads(report.read_text())
    full, names = data["runs"]["full"], data["runs"]["zero_shot_label_names"]
    assert full["records"] == 12 and 0.0 <= full["f1"] <= 1.0 and full["none_rule"]["source"] == "roc.json"
    assert names["none_rule"]["source"].startswith("calibrated on") and names["dev"]["n"] == 30
    assert sum(map(sum, full["confusion"]["matrix"])) == 12 and len(full["confusion"]["labels"]) == 23
    assert full["latency"]["median_ms"] > 0 and full["throughput_per_s"] > 0
    assert Path(data["plot"]) == report.with_suffix(".png") and report.with_suffix(".png").stat().st_size > 1000
