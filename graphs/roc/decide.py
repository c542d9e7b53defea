"""ROC's answer: the closest relation description, or "None" by a rule calibrated on dev data.

Retrieval always returns a nearest description, but most MNRE pairs (about 60%) have no
relation. The rule: the best non-None relation wins only if its similarity reaches
``threshold`` and beats the "None" description's similarity by at least ``margin``;
otherwise the answer is "None". Both are chosen on a dev split to maximise micro-F1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from groundgraph.graphs.roc.encoding import NONE_LABEL
from groundgraph.tools.errors import InputError


class NoneRule(BaseModel):
    """When retrieval's best non-None relation is overruled by "None"."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(-1.0, description="min cosine of the best non-None description")
    margin: float = Field(0.0, description="min (best non-None cosine - None cosine); ignored without None")


class Metrics(BaseModel):
    """MNRE scoring: micro P/R/F1 over non-None relations (as the MNRE papers), and accuracy."""

    precision: float
    recall: float
    f1: float
    accuracy: float
    n: int
    predicted_relations: int = Field(description="predictions other than None (precision's denominator)")
    gold_relations: int = Field(description="gold labels other than None (recall's denominator)")


class Decision(BaseModel):
    """One pair's answer with the scores that led to it (for the trace)."""

    label: str
    best_relation: str
    best_score: float
    none_score: float | None
    reason: str


def score(gold: Sequence[str], predicted: Sequence[str], none_label: str = NONE_LABEL) -> Metrics:
    """A prediction is correct when it equals a gold label that is not None."""
    if len(gold) != len(predicted):
        raise InputError(f"{len(gold)} gold labels for {len(predicted)} predictions")
    correct = sum(g == p and g != none_label for g, p in zip(gold, predicted, strict=True))
    n_pred = sum(p != none_label for p in predicted)
    n_gold = sum(g != none_label for g in gold)
    precision = correct / n_pred if n_pred else 0.0
    recall = correct / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = sum(g == p for g, p in zip(gold, predicted, strict=True)) / len(gold) if gold else 0.0
    return Metrics(
        precision=precision,
        recall=recall,
        f1=f1,
        accuracy=accuracy,
        n=len(gold),
        predicted_relations=n_pred,
        gold_relations=n_gold,
    )


def _split(
    sims: np.ndarray[Any, Any], labels: Sequence[str], none_label: str
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any] | None, list[str]]:
    s = np.asarray(sims, dtype=np.float32)
    if s.ndim != 2 or s.shape[1] != len(labels):
        raise InputError(f"similarities have shape {s.shape}, expected (n, {len(labels)})")
    rel_cols = [i for i, lab in enumerate(labels) if lab != none_label]
    if not rel_cols:
        raise InputError("the label set has no relation other than None")
    rel = s[:, rel_cols]
    best_idx = rel.argmax(axis=1)
    best = rel[np.arange(len(s)), best_idx]
    none = s[:, labels.index(none_label)] if none_label in labels else None
    rel_labels = [labels[i] for i in rel_cols]
    return best, best_idx, none, rel_labels


def _apply(
    best: np.ndarray[Any, Any], none: np.ndarray[Any, Any] | None, threshold: float, margin: float
) -> np.ndarray[Any, Any]:
    keep = best >= threshold
    if none is not None:
        keep &= (best - none) >= margin
    return keep


def decide_batch(
    sims: np.ndarray[Any, Any], labels: Sequence[str], rule: NoneRule, none_label: str = NONE_LABEL
) -> list[Decision]:
    """Apply the rule to a (n, len(labels)) matrix of cosine similarities."""
    labels = list(labels)
    best, best_idx, none, rel_labels = _split(sims, labels, none_label)
    keep = _apply(best, none, rule.threshold, rule.margin)
    out = []
    for i in range(len(best)):
        rel = rel_labels[int(best_idx[i])]
        none_i = None if none is None else float(none[i])
        if keep[i]:
            reason = f"best relation {best[i]:.3f} >= threshold {rule.threshold:.3f}"
            if none_i is not None:
                reason += f" and beats None by {best[i] - none_i:.3f} >= margin {rule.margin:.3f}"
        elif best[i] < rule.threshold:
            reason = f"best relation {best[i]:.3f} < threshold {rule.threshold:.3f}"
        else:
            reason = f"best relation beats None by {best[i] - (none_i or 0.0):.3f} < margin {rule.margin:.3f}"
        out.append(
            Decision(
                label=rel if keep[i] else none_label,
                best_relation=rel,
                best_score=float(best[i]),
                none_score=none_i,
                reason=reason,
            )
        )
    return out


def calibrate(
    sims: np.ndarray[Any, Any],
    labels: Sequence[str],
    gold: Sequence[str],
    *,
    none_label: str = NONE_LABEL,
    grid: int = 60,
    use_threshold: bool = True,
) -> tuple[NoneRule, Metrics]:
    """Choose threshold and margin on dev data to maximise micro-F1 (grid over quantiles).

    ``use_threshold=False`` fits the margin alone (threshold -inf): one parameter, less to
    overfit when the dev split is small.
    """
    labels = list(labels)
    if len(gold) != len(sims):
        raise InputError(f"{len(gold)} gold labels for {len(sims)} rows of similarities")
    best, best_idx, none, rel_labels = _split(sims, labels, none_label)
    gold_arr = np.asarray(gold)
    pred_rel = np.asarray(rel_labels)[best_idx]
    hit = pred_rel == gold_arr  # correct if this pair is kept
    n_gold = int((gold_arr != none_label).sum())
    qs = np.linspace(0.0, 1.0, grid + 1)
    thresholds = np.unique(np.quantile(best, qs)) if use_threshold else np.array([-np.inf])
    margins = np.unique(np.quantile(best - none, qs)) if none is not None else np.array([0.0])
    best_f1, best_rule = -1.0, (float(thresholds[0]), float(margins[0]))
    for t in thresholds:
        for m in margins:
            keep = _apply(best, none, float(t), float(m))
            n_pred = int(keep.sum())
            correct = int((keep & hit).sum())
            f1 = 2 * correct / (n_pred + n_gold) if n_pred + n_gold else 0.0
            if f1 > best_f1 + 1e-12:
                best_f1, best_rule = f1, (float(t), float(m))
    threshold = best_rule[0] if np.isfinite(best_rule[0]) else -1.0
    rule = NoneRule(threshold=threshold, margin=best_rule[1])
    predicted = [d.label for d in decide_batch(sims, labels, rule, none_label)]
    return rule, score(gold, predicted, none_label)
