"""Evaluation of roc on MNRE-style records: micro P/R/F1 over the non-None relations (as the MNRE papers)
and accuracy, per-relation scores, a confusion matrix, latency and throughput, with ablations.

Every run goes through the graph (``Agent.invoke``). Ablations change the graph config: the untrained
encoder (zero-shot over descriptions) and bare label names instead of descriptions (the ROC paper's key
ablation). An ablation whose None rule does not come from a trained encoder's ``roc.json`` has its rule
calibrated on the dev file (``val_records``) first, so every row is scored the same way: rule chosen on
dev, applied once to the test file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from groundgraph.agents.agent import Agent
from groundgraph.agents.evaluation.common import environment, latency_summary, load_benchmark, pyplot
from groundgraph.graphs.roc.decide import NoneRule, calibrate, score
from groundgraph.graphs.roc.encoding import NONE_LABEL
from groundgraph.tools.errors import GroundgraphError, InputError

#: ablation name -> roc config overrides
ABLATIONS: dict[str, dict[str, Any]] = {
    "full": {},
    "zero_shot": {"encoder": "embedder"},
    "label_names": {"targets": "label_names"},
    "zero_shot_label_names": {"encoder": "embedder", "targets": "label_names"},
}
ABLATION_NOTES = {
    "full": "the configured encoder over relation descriptions",
    "zero_shot": "the profile's embedder (packaged MiniLM), untrained, over relation descriptions",
    "label_names": "the configured encoder queried with bare label names instead of descriptions (not retrained)",
    "zero_shot_label_names": "the untrained embedder over bare label names",
}


def roc_input(record: Mapping[str, Any], image_dir: Path | None = None) -> dict[str, Any]:
    """An MNRE record as roc input. MNRE records name their image file but carry no pixels: without
    ``image_dir`` the image is dropped (text only)."""
    inp = {k: record[k] for k in ("id", "tokens", "text", "head", "tail") if k in record}
    if image_dir is not None and record.get("image"):
        inp["image"] = str(image_dir / record["image"])
    return inp


def load_mnre(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    return load_benchmark(path, limit, lambda r: "relation" in r, "an MNRE record with a gold relation")


def run_records(agent: Agent, records: Sequence[Mapping[str, Any]], *, image_dir: Path | None = None,
                progress: Callable[[int, int], None] | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                                             float]:
    """(rows, errors, wall seconds): one row per record with gold, prediction, every label's score, latency."""
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    start = time.perf_counter()
    for i, record in enumerate(records, 1):
        t0 = time.perf_counter()
        try:
            out = agent.invoke(roc_input(record, image_dir))
            rows.append({"id": record.get("id"), "gold": str(record["relation"]), "predicted": out.relation,
                         "scores": out.scores, "seconds": time.perf_counter() - t0})
        except GroundgraphError as exc:
            errors.append({"id": record.get("id"), "error": f"{type(exc).__name__}: {exc}"})
        if progress:
            progress(i, len(records))
    return rows, errors, time.perf_counter() - start


def _matrix(rows: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> np.ndarray[Any, Any]:
    return np.asarray([[r["scores"][lab] for lab in labels] for r in rows], dtype=np.float32)


def confusion(rows: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> list[list[int]]:
    """counts[gold][predicted] in ``labels`` order."""
    at = {lab: i for i, lab in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=int)
    for r in rows:
        counts[at[r["gold"]], at[r["predicted"]]] += 1
    return counts.tolist()


def per_relation(rows: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> dict[str, dict[str, Any]]:
    out = {}
    for lab in labels:
        if lab == NONE_LABEL:
            continue
        gold = sum(r["gold"] == lab for r in rows)
        pred = sum(r["predicted"] == lab for r in rows)
        hit = sum(r["gold"] == r["predicted"] == lab for r in rows)
        p, rec = hit / pred if pred else 0.0, hit / gold if gold else 0.0
        out[lab] = {"gold": gold, "predicted": pred, "correct": hit, "precision": round(p, 4),
                    "recall": round(rec, 4), "f1": round(2 * p * rec / (p + rec), 4) if p + rec else 0.0}
    return out


def _metrics(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    m = score(gold, predicted)
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in m.model_dump().items()}


def summarize(rows: list[dict[str, Any]], errors: list[dict[str, Any]], wall: float,
              labels: Sequence[str]) -> dict[str, Any]:
    gold = [r["gold"] for r in rows]
    argmax = [labels[int(i)] for i in _matrix(rows, labels).argmax(axis=1)] if rows else []
    n = len(rows) + len(errors)
    return {
        "records": n,
        "errors": len(errors),
        **_metrics(gold, [r["predicted"] for r in rows]),
        "argmax": _metrics(gold, argmax),
        "per_relation": per_relation(rows, labels),
        "confusion": {"labels": list(labels), "matrix": confusion(rows, labels)},
        "latency": latency_summary([r["seconds"] for r in rows]),
        "throughput_per_s": round(n / wall, 3) if wall > 0 else None,
        "wall_seconds": round(wall, 2),
        "error_examples": errors[:5],
    }


def calibrate_rule(agent: Agent, records: Sequence[Mapping[str, Any]], *, image_dir: Path | None = None,
                   progress: Callable[[int, int], None] | None = None) -> tuple[NoneRule, dict[str, Any]]:
    """The None rule that maximises micro-F1 on ``records`` (a dev file), with its dev scores."""
    rows, errors, _ = run_records(agent, records, image_dir=image_dir, progress=progress)
    if not rows:
        raise InputError(f"no dev record could be run ({errors[:1]})")
    labels = agent.context.labels
    rule, metrics = calibrate(_matrix(rows, labels), labels, [r["gold"] for r in rows])
    return rule, {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.model_dump().items()}


def plot_confusion(matrix: Sequence[Sequence[int]], labels: Sequence[str], path: Path, title: str) -> Path:
    """Rows: gold, columns: predicted; each row normalised (shade = share of that gold label), counts written."""
    plt = pyplot()
    counts = np.asarray(matrix, dtype=float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    short = [lab.strip("/").replace("/", " ") if lab != NONE_LABEL else lab for lab in labels]
    fig, ax = plt.subplots(figsize=(13, 11))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            if counts[i, j]:
                ax.text(j, i, str(int(counts[i, j])), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(labels)), short, rotation=90, fontsize=8)
    ax.set_yticks(range(len(labels)), short, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report(agent: Agent, records: list[dict[str, Any]], data_path: str, ablations: Iterable[str], *,
           val_records: list[dict[str, Any]] | None = None, val_path: str | None = None,
           image_dir: Path | None = None, plot_path: Path | None = None,
           progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """One row per ablation; the first one's confusion matrix is plotted to ``plot_path``."""
    names = list(ablations)
    unknown = [n for n in names if n not in ABLATIONS]
    if unknown:
        raise InputError(f"unknown ablation(s) {unknown}; choose from {', '.join(ABLATIONS)}")
    out: dict[str, Any] = {"graph": "roc", "data": data_path, "val": val_path, "records": len(records),
                           "images": str(image_dir) if image_dir else "none (text only)",
                           "environment": environment(), "runs": {}}
    def step(label: str) -> Callable[[int, int], None] | None:
        return None if progress is None else lambda done, total: progress(label, done, total)

    for i, name in enumerate(names):
        run_agent = agent.with_config(**ABLATIONS[name]) if ABLATIONS[name] else agent
        ctx = run_agent.context
        rule_source, dev = ctx.rule_source, None
        if rule_source != "roc.json" and agent.config.none_rule is None and val_records:
            rule, dev = calibrate_rule(run_agent, val_records, image_dir=image_dir, progress=step(f"{name} (dev)"))
            run_agent = run_agent.with_config(none_rule=rule.model_dump())
            rule_source = f"calibrated on {val_path}"
        rows, errors, wall = run_records(run_agent, records, image_dir=image_dir, progress=step(name))
        labels = run_agent.context.labels
        summary = summarize(rows, errors, wall, labels)
        summary.update({"about": ABLATION_NOTES[name], "config": ABLATIONS[name],
                        "encoder": run_agent.context.encoder_source,
                        "none_rule": {**run_agent.context.rule.model_dump(), "source": rule_source},
                        "dev": dev})
        out["runs"][name] = summary
        if plot_path and i == 0:
            title = (f"roc ({name}) on {Path(data_path).name}: micro-F1 {summary['f1']:.3f}, "
                     f"acc {summary['accuracy']:.3f}")
            out["plot"] = str(plot_confusion(summary["confusion"]["matrix"], labels, plot_path, title))
    return out
