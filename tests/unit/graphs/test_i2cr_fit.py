"""benchmarks/i2cr_fit.py on the shipped MEL sample with the hashing embedder: cue stages, the feature
cache, fitting with features left out, top-1."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest
from benchmark_script import load_benchmark

from groundgraph.graphs.i2cr.scoring import FEATURE_NAMES, CandidateScorer, ScorerWeights
from groundgraph.tools.embedder import HashingEmbedder

ROOT = Path(__file__).resolve().parents[3]
SAMPLE = ROOT / "tests" / "fixtures" / "mel_sample.jsonl"


@pytest.fixture(scope="module")
def fit() -> ModuleType:
    return load_benchmark("i2cr_fit")


def test_stages_add_the_cues_one_by_one_in_the_papers_order(fit: ModuleType) -> None:
    cues = {"tags": "man; suit", "ocr": "VOTE", "caption": "a man speaking", "objects": "person", "dense_captions": " "}
    assert fit.stages(cues) == [{}, {"ocr": "VOTE"}, {"ocr": "VOTE", "caption": "a man speaking"},
                                {"ocr": "VOTE", "caption": "a man speaking", "tags": "man; suit"}]
    assert fit.stages({}) == [{}]


def test_features_are_cached_and_a_fit_scores_its_rows(fit: ModuleType, tmp_path: Path) -> None:
    scorer = CandidateScorer(HashingEmbedder())
    cache = tmp_path / "features.json.gz"
    data = fit.cached_extract(scorer, SAMPLE, cache, None)
    assert len(data) == 25 and all(len(rec) >= 1 for rec in data)
    assert all(set(f) == set(FEATURE_NAMES) for rec in data for feats, _ in rec for f in feats)

    class NoScorer:
        def featurize(self, *args: object) -> None:
            raise AssertionError("the cache should answer")

    assert fit.cached_extract(NoScorer(), SAMPLE, cache, None) == data

    rows = [row for rec in data for row in rec]
    names_only = ScorerWeights(**({n: 0.0 for n in FEATURE_NAMES} | {"name_token_set": 1.0}))
    fitted = fit.fit(rows, ScorerWeights(llm=0.5), (), 3e-3)
    assert fitted.llm == 0.5  # LLM settings come from the base
    assert fit.top1(fitted, rows) >= fit.top1(names_only, rows)
    dropped = fit.fit(rows, ScorerWeights(), ("evidence_cosine", "context_cosine"), 3e-3)
    assert dropped.evidence_cosine == dropped.context_cosine == 0.0 and dropped.name_token_set != 0.0
    assert 0.0 <= fit.top1(dropped, rows) <= 1.0
