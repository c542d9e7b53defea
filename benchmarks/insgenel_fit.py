"""Fit the insgenel decision weights (graphs/insgenel/decide.py) and check them leave-one-dataset-out.

The decision step has two linear models over per-option features: a softmax that ranks a decision span's
(mention, entity) options (step 1) and a logistic regression that says whether the best one is linked or
the span means "no entity" (step 2), then a threshold on P(link). This script

1. runs the graph's own retriever, matcher and feature code (the agent's context, so the features are the
   ones the graph computes) over every document of the given ELEVANT files, with the LLM's scores for
   every span the graph would send to the LLM; the features are cached (``--features``);
2. labels every option from the gold (span, entity) pairs (ELEVANT's expanded-span match, InKB);
3. fits step 1 (conditional logit, L2), step 2 (logistic, L2) and the threshold (best micro-F1 on the
   training documents), once with the LLM's features and once without them;
4. leave-one-dataset-out: fits on three files, scores the fourth, for each file (the honest figure: these
   files are the only dev data there is);
5. with ``--write``, stores the weights fitted on all files in prompts/insgenel/decide_weights.json,
   with the figures and the settings that produced them.

Features left out of every fit (``EXCLUDED``): "dense" (the retriever's cosine against name + description
vectors: in this KB nearly every described entity is a distractor, so it would learn the KB's make-up) and
the partial-alias indicators (first_name, last_name, partial: they learn each benchmark's annotation habits,
e.g. KORE50 links bare first names and the others rarely do).

    python benchmarks/insgenel_fit.py --kb ../shared/data/kb/entities.jsonl \\
        --data ../shared/data/el/{kore50,msnbc,derczynski,oke-2015-eval}.benchmark.jsonl \\
        --features reports/insgenel_fit_features.json.gz --report reports/insgenel_fit.json --write
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from groundgraph.agents.agent import load_agent
from groundgraph.agents.evaluation.common import environment, write_report
from groundgraph.agents.evaluation.insgenel import evaluation_span, expand, gold_links, inkb_counts, is_nil, load_el
from groundgraph.graphs.insgenel.decide import FEATURES, LINK_FEATURES
from groundgraph.graphs.insgenel.matching import case_policy, decision_spans

EXCLUDED = ("dense", "first_name", "last_name", "partial")
LLM_FEATURES = ("llm", "llm_top", "llm_out", "llm_p")
THRESHOLDS = [round(0.05 * i, 2) for i in range(1, 19)]


# --- features ----------------------------------------------------------------------------------
def extract(kb: Path, files: Sequence[Path], *, use_llm: bool, limit: int | None) -> dict[str, Any]:
    """Per file, per document: every decision span's options with their features (the graph's code)."""
    agent = load_agent("insgenel", "cpu", trace=False, kb_source=str(kb), graphs={"insgenel": {"use_llm": use_llm}})
    ctx = agent.context
    retriever = ctx.retriever()
    out: dict[str, Any] = {"kb": str(kb), "llm": getattr(ctx.llm, "name", None) if ctx.llm_used else None,
                           "config": agent.config.model_dump(exclude={"rank_weights", "link_weights"}),
                           "datasets": {}}
    for path in files:
        name = path.name.split(".")[0]
        docs = []
        t0 = time.perf_counter()
        records = load_el(path, limit)
        for i, rec in enumerate(records, 1):
            text = rec["text"]
            retrieval = retriever.retrieve(text, case_insensitive=case_policy(text))
            spans = decision_spans(retrieval.mentions)
            decider = ctx.decider()
            scored = decider.features(text, spans, retrieval.mentions, retrieval)
            doc_spans = []
            for span, options in zip(spans, scored, strict=True):
                called = decider.needs_llm(span, options)
                if called:
                    decider.add_llm_features(text, options)
                doc_spans.append({"copy": span.is_copy, "llm_called": called,
                                  "options": [{"start": so.option.start, "end": so.option.end,
                                               "entity_id": so.option.entity_id,
                                               "f": [round(float(so.features[k]), 6) for k in FEATURES]}
                                              for so in options]})
            docs.append({"id": rec.get("id"), "spans": doc_spans, "llm_calls": decider.llm_calls,
                         "naive_calls": len(retrieval.mentions)})
            if i % 20 == 0 or i == len(records):
                print(f"{name}: {i}/{len(records)} documents, {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        out["datasets"][name] = {"path": str(path), "documents": docs, "seconds": round(time.perf_counter() - t0, 1)}
    return out


# --- labelled data -----------------------------------------------------------------------------
@dataclass
class SpanData:
    x: np.ndarray[Any, Any]  # options x FEATURES
    y: np.ndarray[Any, Any]  # 1 where the option is a gold (span, entity) pair
    spans: list[tuple[int, int]]
    entities: list[str]


def label(record: Mapping[str, Any], doc: Mapping[str, Any]) -> list[SpanData]:
    text = record["text"]
    gold = {expand(s, text): e for s, e in gold_links(record).items() if not is_nil(e)}
    a, b = evaluation_span(record)
    out = []
    for s in doc["spans"]:
        if not s["options"]:
            continue
        opts = s["options"]
        y = [float(a <= o["start"] and o["end"] <= b and gold.get(expand((o["start"], o["end"]), text))
                   == o["entity_id"]) for o in opts]
        out.append(SpanData(np.array([o["f"] for o in opts], dtype=np.float64), np.array(y),
                            [(o["start"], o["end"]) for o in opts], [o["entity_id"] for o in opts]))
    return out


@dataclass
class Corpus:
    name: str
    records: list[dict[str, Any]]
    spans: list[list[SpanData]]  # per document


def columns(names: Sequence[str]) -> list[int]:
    return [FEATURES.index(n) for n in names]


# --- the two models ----------------------------------------------------------------------------
def fit_rank(spans: Sequence[SpanData], weights: Sequence[float], names: Sequence[str],
             l2: float) -> dict[str, float]:
    """Conditional logit: maximise log sum P(correct options) over spans with a choice and a right answer."""
    from scipy.optimize import minimize

    cols = columns(names)
    data = [(s.x[:, cols], s.y, sw) for s, sw in zip(spans, weights, strict=True)
            if len(s.y) > 1 and s.y.any() and not s.y.all()]

    def loss(w: np.ndarray[Any, Any]) -> tuple[float, np.ndarray[Any, Any]]:
        total, grad = l2 * float(w @ w), 2 * l2 * w
        for x, y, sw in data:
            z = x @ w
            p = np.exp(z - z.max())
            p /= p.sum()
            pc = float(p @ y)
            total -= sw * math.log(max(pc, 1e-300))
            q = p * y / max(pc, 1e-300)  # posterior over the correct options
            grad -= sw * (x.T @ (q - p))
        return total, grad

    res = minimize(loss, np.zeros(len(cols)), jac=True, method="L-BFGS-B")
    return {n: round(float(v), 4) for n, v in zip(names, res.x, strict=True)}


def rank_span(s: SpanData, w: Mapping[str, float]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(softmax probabilities, order best first) as SpanDecider.rank computes them."""
    wv = np.array([w.get(n, 0.0) for n in FEATURES])
    z = s.x @ wv
    p = np.exp(z - z.max())
    p /= p.sum()
    return p, np.argsort(-z, kind="stable")


def link_row(s: SpanData, p: np.ndarray[Any, Any], order: np.ndarray[Any, Any]) -> dict[str, float]:
    """The best option's features plus LINK_FEATURES, as SpanDecider.link_probability builds them."""
    best = int(order[0])
    x = dict(zip(FEATURES, s.x[best].tolist(), strict=True))
    p1 = float(p[best])
    p2 = float(p[order[1]]) if len(order) > 1 else 0.0
    n_entities = len(set(s.entities))
    x.update({"rank_p": p1, "rank_margin": p1 - p2, "n_entities_log": math.log(n_entities),
              "single_entity": float(n_entities == 1)})
    return x


def fit_link(spans: Sequence[SpanData], weights: Sequence[float], rank_w: Mapping[str, float],
             names: Sequence[str], l2: float) -> dict[str, float]:
    """Logistic regression: is the span's best option right (vs. a wrong entity or no entity at all)?"""
    from scipy.optimize import minimize

    rows, ys = [], []
    for s in spans:
        p, order = rank_span(s, rank_w)
        x = link_row(s, p, order)
        rows.append([x[n] for n in names])
        ys.append(s.y[int(order[0])])
    x_arr = np.hstack([np.ones((len(rows), 1)), np.array(rows)])
    y_arr = np.array(ys)
    sw = np.asarray(weights, dtype=np.float64)

    def loss(w: np.ndarray[Any, Any]) -> tuple[float, np.ndarray[Any, Any]]:
        z = x_arr @ w
        p = 1 / (1 + np.exp(-np.clip(z, -30, 30)))
        reg = w.copy()
        reg[0] = 0.0  # the intercept is not shrunk
        total = -float(np.sum(sw * (y_arr * np.log(p + 1e-12) + (1 - y_arr) * np.log(1 - p + 1e-12))))
        return total + l2 * float(reg @ reg), x_arr.T @ (sw * (p - y_arr)) + 2 * l2 * reg

    res = minimize(loss, np.zeros(x_arr.shape[1]), jac=True, method="L-BFGS-B")
    return {"intercept": round(float(res.x[0]), 4),
            **{n: round(float(v), 4) for n, v in zip(names, res.x[1:], strict=True)}}


def predict(doc: Sequence[SpanData], rank_w: Mapping[str, float], link_w: Mapping[str, float],
            threshold: float) -> dict[tuple[int, int], str]:
    out = {}
    for s in doc:
        p, order = rank_span(s, rank_w)
        x = link_row(s, p, order)
        z = link_w.get("intercept", 0.0) + sum(link_w.get(k, 0.0) * v for k, v in x.items())
        if 1 / (1 + math.exp(-max(-30.0, min(30.0, z)))) >= threshold:
            best = int(order[0])
            out[s.spans[best]] = s.entities[best]
    return out


def score(corpora: Sequence[Corpus], model: Mapping[str, Any]) -> dict[str, float]:
    tp = fp = fn = 0
    for c in corpora:
        for rec, doc in zip(c.records, c.spans, strict=True):
            a, b, d = inkb_counts(rec, predict(doc, model["rank"], model["link"], model["threshold"]))
            tp, fp, fn = tp + a, fp + b, fn + d
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0}


def fit(corpora: Sequence[Corpus], *, with_llm: bool, l2: float) -> dict[str, Any]:
    """Both models and the threshold. Every file weighs the same (its spans share a total weight equal to
    the mean file's), so long news documents do not drown short texts; the threshold maximises the mean
    of the files' F1 for the same reason."""
    names = [n for n in FEATURES if n not in EXCLUDED and n != "bias" and (with_llm or n not in LLM_FEATURES)]
    spans = [s for c in corpora for doc in c.spans for s in doc]
    sizes = [sum(len(doc) for doc in c.spans) for c in corpora]
    mean = sum(sizes) / len(sizes)
    weights = [mean / n for c, n in zip(corpora, sizes, strict=True) for doc in c.spans for _ in doc]
    rank_w = fit_rank(spans, weights, names, l2)
    link_w = fit_link(spans, weights, rank_w, [*names, *LINK_FEATURES], l2)
    model: dict[str, Any] = {"rank": rank_w, "link": link_w, "threshold": 0.5}

    def mean_f1(t: float) -> float:
        return sum(score([c], {**model, "threshold": t})["f1"] for c in corpora) / len(corpora)

    best = max(THRESHOLDS, key=lambda t: (mean_f1(t), -abs(t - 0.5)))
    model["threshold"] = best
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kb", required=True, type=Path, help="entities JSONL")
    ap.add_argument("--data", required=True, type=Path, nargs="+", help="ELEVANT EL JSONL files")
    ap.add_argument("--features", type=Path, default=Path("reports/insgenel_fit_features.json.gz"),
                    help="feature cache: read when present (--refresh rebuilds it)")
    ap.add_argument("--refresh", action="store_true", help="recompute the features")
    ap.add_argument("--no-llm-features", action="store_true", help="extract without the LLM (fast; fits the "
                    "no-LLM set only)")
    ap.add_argument("--l2", type=float, default=1.0, help="L2 penalty of both models")
    ap.add_argument("--limit", type=int, default=None, help="only the first N documents of each file")
    ap.add_argument("--report", type=Path, default=Path("reports/insgenel_fit.json"))
    ap.add_argument("--write", action="store_true", help="store the weights fitted on all files in "
                    "prompts/insgenel/decide_weights.json")
    args = ap.parse_args()

    if args.features.is_file() and not args.refresh:
        feats = json.loads(gzip.decompress(args.features.read_bytes()))
    else:
        feats = extract(args.kb, args.data, use_llm=not args.no_llm_features, limit=args.limit)
        args.features.parent.mkdir(parents=True, exist_ok=True)
        args.features.write_bytes(gzip.compress(json.dumps(feats).encode()))
    corpora = []
    for path in args.data:
        name = path.name.split(".")[0]
        records = load_el(path, args.limit)
        docs = feats["datasets"][name]["documents"]
        corpora.append(Corpus(name, records, [label(r, d) for r, d in zip(records, docs, strict=True)]))

    sets = ["without_llm"] + (["with_llm"] if feats.get("llm") else [])
    result: dict[str, Any] = {"command": " ".join(["python", *sys.argv]), "kb": str(args.kb),
                              "data": [str(p) for p in args.data], "llm": feats.get("llm"), "l2": args.l2,
                              "excluded_features": list(EXCLUDED), "environment": environment(), "sets": {}}
    for set_name in sets:
        with_llm = set_name == "with_llm"
        full = fit(corpora, with_llm=with_llm, l2=args.l2)
        in_sample = {c.name: score([c], full) for c in corpora}
        lodo = {}
        for held in corpora:
            model = fit([c for c in corpora if c is not held], with_llm=with_llm, l2=args.l2)
            lodo[held.name] = {**score([held], model), "threshold": model["threshold"]}
            print(f"{set_name}: held out {held.name}: F1 {lodo[held.name]['f1']:.4f} (in-sample "
                  f"{in_sample[held.name]['f1']:.4f})", file=sys.stderr)
        result["sets"][set_name] = {"model": full, "in_sample": in_sample, "leave_one_dataset_out": lodo}
    write_report(result, args.report)
    if args.write:
        weights = {
            "about": "insgenel decision weights, written by benchmarks/insgenel_fit.py (do not edit by hand)",
            "fit": {k: result[k] for k in ("command", "data", "llm", "l2", "excluded_features")}
            | {"time": result["environment"]["time"],
               "leave_one_dataset_out_f1": {s: {d: v["f1"] for d, v in result["sets"][s]["leave_one_dataset_out"]
                                                .items()} for s in sets},
               "in_sample_f1": {s: {d: v["f1"] for d, v in result["sets"][s]["in_sample"].items()} for s in sets}},
        }
        for set_name in sets:
            weights[set_name] = result["sets"][set_name]["model"]
        if "with_llm" not in weights:  # keep the shipped LLM set when this run had no LLM features
            old = json.loads((resources.files("groundgraph.prompts") / "insgenel" / "decide_weights.json")
                             .read_text(encoding="utf-8"))
            weights["with_llm"] = old["with_llm"]
        target = Path(str(resources.files("groundgraph.prompts"))) / "insgenel" / "decide_weights.json"
        target.write_text(json.dumps(weights, indent=1) + "\n", encoding="utf-8")
        print(f"weights written to {target}", file=sys.stderr)
    for set_name in sets:
        s = result["sets"][set_name]
        print(f"{set_name}: threshold {s['model']['threshold']}; " + "; ".join(
            f"{d}: in-sample F1 {s['in_sample'][d]['f1']:.4f}, held-out {s['leave_one_dataset_out'][d]['f1']:.4f}"
            for d in s["in_sample"]))


if __name__ == "__main__":
    main()
