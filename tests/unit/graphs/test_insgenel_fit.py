"""benchmarks/insgenel_fit.py on synthetic spans: labels from gold, both models, threshold, the weights
file it wrote matches what the decider reads."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
from benchmark_script import load_benchmark

from groundgraph.graphs.insgenel import decide


def fit_module() -> ModuleType:
    return load_benchmark("insgenel_fit")


def _doc(text: str, spans: list[list[tuple[int, int, str, dict[str, float]]]]) -> dict[str, Any]:
    return {"spans": [{"copy": len(opts) == 1, "llm_called": False, "options": [
        {"start": a, "end": b, "entity_id": e, "f": [f.get(k, 1.0 if k == "bias" else 0.0) for k in decide.FEATURES]}
        for a, b, e, f in opts]} for opts in spans]}


def test_fit_learns_which_feature_marks_the_right_option_and_when_to_link() -> None:
    fit = fit_module()
    corpora = []
    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        records, docs = [], []
        for i in range(30):
            text = "Steve met Paris there."
            right, wrong = ("Q1", "Q2") if i % 2 else ("Q2", "Q1")
            noise = float(rng.normal(0, 0.1))
            spans = [[(0, 5, right, {"ctx_sim": 0.8 + noise, "full": 1.0}), (0, 5, wrong, {"ctx_sim": 0.2})],
                     [(10, 15, "Q3", {"ctx_sim": 0.1, "lower_mention": 1.0})]]  # never gold: no entity
            records.append({"text": text, "labels": [{"span": [0, 5], "entity_id": right}]})
            docs.append(_doc(text, spans))
        corpora.append(fit.Corpus(name, records, [fit.label(r, d) for r, d in zip(records, docs, strict=True)]))
    assert [s.y.tolist() for s in corpora[0].spans[0]] == [[1.0, 0.0], [0.0]]
    model = fit.fit(corpora, with_llm=False, l2=0.1)
    assert model["rank"]["ctx_sim"] > 0 and not any(k in model["rank"] for k in fit.EXCLUDED + fit.LLM_FEATURES)
    assert fit.score(corpora, model)["f1"] == 1.0  # the right entity on span 1, nothing on span 2
    assert 0.05 <= model["threshold"] <= 0.9


def test_shipped_weights_come_from_the_fit_and_leave_out_the_excluded_features() -> None:
    fit = fit_module()
    weights = decide.load_weights()
    assert "insgenel_fit.py" in weights["about"] and weights["fit"]["excluded_features"] == list(fit.EXCLUDED)
    for set_name in ("with_llm", "without_llm"):
        assert set(weights["fit"]["leave_one_dataset_out_f1"][set_name]) == {
            "kore50", "msnbc", "derczynski", "oke-2015-eval"}
        for key in ("rank", "link"):
            assert not set(weights[set_name][key]) & set(fit.EXCLUDED)
    assert not set(weights["without_llm"]["rank"]) & set(fit.LLM_FEATURES)
    assert weights["with_llm"]["threshold"] == decide.DEFAULT_THRESHOLD
