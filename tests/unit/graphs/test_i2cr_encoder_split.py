"""The i2cr scorer-encoder training data: the id-hash split and the examples (no model needed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from groundgraph.graphs.i2cr.encoder_training import Example, examples_from, ids_hash, read_mel, split_records
from groundgraph.graphs.i2cr.scoring import Evidence
from groundgraph.tools.errors import InputError


def _records(n: int) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "mention": f"m{i}", "context": "", "candidates": [], "gold": {"id": "x"}}
            for i in range(n)]


def test_split_is_deterministic_disjoint_and_complete() -> None:
    records = _records(1000)
    train, val = split_records(records, val_fraction=0.2, seed=3)
    train2, val2 = split_records(list(reversed(records)), val_fraction=0.2, seed=3)
    ids_train, ids_val = {r["id"] for r in train}, {r["id"] for r in val}
    assert not ids_train & ids_val
    assert ids_train | ids_val == {r["id"] for r in records}
    assert ids_val == {r["id"] for r in val2} and ids_train == {r["id"] for r in train2}  # order does not matter
    assert 150 <= len(val) <= 250  # about the fraction asked for
    assert ids_hash(list(ids_val)) == ids_hash([r["id"] for r in val2])


def test_split_depends_on_the_seed_and_is_stable_when_records_are_added() -> None:
    records = _records(500)
    _, val_a = split_records(records, seed=0)
    _, val_b = split_records(records, seed=1)
    assert {r["id"] for r in val_a} != {r["id"] for r in val_b}
    _, val_more = split_records(records + _records(600)[500:], seed=0)
    assert {r["id"] for r in val_a} <= {r["id"] for r in val_more}


@pytest.mark.parametrize("bad", [[{"mention": "x"}], [{"id": "a"}, {"id": "a"}]])
def test_split_needs_unique_ids(bad: list[dict[str, Any]]) -> None:
    with pytest.raises(InputError):
        split_records(bad)


def test_split_rejects_a_degenerate_fraction() -> None:
    with pytest.raises(InputError):
        split_records(_records(3), val_fraction=1.0)


def test_examples_embed_what_the_scorer_embeds(fixtures_dir: Path) -> None:
    records = [json.loads(line) for line in (fixtures_dir / "mel_sample.jsonl").open(encoding="utf-8")]
    examples = examples_from(records)
    assert examples and len(examples) <= len(records)
    for ex, rec in zip(examples, (r for r in records if r["id"] in {e.id for e in examples}), strict=True):
        assert isinstance(ex, Example)
        assert rec["candidates"][ex.gold]["id"] == rec["gold"]["id"]
        cues = {k: v for k, v in rec["visual_cues"].items() if v.strip()}
        full = Evidence.build(rec["mention"], rec["context"], cues).evidence_text
        assert ex.evidence_text(len(ex.cues)) == full
        assert ex.evidence_text(0) == Evidence.build(rec["mention"], rec["context"], {}).evidence_text
    no_gold = {**records[0], "gold": {"id": "not-a-candidate"}}
    assert examples_from([no_gold]) == []


def test_read_mel_needs_gold_entities(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(_records(1)[0]) + "\n\n")
    assert [r["id"] for r in read_mel(good)] == ["r0"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "mention": "m"}) + "\n")
    with pytest.raises(InputError):
        read_mel(bad)
