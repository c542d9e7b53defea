"""Does a tuned scorer encoder raise i2cr accuracy? Untuned vs tuned embedder on the held-out records.

Both runs use the same profile (graph config, scorer weights, tools) and differ only in the
embedder's model: the profile's (the packaged MiniLM on the cpu profile) or the fine-tuned one of
:mod:`~groundgraph.graphs.i2cr.encoder_training`. Only the validation part of the training split is
evaluated, so no evaluated record was trained on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from groundgraph.agents.evaluation.common import environment
from groundgraph.agents.evaluation.i2cr import evaluate

_KEEP = ("records", "errors", "top1", "top1_when_gold_in_candidates", "gold_in_candidates", "mean_rounds",
         "fallback_rate", "by_accepted_by", "wall_seconds", "throughput_per_s", "error_examples")


def compare(model_dir: str | Path, records: Sequence[Mapping[str, Any]], *, profile: str | None = "cpu",
            config: str | None = None, threads: int | None = None,
            progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Top-1 of the profile's i2cr agent with its own embedder and with the tuned one in ``model_dir``."""
    from groundgraph.agents.agent import load_agent

    if threads:
        import torch

        torch.set_num_threads(threads)
    rows = [dict(r) for r in records]
    runs: dict[str, Any] = {}
    variants: dict[str, dict[str, Any]] = {
        "untuned": {},
        "tuned": {"tools": {"embedder": {"model": str(model_dir), "disk_cache": False}}},
    }
    for name, overrides in variants.items():
        agent = load_agent("i2cr", profile, config=config, trace=False, **overrides)
        t0 = time.perf_counter()
        summary, per_record = evaluate(agent, rows, progress=(lambda d, t, n=name: progress(n, d, t))
                                       if progress else None)
        runs[name] = {k: summary[k] for k in _KEEP if k in summary}
        runs[name]["embedder"] = {k: v for k, v in agent.toolbox.configs["embedder"].items()
                                  if k in ("backend", "model", "disk_cache")}
        runs[name]["seconds_incl_model_load"] = round(time.perf_counter() - t0, 1)
        runs[name]["_correct"] = {r["id"]: r["correct"] for r in per_record}
    before, after = runs["untuned"].pop("_correct"), runs["tuned"].pop("_correct")
    both = set(before) & set(after)
    return {
        "graph": "i2cr", "profile": profile, "environment": environment(), "tuned_model": str(model_dir),
        "val_records": len(rows),
        "top1": {"untuned": runs["untuned"]["top1"], "tuned": runs["tuned"]["top1"]},
        "delta_top1": round((runs["tuned"]["top1"] or 0) - (runs["untuned"]["top1"] or 0), 4),
        "fixed": sum(after[i] and not before[i] for i in both),
        "broken": sum(before[i] and not after[i] for i in both),
        "runs": runs,
    }
