"""Fit the i2cr candidate scorer's feature weights (graphs/i2cr/scoring.py) and check them on held-out records.

The scorer is a conditional logit over each record's candidates (``ScorerWeights``, ``fit_weights``). This
script

1. computes every candidate's features with the cpu profile's own scorer (``CandidateScorer.featurize``)
   at every cue stage a ``select`` round can see: text only, then the cues added one by one in the
   paper's order (OCR, caption, dense captions, tags), so one record gives up to five rows;
2. k-fold cross-validation by record on ``--data``: fit on the other folds' rows (every stage stacked),
   score top-1 on the held-out fold at the text-only and the all-cues stage. The same folds score the
   weights in force (the profile's; fitted on all of ``--data``, so in-sample) and, with ``--without``,
   a fit that leaves those features out (an ablation);
3. fits on every record of ``--data`` and scores top-1 on each ``--holdout`` file (another benchmark:
   an honest out-of-domain figure);
4. prints the weights fitted on all of ``--data``. ``ScorerWeights``'s defaults came from this fit
   (an earlier run; refitting moves no weight by more than 0.5, see the report).

Top-1 counts every record (a record whose gold is not among its candidates is wrong), as the eval does.
Computing the features embeds every stage's text once (about 20 minutes for WikiMEL dev on 2 cores with
a cold embedding cache); ``--features`` keeps them for later runs.

    python benchmarks/i2cr_fit.py --data ../shared/data/mel/wikimel.dev.jsonl \\
        --holdout ../shared/data/mel/wikidiverse.dev.jsonl --features reports/i2cr_fit_features.json.gz \\
        --report reports/i2cr_fit.json
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from groundgraph.agents.agent import load_agent
from groundgraph.agents.evaluation.common import environment, write_report
from groundgraph.agents.evaluation.i2cr import load_mel
from groundgraph.graphs.i2cr.scoring import CUE_ORDER, FEATURE_NAMES, ScorerWeights, fit_weights

Row = tuple[list[dict[str, float]], int]  # features of every candidate, index of the gold one (-1: absent)


def stages(cues: Mapping[str, Any]) -> list[dict[str, str]]:
    """The cue sets a select round sees: none, then each cue of the paper's order added in turn."""
    present = [k for k in CUE_ORDER if isinstance(cues.get(k), str) and cues[k].strip()]
    return [{k: cues[k] for k in present[:n]} for n in range(len(present) + 1)]


def extract(scorer: Any, records: Sequence[Mapping[str, Any]], label: str) -> list[list[Row]]:
    """Per record, one row per cue stage (text only first, all cues last)."""
    out: list[list[Row]] = []
    start = time.perf_counter()
    for i, r in enumerate(records, 1):
        ids = [c["id"] for c in r["candidates"]]
        gold = ids.index(r["gold"]["id"]) if r["gold"]["id"] in ids else -1
        out.append([(scorer.featurize(r["mention"], r.get("context") or "", cues, r["candidates"]), gold)
                    for cues in stages(r.get("visual_cues") or {})])
        if i % 200 == 0 or i == len(records):
            print(f"{label}: features of {i}/{len(records)} records ({time.perf_counter() - start:.0f} s)",
                  file=sys.stderr, flush=True)
    return out


def cached_extract(scorer: Any, path: Path, cache: Path | None, limit: int | None) -> list[list[Row]]:
    """``extract``, kept in ``cache`` (a .json.gz keyed by the data file and the limit)."""
    key = f"{path.resolve()}|{limit}"
    stored: dict[str, Any] = {}
    if cache and cache.is_file():
        stored = json.loads(gzip.decompress(cache.read_bytes()))
        if key in stored:
            return [[(feats, gold) for feats, gold in rec] for rec in stored[key]]
    data = extract(scorer, load_mel(path, limit), path.name)
    if cache:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(gzip.compress(json.dumps({**stored, key: data}).encode()))
    return data


def top1(weights: ScorerWeights, rows: Sequence[Row]) -> float:
    """Share of rows whose highest-scoring candidate is the gold one (first index on ties)."""
    w = weights.feature_weights()
    hits = 0
    for feats, gold in rows:
        scores = np.array([[f[n] for n in FEATURE_NAMES] for f in feats]) @ w
        hits += int(gold >= 0 and int(np.argmax(scores)) == gold)
    return hits / len(rows) if rows else 0.0


def without(weights: ScorerWeights, names: Sequence[str]) -> ScorerWeights:
    return weights.model_copy(update=dict.fromkeys(names, 0.0))


def fit(rows: Sequence[Row], base: ScorerWeights, drop: Sequence[str], l2: float) -> ScorerWeights:
    """fit_weights with the ``drop`` features held at 0 (their column zeroed, so they carry nothing)."""
    if drop:
        rows = [([{k: (0.0 if k in drop else v) for k, v in f.items()} for f in feats], g) for feats, g in rows]
    return without(fit_weights(rows, base=base, l2=l2), drop)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="MEL records to fit and cross-validate on")
    ap.add_argument("--holdout", type=Path, action="append", default=[], help="MEL records only scored")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--l2", type=float, default=3e-3)
    ap.add_argument("--without", action="append", default=[],
                    help="a feature the ablation fit leaves out (repeatable)")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--features", type=Path, default=None, help="cache of the computed features (.json.gz)")
    ap.add_argument("--report", type=Path, default=Path("reports/i2cr_fit.json"))
    args = ap.parse_args()

    t0 = time.perf_counter()
    agent = load_agent("i2cr", "cpu", trace=False)
    in_force = agent.config.scoring
    scorer = agent.context.scorer
    data = cached_extract(scorer, args.data, args.features, args.limit)

    fold_of = np.random.default_rng(0).permutation(len(data)) % args.folds
    variants: dict[str, tuple[str, ...] | None] = {"in_force": None, "refit": ()}
    if args.without:
        variants["refit_without"] = tuple(args.without)
    cv: dict[str, dict[str, list[tuple[int, int]]]] = {v: {"text_only": [], "all_cues": []} for v in variants}
    for k in range(args.folds):
        train = [row for i, rec in enumerate(data) if fold_of[i] != k for row in rec]
        test = [rec for i, rec in enumerate(data) if fold_of[i] == k]
        for name, drop in variants.items():
            w = in_force if drop is None else fit(train, in_force, drop, args.l2)
            for stage, pick in (("text_only", 0), ("all_cues", -1)):
                rows = [rec[pick] for rec in test]
                cv[name][stage].append((round(top1(w, rows) * len(rows)), len(rows)))
    cv_top1 = {name: {stage: round(sum(h for h, _ in v) / sum(n for _, n in v), 4) for stage, v in st.items()}
               for name, st in cv.items()}

    every = [row for rec in data for row in rec]
    fitted = {name: fit(every, in_force, drop, args.l2) for name, drop in variants.items() if drop is not None}
    holdout: dict[str, dict[str, float]] = {}
    for path in args.holdout:
        held = cached_extract(scorer, path, args.features, None)
        holdout[path.name] = {
            name: round(top1(w, [rec[-1] for rec in held]), 4)
            for name, w in (("in_force", in_force), *fitted.items())}
    result = {
        "benchmark": "i2cr_fit",
        "command": " ".join([sys.executable.split("/")[-1], *sys.argv]),
        "environment": environment(),
        "data": str(args.data), "records": len(data), "rows": len(every), "folds": args.folds, "l2": args.l2,
        "without": args.without,
        "cross_validated_top1": cv_top1,
        "holdout_top1_all_cues": holdout,
        "weights_in_force": in_force.model_dump(include=set(FEATURE_NAMES)),
        "weights_fitted_on_all": {name: w.model_dump(include=set(FEATURE_NAMES)) for name, w in fitted.items()},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_report(result, args.report)
    print({k: result[k] for k in ("cross_validated_top1", "holdout_top1_all_cues")})
    print(fitted["refit"].model_dump_json(include=set(FEATURE_NAMES), indent=1))


if __name__ == "__main__":
    main()
