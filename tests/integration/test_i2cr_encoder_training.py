"""Fine-tuning the i2cr scorer's encoder with the real packaged MiniLM on a few fixture records.

A few optimiser steps only: the point is that the loop runs, the split holds out records, and the
saved encoder loads back through the embedder tool and drives the i2cr agent (cpu profile).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from groundgraph.agents.agent import load_agent
from groundgraph.agents.cli import app
from groundgraph.agents.evaluation.i2cr import load_mel, mel_input
from groundgraph.graphs.i2cr.encoder_training import (
    TUNING_FILE,
    ScorerTrainConfig,
    ids_hash,
    train,
    validation_records,
)
from groundgraph.tools.embedder import SentenceTransformerEmbedder

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("scorer")
    data = tmp / "mel.jsonl"
    shutil.copy(fixtures_dir / "mel_sample.jsonl", data)
    out = tmp / "encoder"
    config = ScorerTrainConfig(data_path=data, out_dir=out, batch_size=4, max_steps=4, threads=1, lr=5e-5,
                               progress_bar=False)
    result = train(config)
    assert result.steps == 4 and len(result.losses) == 4
    assert all(math.isfinite(v) for v in result.losses)
    return data, out


def test_split_and_figures_are_recorded(trained: tuple[Path, Path]) -> None:
    data, out = trained
    meta = json.loads((out / TUNING_FILE).read_text())
    split = meta["split"]
    assert split["train_records"] + split["val_records"] == split["records"] == 25
    assert split["val_records"] > 0
    val = validation_records(out / TUNING_FILE, data)
    assert ids_hash([r["id"] for r in val]) == split["val_ids_hash"] != split["train_ids_hash"]
    assert meta["steps"] == 4 and meta["seconds"] > 0


def test_tuned_encoder_loads_through_the_embedder_and_moved(trained: tuple[Path, Path]) -> None:
    _, out = trained
    texts = ["Richard Bennett Carmichael", "Name: Richard Feetham. Sex: male. Occupation: judge."]
    tuned = SentenceTransformerEmbedder(model=str(out)).embed(texts)
    base = SentenceTransformerEmbedder().embed(texts)
    assert tuned.shape == base.shape == (2, 384)
    assert np.allclose(np.linalg.norm(tuned, axis=1), 1.0, atol=1e-4)
    assert not np.allclose(tuned, base, atol=1e-4)  # the weights were trained
    assert SentenceTransformerEmbedder(model=str(out)).model().max_seq_length == \
        SentenceTransformerEmbedder().model().max_seq_length


def test_i2cr_agent_answers_with_the_tuned_encoder(trained: tuple[Path, Path], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    data, out = trained
    monkeypatch.setenv("GROUNDGRAPH_CACHE", str(tmp_path / "cache"))
    agent = load_agent("i2cr", "cpu", trace=False, tools={"embedder": {"model": str(out), "disk_cache": False}})
    assert agent.toolbox.configs["embedder"]["model"] == str(out)
    for record in validation_records(out / TUNING_FILE, data)[:3]:
        result = agent.invoke(mel_input(record))
        assert result.entity is not None
        assert result.entity.id in {c["id"] for c in record["candidates"]}


def test_cli_trains_and_reports(fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROUNDGRAPH_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "mel.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in load_mel(fixtures_dir / "mel_sample.jsonl", limit=12)))
    out, report = tmp_path / "enc", tmp_path / "report.json"
    res = CliRunner().invoke(app, ["train", "scorer", "--data", str(data), "--out", str(out), "--max-steps", "1",
                                   "--batch-size", "2", "--val-fraction", "0.25", "--report", str(report), "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(report.read_text())
    assert rep["val_records"] == rep["training"]["split"]["val_records"] > 0
    assert set(rep["top1"]) == {"untuned", "tuned"}
    assert all(0 <= v <= 1 for v in rep["top1"].values())
    assert rep["runs"]["tuned"]["embedder"]["model"] == str(out)
