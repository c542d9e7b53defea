"""The nodes of INSGENEL-R: document entity linking with a light retriever and decision spans.

retrieve (alias matches of KB entities in the text + dense top-K entities per chunk from the KB's FAISS
index) -> match (overlapping matches merged into decision spans) -> decide (per span: copy when one
mention names one entity, else the LLM's constrained choice among the span's options, weighed with cheap
features, or "no entity") -> fuse (the links, with scores and the count of model calls made vs naive).
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from groundgraph.graphs.insgenel.context import InsgenelContext
from groundgraph.graphs.insgenel.decide import Decision, Link, link_pronouns
from groundgraph.graphs.insgenel.matching import case_policy, decision_spans, writes_in_lower_case
from groundgraph.graphs.insgenel.state import (
    InsgenelState,
    mention_from_dict,
    retrieval_from_state,
    retrieval_to_state,
    spans_from_state,
    spans_to_state,
)
from groundgraph.graphs.trace import ToolCalls, event, gate

Rt = Runtime[InsgenelContext]

#: options of a span kept in state and trace (the rest only count)
SHOWN_OPTIONS = 5


def _progress(runtime: Rt, node: str, message: str) -> None:
    runtime.stream_writer({"node": node, "round": 1, "message": message})


# --- nodes ---------------------------------------------------------------------------------
def retrieve(state: InsgenelState, runtime: Rt) -> dict[str, Any]:
    """Candidate entities: every KB alias found in the text, and the dense top-K of each chunk."""
    ctx = runtime.context
    calls = ToolCalls()
    text = state["text"]
    table = calls.call(ctx.kb, "alias table", lambda: ctx.table)  # built once per context, then cached
    retriever = ctx.retriever()
    retrieval = calls.call(ctx.kb, f"alias matches + dense top-{ctx.config.k} per chunk",
                           lambda: retriever.retrieve(text, case_insensitive=case_policy(text)))
    out = retrieval_to_state(retrieval)
    ranked = [c.entity_id for c in retrieval.ranked()]
    case = "lower-case words may be names (the text ignores case)" if writes_in_lower_case(text) else \
        "capitalised words only"
    why = (f"{len(retrieval.mentions)} alias matches ({case}); {len(retrieval.chunks)} chunks x top-{ctx.config.k} "
           f"dense; {len(retrieval.candidates)} candidate entities; alias table of {table.size} aliases")
    _progress(runtime, "retrieve", f"{len(retrieval.candidates)} candidates, {len(retrieval.mentions)} matches")
    return {**out, "trace": [event("retrieve", 1, f"{len(retrieval.candidates)} candidates", why,
                                   inputs=["text"], tool_calls=calls.records, top=ranked[:10],
                                   notes=list(ctx.notes))]}


def match(state: InsgenelState, runtime: Rt) -> dict[str, Any]:
    """Overlapping alias matches merged into decision spans (a nested shorter match is dropped)."""
    mentions = [mention_from_dict(m) for m in state.get("mentions", [])]
    spans = decision_spans(mentions)
    copies = sum(1 for s in spans if s.is_copy)
    why = (f"{len(mentions)} matches -> {len(spans)} decision spans: {copies} copy (one mention, one entity), "
           f"{len(spans) - copies} to choose")
    _progress(runtime, "match", why)
    return {"spans": spans_to_state(spans, mentions),
            "trace": [event("match", 1, f"{len(spans)} decision spans", why, inputs=["mentions"],
                            spans=[[s.start, s.end, len(s.options)] for s in spans[:50]])]}


def _decision_dict(d: Decision, index: int) -> dict[str, Any]:
    chosen = d.chosen
    return {
        "span": index, "start": d.span.start, "end": d.span.end, "method": d.method, "llm_called": d.llm_called,
        "chosen": None if chosen is None else {
            "start": chosen.option.start, "end": chosen.option.end, "mention": chosen.option.mention,
            "entity_id": chosen.option.entity_id, "family": str(chosen.option.family),
            "score": round(float(chosen.probability), 6)},
        "options": [{"mention": so.option.mention, "entity_id": so.option.entity_id, "family": str(so.option.family),
                     "p": round(float(so.probability), 4)} for so in d.options[:SHOWN_OPTIONS]],
        "n_options": len(d.options),
    }


def decide(state: InsgenelState, runtime: Rt) -> dict[str, Any]:
    """Per span: copy, the best of its options (LLM-scored when ambiguous), or no entity."""
    ctx = runtime.context
    calls = ToolCalls()
    text = state["text"]
    retrieval = retrieval_from_state(state)
    spans = spans_from_state(state.get("spans", []), retrieval.mentions)
    decider = ctx.decider()
    decisions = calls.call(ctx.embedder, "span features" + (" + LLM choices" if decider.llm else ""),
                           lambda: decider.decide(text, spans, retrieval.mentions, retrieval))
    if decider.llm_calls:
        calls.records.append({"tool": getattr(ctx.llm, "name", "llm"), "what": f"{decider.llm_calls} choose calls",
                              "latency_ms": round(decider.llm_seconds * 1000, 2)})
    index = {id(s): i for i, s in enumerate(spans)}
    out = [_decision_dict(d, index[id(d.span)]) for d in decisions]
    counts = {m: sum(1 for d in decisions if d.method == m) for m in ("copy", "choose", "no_entity")}
    threshold = decider.threshold
    scores = {f"{d.span.start}-{d.span.end}": gate(d.options[0].probability if d.options else None, threshold)
              for d in decisions[:30]}
    why = (f"{counts['copy']} copied, {counts['choose']} chosen, {counts['no_entity']} no entity (P(link) < "
           f"{threshold}); {decider.llm_calls} LLM calls" + ("" if decider.llm else " (no LLM: features only)"))
    _progress(runtime, "decide", why)
    return {"decisions": out, "llm_calls": decider.llm_calls,
            "trace": [event("decide", 1, f"{counts['copy'] + counts['choose']} links", why, scores=scores,
                            inputs=["spans", "candidates", "chunks"], tool_calls=calls.records, **counts)]}


def fuse(state: InsgenelState, runtime: Rt) -> dict[str, Any]:
    """The answer: linked spans in text order, with the model calls made and a naive linker's count."""
    ctx = runtime.context
    text = state["text"]
    links: list[Link] = []
    for d in state.get("decisions", []):
        c = d["chosen"]
        if c is None:
            continue
        links.append(Link(c["start"], c["end"], c["mention"], c["entity_id"], ctx.entity_name(c["entity_id"]),
                          float(c["score"]), "copy" if d["method"] == "copy" else "choose"))
    pronouns = 0
    if ctx.config.link_pronouns:
        taken = {(lk.start, lk.end): lk.entity_id for lk in links}
        for (a, b), e in link_pronouns(text, taken, ctx.table.persons).items():
            links.append(Link(a, b, text[a:b], e, ctx.entity_name(e), 0.5, "pronoun"))
            pronouns += 1
    links.sort(key=lambda lk: (lk.start, lk.end))
    decisions = state.get("decisions", [])
    candidates = state.get("candidates", {})
    ranked = sorted(candidates.values(), key=lambda c: (-(c["full_mentions"] > 0), -c["dense_score"],
                                                        c["entity_id"]))
    result = {
        "spans": [lk.as_dict() for lk in links],
        "llm_calls": int(state.get("llm_calls", 0)),
        "naive_calls": len(state.get("mentions", [])),  # one call per candidate mention
        "decision_spans": len(state.get("spans", [])),
        "copied": sum(1 for d in decisions if d["method"] == "copy"),
        "no_entity": sum(1 for d in decisions if d["method"] == "no_entity"),
        "retrieved": [c["entity_id"] for c in ranked],
        "llm_used": ctx.llm_used,
    }
    why = (f"{len(links)} links ({pronouns} pronouns); {result['llm_calls']} LLM calls vs {result['naive_calls']} "
           "for one call per candidate mention")
    _progress(runtime, "fuse", why)
    return {"result": result,
            "trace": [event("fuse", 1, f"{len(links)} links", why, inputs=["decisions"],
                            links=[(lk.mention, lk.entity_id, round(lk.score, 3)) for lk in links[:50]])]}
