"""Evaluation of insgenel on ELEVANT-style document EL records (KORE50, MSNBC, Derczynski, OKE-2015).

Scored as ELEVANT's InKB micro precision / recall / F1 over (span, entity) pairs inside each document's
``evaluation_span``: a predicted span equals a gold one when both expand to the same word boundaries (a
possessive or a quote of difference is forgiven); linking a gold NIL mention ("<...>" ids) is a false
positive; nested gold labels (with a ``parent``) are not scored. Also: the retriever's recall of gold
entities (its candidates: alias matches and the dense top-K per chunk), the LLM calls made against a naive
linker's one call per candidate mention, latency and documents per second. Every run goes through the
graph (``Agent.invoke``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from groundgraph.agents.agent import Agent
from groundgraph.agents.evaluation.common import environment, latency_summary, load_benchmark
from groundgraph.tools.errors import GroundgraphError

Span = tuple[int, int]


def load_el(path: str | Path, limit: int | None = None) -> list[dict[str, Any]]:
    """ELEVANT benchmark records: {id, text, evaluation_span?, labels: [{span, entity_id, ...}]}."""
    return load_benchmark(path, limit, lambda r: isinstance(r.get("text"), str) and isinstance(r.get("labels"), list),
                          "an EL record with text and labels")


def evaluation_span(record: Mapping[str, Any]) -> Span:
    span = record.get("evaluation_span") or [0, len(record["text"])]
    return int(span[0]), int(span[1])


def is_nil(entity_id: str) -> bool:
    return not entity_id or entity_id.startswith("<")


def gold_links(record: Mapping[str, Any]) -> dict[Span, str]:
    """Scored gold (span -> entity id) inside the evaluation span; NIL mentions kept (they make FPs)."""
    a, b = evaluation_span(record)
    out: dict[Span, str] = {}
    for lab in record["labels"]:
        if lab.get("parent") is not None:
            continue
        s, e = int(lab["span"][0]), int(lab["span"][1])
        if a <= s and e <= b:
            out[(s, e)] = str(lab["entity_id"])
    return out


def expand(span: Span, text: str) -> Span:
    """ELEVANT's word-boundary expansion: a prediction may differ by a possessive or a quote."""
    a, b = span
    while a > 0 and (text[a - 1].isalnum() or text[a - 1] in "'\"_"):
        a -= 1
    while b < len(text) - 1 and (text[b].isalnum() or text[b] in "'\"_"):
        b += 1
    return a, b


def inkb_counts(record: Mapping[str, Any], predicted: Mapping[Span, str]) -> tuple[int, int, int]:
    """(tp, fp, fn) of one document's predicted (span -> entity id) against its gold, InKB mode."""
    text = record["text"]
    gold = gold_links(record)
    a, b = evaluation_span(record)
    by_expansion = {expand(s, text): s for s in gold}
    tp = fp = fn = 0
    matched: set[Span] = set()
    for span, entity in predicted.items():
        if not (a <= span[0] and span[1] <= b):
            continue  # outside the evaluated part of the document
        g_span: Span | None = span if span in gold else by_expansion.get(expand(span, text))
        if g_span is None:
            fp += 1
            continue
        matched.add(g_span)
        g = gold[g_span]
        if is_nil(g):
            fp += 1  # an unknown (NIL) mention linked to a KB entity
        elif g == entity:
            tp += 1
        else:
            fp += 1
            fn += 1
    fn += sum(1 for s, e in gold.items() if s not in matched and not is_nil(e))
    return tp, fp, fn


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / (p + r), 4) if p + r else 0.0}


def retriever_recall(record: Mapping[str, Any], retrieved: Sequence[str]) -> tuple[int, int]:
    """(gold KB entities among the retrieved candidates, gold KB entities) of one document."""
    gold = {e for e in gold_links(record).values() if not is_nil(e)}
    return len(gold & set(retrieved)), len(gold)


def el_input(record: Mapping[str, Any]) -> dict[str, Any]:
    return {"text": record["text"], "id": None if record.get("id") is None else str(record["id"])}


def run_records(agent: Agent, records: Sequence[Mapping[str, Any]], *,
                progress: Callable[[int, int], None] | None = None) -> tuple[list[dict[str, Any]],
                                                                             list[dict[str, Any]], float]:
    """(rows, errors, wall seconds): one row per document with its counts, calls and latency."""
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    start = time.perf_counter()
    for i, record in enumerate(records, 1):
        t0 = time.perf_counter()
        try:
            out = agent.invoke(el_input(record))
        except GroundgraphError as exc:
            errors.append({"id": record.get("id"), "error": f"{type(exc).__name__}: {exc}"})
        else:
            predicted = {(s.start, s.end): s.entity_id for s in out.spans}
            tp, fp, fn = inkb_counts(record, predicted)
            hit, n_gold = retriever_recall(record, out.retrieved)
            rows.append({"id": record.get("id"), "tp": tp, "fp": fp, "fn": fn, "gold_entities": n_gold,
                         "retrieved_gold": hit, "retrieved": len(out.retrieved), "llm_calls": out.llm_calls,
                         "naive_calls": out.naive_calls, "decision_spans": out.decision_spans,
                         "copied": out.copied, "links": len(out.spans), "seconds": time.perf_counter() - t0})
        if progress:
            progress(i, len(records))
    return rows, errors, time.perf_counter() - start


def summarize(rows: Sequence[Mapping[str, Any]], errors: Sequence[Mapping[str, Any]], wall: float) -> dict[str, Any]:
    tp, fp, fn = (sum(int(r[k]) for r in rows) for k in ("tp", "fp", "fn"))
    hit, gold = sum(r["retrieved_gold"] for r in rows), sum(r["gold_entities"] for r in rows)
    calls, naive = sum(r["llm_calls"] for r in rows), sum(r["naive_calls"] for r in rows)
    n = len(rows) + len(errors)
    return {
        "documents": n,
        "errors": len(errors),
        **prf(tp, fp, fn),
        "tp": tp, "fp": fp, "fn": fn,
        "retriever_recall": round(hit / gold, 4) if gold else None,
        "retriever_candidates_per_doc": round(sum(r["retrieved"] for r in rows) / len(rows), 1) if rows else None,
        "llm_calls": calls,
        "naive_calls": naive,
        "llm_call_reduction": round(1 - calls / naive, 4) if naive else None,
        "decision_spans": sum(r["decision_spans"] for r in rows),
        "copied_spans": sum(r["copied"] for r in rows),
        "latency": latency_summary([r["seconds"] for r in rows]),
        "docs_per_s": round(n / wall, 3) if wall > 0 else None,
        "wall_seconds": round(wall, 2),
        "error_examples": list(errors[:5]),
    }


def report(agent: Agent, records: list[dict[str, Any]], data_path: str, *,
           progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Warm the agent up (KB, alias table, models), run every document, summarise."""
    ctx = agent.context
    t0 = time.perf_counter()
    agent.invoke({"text": "Warm-up: the models and the alias table load here, outside the timed run."})
    warm = time.perf_counter() - t0
    rows, errors, wall = run_records(agent, records, progress=progress)
    summary = summarize(rows, errors, wall)
    return {"graph": "insgenel", "data": data_path, "kb": str(getattr(ctx.kb.config, "source", "")),
            "config": agent.config.model_dump(exclude={"rank_weights", "link_weights"}),
            "llm": getattr(ctx.llm, "name", None) if ctx.llm_used else None,
            "embedder": getattr(ctx.embedder, "name", None), "warm_up_seconds": round(warm, 2),
            "notes": list(ctx.notes), "environment": environment(), **summary,
            "per_document": rows}
