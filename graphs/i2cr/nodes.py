"""The nodes and reflection gates of I2CR.

select (TES) -> verify_intra (ICR) -> verify_inter (IAV) -> fuse, with fetch_visual_cue (VIF)
adding one visual cue per round when IAV fails. The routers below are the gates.
"""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from groundgraph.graphs.i2cr.context import I2CRContext
from groundgraph.graphs.i2cr.state import I2CRState
from groundgraph.graphs.trace import ToolCalls, event, gate
from groundgraph.tools.errors import InputError
from groundgraph.tools.images import ImageView
from groundgraph.tools.ocr import lines_to_text

Rt = Runtime[I2CRContext]


def _entity_text(entity: dict[str, Any]) -> str:
    desc = (entity.get("description") or "").strip()
    return desc if desc else entity["name"]


def _progress(runtime: Rt, node: str, round_: int, message: str) -> None:
    runtime.stream_writer({"node": node, "round": round_, "message": message})


# --- nodes ---------------------------------------------------------------------------------
def retrieve_candidates(state: I2CRState, runtime: Rt) -> dict[str, Any]:
    """Candidates from the KB (fuzzy + dense lookup) when the input brings none."""
    ctx = runtime.context
    if ctx.kb is None:
        raise InputError("the input has no candidates and no knowledge base is configured (tools.kb)")
    calls = ToolCalls()
    matches = calls.call(ctx.kb, "lookup", lambda: ctx.kb.lookup(state["mention"], ctx.config.top_k,
                                                                 context=state.get("context", "")))
    candidates = [{"id": m.entity.id, "name": m.entity.display_name, "description": m.entity.description}
                  for m in matches]
    _progress(runtime, "retrieve_candidates", 0, f"{len(candidates)} candidates from the knowledge base")
    return {
        "candidates": candidates,
        "trace": [event("retrieve_candidates", 0, f"{len(candidates)} candidates",
                        "the input had no candidates: fuzzy + dense lookup in the knowledge base",
                        inputs=["mention", "context"], tool_calls=calls.records,
                        candidates=[c["id"] for c in candidates])],
    }


def select(state: I2CRState, runtime: Rt) -> dict[str, Any]:
    """TES: choose one candidate, never a rejected one, from the context and the cues so far."""
    ctx = runtime.context
    round_ = state["round"]
    rejected = set(state.get("rejected", []))
    pool = [c for c in state["candidates"] if c["id"] not in rejected]
    if not pool:
        return {"selection": None,
                "trace": [event("select", round_, "no candidate left", "every candidate was rejected by ICR")]}
    calls = ToolCalls()
    ranking = calls.call(ctx.scorer, "rank candidates", lambda: ctx.scorer.rank(
        mention=state["mention"], context=state.get("context", ""), cues=state.get("cues", {}),
        candidates=state["candidates"], excluded=rejected))
    best = state["candidates"][ranking.best]
    assert best["id"] not in rejected  # the scorer only ranks the pool
    selection = {**best, "score": ranking.scores[ranking.best], "round": round_}
    _progress(runtime, "select", round_, f"selected {best['name']}")
    top = sorted(((s, c["id"]) for s, c in zip(ranking.scores, state["candidates"], strict=True) if s is not None),
                 reverse=True)[:3]
    return {
        "selection": selection,
        "choices": [*state.get("choices", []), {"round": round_, "id": best["id"]}],
        "llm_calls": state.get("llm_calls", 0) + int(ranking.llm_called),
        "trace": [event(
            "select", round_, f"selected {best['id']} ({best['name']})", ranking.why,
            scores={cid: round(s, 4) for s, cid in top},
            inputs=["mention", "context", *[f"cue:{k}" for k in state.get("cues", {})]],
            tool_calls=calls.records, excluded=sorted(rejected), llm_called=ranking.llm_called,
            features=ranking.features.get(best["id"], {}))],
    }


def verify_intra(state: I2CRState, runtime: Rt) -> dict[str, Any]:
    """ICR: cosine(context, entity description) >= alpha keeps the entity; else reject it."""
    ctx = runtime.context
    sel = state["selection"]
    assert sel is not None
    round_ = state["round"]
    calls = ToolCalls()
    text = state.get("context") or state["mention"]
    vecs = calls.call(ctx.embedder, "embed", lambda: ctx.embedder.embed([text, _entity_text(sel)]))
    score = float(vecs[0] @ vecs[1])
    g = gate(score, ctx.config.alpha)
    gate_row = {"gate": "intra", "round": round_, "entity_id": sel["id"], **g, "scale": "cosine"}
    update: dict[str, Any] = {}
    others_left = any(c["id"] not in {*state.get("rejected", []), sel["id"]} for c in state["candidates"])
    if g["passed"]:
        decision, why = "keep", f"cosine {g['value']} >= alpha {ctx.config.alpha}"
    elif state.get("reselections", 0) >= ctx.config.max_reselections or not others_left:
        decision = "keep (reselection budget spent)" if others_left else "keep (no other candidate)"
        why = f"cosine {g['value']} < alpha {ctx.config.alpha}, but {decision[6:-1]}"
    else:
        decision, why = "reject", f"cosine {g['value']} < alpha {ctx.config.alpha}: back to select"
        update = {"selection": None, "rejected": [*state.get("rejected", []), sel["id"]],
                  "reselections": state.get("reselections", 0) + 1}
    _progress(runtime, "verify_intra", round_, f"{decision} {sel['name']}")
    return {**update, "gates": [gate_row],
            "trace": [event("verify_intra", round_, decision, why, scores={"intra": g},
                            inputs=["context", "entity description"], tool_calls=calls.records,
                            entity_id=sel["id"])]}


def verify_inter(state: I2CRState, runtime: Rt) -> dict[str, Any]:
    """IAV: image-text score >= beta accepts; no image and no cues is 'unverifiable'."""
    ctx = runtime.context
    sel = state["selection"]
    assert sel is not None
    round_ = state["round"]
    view = ImageView(path=state.get("image"), cues={**state.get("cues_available", {}), **state.get("cues", {})})
    calls = ToolCalls()
    if view.path is None and not view.text():
        score = None
    else:
        score = calls.call(ctx.image_text, "score", lambda: ctx.image_text.score(view, [_entity_text(sel)])[0])
    g = gate(score, ctx.config.beta)
    scale = getattr(ctx.image_text, "scale", "unknown")
    gate_row = {"gate": "inter", "round": round_, "entity_id": sel["id"], **g, "scale": scale}
    update: dict[str, Any] = {}
    if g["passed"] is None:
        decision = "unverifiable"
        why = ("the image gives nothing to score (no image file and no cue text): by the "
               f"'{ctx.config.unverifiable}' rule the choice is accepted")
        update["accepted_by"] = "unverifiable_accept"
    elif g["passed"]:
        decision, why = "accept", f"{scale} {g['value']} >= beta {ctx.config.beta}"
        update["accepted_by"] = "inter_modal"
    else:
        more = round_ < ctx.config.max_rounds and bool(state.get("cue_queue"))
        decision = "fetch another cue" if more else "no round passed"
        why = f"{scale} {g['value']} < beta {ctx.config.beta}" + ("" if more else ": rounds or cues exhausted")
    _progress(runtime, "verify_inter", round_, f"{decision} ({sel['name']})")
    return {**update, "gates": [gate_row],
            "trace": [event("verify_inter", round_, decision, why, scores={"inter": g},
                            inputs=["image" if view.path else "image text view", "entity description"],
                            tool_calls=calls.records, entity_id=sel["id"], scale=scale)]}


def fetch_visual_cue(state: I2CRState, runtime: Rt) -> dict[str, Any]:
    """VIF: add the next non-empty visual cue in the configured order (one per round)."""
    ctx = runtime.context
    queue = list(state.get("cue_queue", []))
    available = state.get("cues_available", {})
    calls = ToolCalls()
    skipped: list[str] = []
    while queue:
        kind = queue.pop(0)
        text, source = _cue_text(ctx, kind, state.get("image"), available, calls)
        if text:
            round_ = state["round"] + 1
            _progress(runtime, "fetch_visual_cue", round_, f"added {kind}")
            return {"cues": {**state.get("cues", {}), kind: text}, "cue_queue": queue, "round": round_,
                    "selection": None,
                    "trace": [event("fetch_visual_cue", round_, f"added {kind}",
                                    f"{kind} from {source}" + (f"; skipped empty {skipped}" if skipped else ""),
                                    inputs=[kind], tool_calls=calls.records, cue=kind, cue_text=text[:500],
                                    source=source)]}
        skipped.append(kind)
    return {"cue_queue": [],
            "trace": [event("fetch_visual_cue", state["round"], "no cue left",
                            f"every remaining cue was empty or unavailable: {skipped}", tool_calls=calls.records)]}


def _cue_text(ctx: I2CRContext, kind: str, image: str | None, available: dict[str, str],
              calls: ToolCalls) -> tuple[str, str]:
    """The text of one cue and where it came from; '' when this input cannot give it."""
    if kind in available:
        return available[kind].strip(), "the input's precomputed cues"
    if kind == "ocr" and image and ctx.ocr is not None:
        lines = calls.call(ctx.ocr, "read", lambda: ctx.ocr.read([image])[0])
        return lines_to_text(lines), ctx.ocr.name
    if ctx.cues is not None and (image or available):
        cue = calls.call(ctx.cues, "describe", lambda: ctx.cues.describe(ImageView(path=image, cues=available),
                                                                         [kind])[0])
        return (cue.text or "").strip(), cue.source if cue.text else f"{cue.source}: {cue.reason}"
    return "", "none"


def fuse(state: I2CRState, runtime: Rt) -> dict[str, Any]:
    """The final answer: the accepted entity, else the fallback choice."""
    ctx = runtime.context
    by_id = {c["id"]: c for c in state.get("candidates", [])}
    choices = state.get("choices", [])
    accepted_by = state.get("accepted_by")
    if accepted_by:
        chosen, why = state["selection"], f"accepted by {accepted_by}"
    elif state.get("selection") is not None and not (ctx.config.use_inter):
        chosen, accepted_by, why = state["selection"], "gate_off", "IAV is switched off: the selection stands"
    elif choices:
        pick = choices[0] if ctx.config.fallback == "text_only" else choices[-1]
        chosen, accepted_by = by_id[pick["id"]], "fallback"
        why = (f"no round passed IAV: falling back to the {ctx.config.fallback.replace('_', ' ')} choice "
               f"(round {pick['round']})")
    else:
        chosen, accepted_by, why = None, "no_candidate", "no candidate could be selected"
    entity = None if chosen is None else {k: chosen[k] for k in ("id", "name", "description") if k in chosen}
    result = {"entity": entity, "accepted_by": accepted_by, "rounds": state["round"],
              "cues_used": list(state.get("cues", {})), "llm_calls": state.get("llm_calls", 0)}
    _progress(runtime, "fuse", state["round"], f"answer {entity['name'] if entity else None} ({accepted_by})")
    return {"result": result, "accepted_by": accepted_by,
            "trace": [event("fuse", state["round"], f"answer {entity['id'] if entity else None}", why,
                            entity_id=entity["id"] if entity else None)]}


# --- gates (conditional edges) -------------------------------------------------------------
def route_start(state: I2CRState) -> str:
    return "select" if state.get("candidates") else "retrieve_candidates"


def route_after_select(state: I2CRState, runtime: Rt) -> str:
    cfg = runtime.context.config
    if state.get("selection") is None:
        return "fuse"
    if cfg.use_intra:
        return "verify_intra"
    return "verify_inter" if cfg.use_inter else "fuse"


def route_after_intra(state: I2CRState, runtime: Rt) -> str:
    """ICR gate: a rejected entity goes back to select; a kept one on to IAV."""
    if state.get("selection") is None:
        return "select"
    return "verify_inter" if runtime.context.config.use_inter else "fuse"


def route_after_inter(state: I2CRState, runtime: Rt) -> str:
    """IAV gate: accepted -> fuse; failed with rounds and cues left -> fetch_visual_cue."""
    cfg = runtime.context.config
    if state.get("accepted_by"):
        return "fuse"
    if state["round"] < cfg.max_rounds and state.get("cue_queue"):
        return "fetch_visual_cue"
    return "fuse"


def route_after_cue(state: I2CRState) -> str:
    """A new cue clears the selection for another round; no cue left ends the run."""
    return "select" if state.get("selection") is None else "fuse"
