"""Evaluation and calibration of i2cr on MEL benchmark records (WikiMEL, WikiDiverse, RichMEL).

Top-1 accuracy counts every record (gold outside the candidates is wrong), as the paper does.
"""

from __future__ import annotations

import functools
import itertools
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from groundgraph.agents.agent import Agent
from groundgraph.agents.evaluation.common import environment, latency_summary, load_benchmark, pyplot
from groundgraph.graphs.i2cr.config import CUE_ORDER
from groundgraph.graphs.i2cr.graph import initial_state, run_plain
from groundgraph.tools.errors import GroundgraphError, InputError

#: ablation name -> i2cr config overrides
ABLATIONS: dict[str, dict[str, Any]] = {
    "full": {},
    "text_only": {"use_inter": False, "cue_order": []},
    "all_cues_at_once": {"all_cues_at_once": True},
    "no_icr": {"use_intra": False},
    "no_iav": {"use_inter": False},
    "reverse_cue_order": {"cue_order": list(reversed(CUE_ORDER))},
}


def mel_input(record: Mapping[str, Any], image_dir: Path | None = None) -> dict[str, Any]:
    """A MEL benchmark record as i2cr input: the image is a file name, resolved in ``image_dir``.

    The benchmark files carry no pixels, only the cue texts extracted from each image; without
    ``image_dir`` the image field is dropped and the precomputed cues stand in for it.
    """
    inp = {k: record[k] for k in ("id", "mention", "context", "candidates", "visual_cues") if k in record}
    if image_dir is not None and record.get("image"):
        inp["image"] = str(image_dir / record["image"])
    return inp


def load_mel(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    return load_benchmark(path, limit, lambda r: "gold" in r, "a MEL record with a gold entity")


def score_run(record: Mapping[str, Any], output: Mapping[str, Any], seconds: float) -> dict[str, Any]:
    entity = output.get("entity") or {}
    gold = record["gold"]["id"]
    return {"id": record.get("id"), "correct": entity.get("id") == gold, "gold_in_candidates":
            bool(record.get("gold_in_candidates", any(c["id"] == gold for c in record.get("candidates", [])))),
            "accepted_by": output["accepted_by"], "rounds": output["rounds"], "llm_calls": output.get("llm_calls", 0),
            "gates": output.get("gates", []), "seconds": seconds, "predicted": entity.get("id"), "gold": gold}


def summarize(rows: list[dict[str, Any]], errors: list[dict[str, Any]], wall: float) -> dict[str, Any]:
    n = len(rows) + len(errors)
    correct = sum(r["correct"] for r in rows)
    by_accept: dict[str, list[bool]] = defaultdict(list)
    by_round: dict[int, list[bool]] = defaultdict(list)
    for r in rows:
        by_accept[r["accepted_by"]].append(r["correct"])
        if r["accepted_by"] != "fallback":
            by_round[r["rounds"]].append(r["correct"])
    gates: dict[str, Counter[str]] = {"intra": Counter(), "inter": Counter()}
    for r in rows:
        for g in r["gates"]:
            gates[g["gate"]]["passed" if g["passed"] else ("unknown" if g["passed"] is None else "failed")] += 1
    in_cands = [r for r in rows if r["gold_in_candidates"]]
    return {
        "records": n,
        "errors": len(errors),
        "top1": round(correct / n, 4) if n else None,
        "top1_when_gold_in_candidates": round(sum(r["correct"] for r in in_cands) / len(in_cands), 4)
        if in_cands else None,
        "gold_in_candidates": round(len(in_cands) / n, 4) if n else None,
        "by_accepted_by": {k: {"n": len(v), "accuracy": round(sum(v) / len(v), 4)}
                           for k, v in sorted(by_accept.items())},
        "accuracy_by_accepting_round": {str(k): {"n": len(v), "accuracy": round(sum(v) / len(v), 4)}
                                        for k, v in sorted(by_round.items())},
        "fallback_rate": round(len(by_accept.get("fallback", [])) / n, 4) if n else None,
        "gate_pass_rates": {g: {**dict(c), "pass_rate": round(c["passed"] / max(1, sum(c.values())), 4)}
                            for g, c in gates.items()},
        "mean_rounds": round(sum(r["rounds"] for r in rows) / max(1, len(rows)), 3),
        "llm": {"calls_per_record": round(sum(r["llm_calls"] for r in rows) / max(1, len(rows)), 3),
                "records_with_llm_call": round(sum(r["llm_calls"] > 0 for r in rows) / max(1, len(rows)), 4)},
        "latency": latency_summary([r["seconds"] for r in rows]),
        "throughput_per_s": round(n / wall, 3) if wall > 0 else None,
        "wall_seconds": round(wall, 2),
        "error_examples": errors[:5],
    }


def evaluate(agent: Agent, records: list[dict[str, Any]], *, image_dir: Path | None = None,
             progress: Callable[[int, int], None] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the agent (through LangGraph) on every record; return the summary and per-record rows."""
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    start = time.perf_counter()
    for i, record in enumerate(records, 1):
        t0 = time.perf_counter()
        try:
            out = agent.invoke(mel_input(record, image_dir)).model_dump(mode="json")
            rows.append(score_run(record, out, time.perf_counter() - t0))
        except GroundgraphError as exc:
            errors.append({"id": record.get("id"), "error": f"{type(exc).__name__}: {exc}"})
        if progress:
            progress(i, len(records))
    return summarize(rows, errors, time.perf_counter() - start), rows


def plot(rows: list[dict[str, Any]], config: Mapping[str, Any], path: Path, title: str) -> Path:
    """Accuracy by accepting round, and gate score distributions (right vs wrong answers)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    by_round: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        by_round["fallback" if r["accepted_by"] == "fallback" else f"round {r['rounds']}"].append(r["correct"])
    labels = sorted(by_round, key=lambda k: (k == "fallback", k))
    axes[0].bar(labels, [sum(by_round[k]) / len(by_round[k]) for k in labels], color="#4a7fb5")
    for i, k in enumerate(labels):
        axes[0].text(i, 0.02, f"n={len(by_round[k])}", ha="center", color="white", fontsize=8)
    axes[0].set_ylim(0, 1)
    axes[0].set_title("accuracy by the round that answered")
    for ax, gate, key in ((axes[1], "intra", "alpha"), (axes[2], "inter", "beta")):
        right = [g["value"] for r in rows for g in r["gates"] if g["gate"] == gate and g["value"] is not None
                 and g["entity_id"] == r["gold"]]
        wrong = [g["value"] for r in rows for g in r["gates"] if g["gate"] == gate and g["value"] is not None
                 and g["entity_id"] != r["gold"]]
        ax.hist([right, wrong], bins=30, label=["selected = gold", "selected != gold"], color=["#3a9d5d", "#c8553d"],
                stacked=False, alpha=0.8)
        ax.axvline(config[key], color="black", linestyle="--", label=f"{key} = {config[key]}")
        scale = next((g["scale"] for r in rows for g in r["gates"] if g["gate"] == gate), "")
        ax.set_title(f"{'ICR' if gate == 'intra' else 'IAV'} gate scores ({scale})")
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report(agent: Agent, records: list[dict[str, Any]], data_path: str, ablations: Iterable[str], *,
           image_dir: Path | None = None, plot_path: Path | None = None,
           progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """The full evaluation report: one row per ablation, the first one plotted."""
    out: dict[str, Any] = {"graph": "i2cr", "data": data_path, "profile": agent.settings.profile,
                           "environment": environment(), "tools": {r: c.get("backend") for r, c in
                                                                    agent.toolbox.configs.items()},
                           "runs": {}}
    for n, name in enumerate(ablations):
        if name not in ABLATIONS:
            raise InputError(f"unknown ablation {name!r}; choose from {', '.join(ABLATIONS)}")
        variant = agent if not ABLATIONS[name] else agent.with_config(**ABLATIONS[name])
        step = functools.partial(progress, name) if progress else None
        summary, rows = evaluate(variant, records, image_dir=image_dir, progress=step)
        summary["config"] = variant.config.model_dump(mode="json")
        out["runs"][name] = summary
        if plot_path and n == 0:
            out["plot"] = str(plot(rows, summary["config"], plot_path, f"i2cr on {Path(data_path).name} ({name})"))
    return out


# --- calibration -----------------------------------------------------------------------------
class _MemoScorer:
    """Remembers each ranking: across a grid, the same (record, cues, exclusions) recur often."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer
        self.name = getattr(scorer, "name", "scorer")
        self._memo: dict[Any, Any] = {}

    def rank(self, *, mention: str, context: str, cues: Mapping[str, str], candidates: list[dict[str, Any]],
             excluded: Any = ()) -> Any:
        key = (mention, context, tuple(sorted(cues.items())), tuple(c["id"] for c in candidates),
               frozenset(excluded))
        if key not in self._memo:
            self._memo[key] = self.scorer.rank(mention=mention, context=context, cues=cues, candidates=candidates,
                                               excluded=excluded)
        return self._memo[key]


def calibrate(agent: Agent, records: list[dict[str, Any]], alphas: list[float], betas: list[float],
              fallbacks: list[str] | None = None,
              progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Grid-search alpha, beta (and the fallback rule) by Top-1 accuracy with the plain-loop runner.

    Every grid point runs the same nodes and gates as the graph (``run_plain``); rankings are
    memoised, so the grid costs little more than one pass. Ties prefer fewer rounds (faster).
    """
    grid = list(itertools.product(alphas, betas, fallbacks or [agent.config.fallback]))
    results = []
    base = agent.context
    scorer = _MemoScorer(base.scorer)
    inputs = [agent.validate(mel_input(r)) for r in records]
    for i, (alpha, beta, fallback) in enumerate(grid, 1):
        config = base.config.model_copy(update={"alpha": alpha, "beta": beta, "fallback": fallback})
        ctx = type(base)(**{**base.__dict__, "config": config, "scorer": scorer})
        correct = rounds = 0
        for record, inp in zip(records, inputs, strict=True):
            final = run_plain(initial_state(inp, config), ctx)
            entity = final["result"]["entity"] or {}
            correct += entity.get("id") == record["gold"]["id"]
            rounds += final["result"]["rounds"]
        results.append({"alpha": alpha, "beta": beta, "fallback": fallback, "top1": round(correct / len(records), 4),
                        "mean_rounds": round(rounds / len(records), 3)})
        if progress:
            progress(i, len(grid))
    best = max(results, key=lambda r: (r["top1"], -r["mean_rounds"]))
    return {"grid": results, "best": best, "records": len(records),
            "scale": {"alpha": "cosine", "beta": getattr(base.image_text, "scale", None)}}
