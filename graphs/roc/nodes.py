"""The nodes of ROC: relation extraction as retrieval over relation descriptions.

encode (the sentence with head and tail marked, types when configured, the image when a real image-text
model can score it) -> retrieve (every label's similarity from the FAISS index of descriptions) -> decide
(the best relation, or "None" by the calibrated rule) -> fuse (the answer with its evidence).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from langgraph.runtime import Runtime

from groundgraph.graphs.roc.context import IMAGE_SCALES, RocContext
from groundgraph.graphs.roc.decide import decide_batch
from groundgraph.graphs.roc.encoding import NONE_LABEL, EntitySpan, RelationInstance, mark_text
from groundgraph.graphs.roc.state import RocState
from groundgraph.graphs.trace import ToolCalls, event, gate
from groundgraph.tools.images import ImageView

Rt = Runtime[RocContext]


def _progress(runtime: Rt, node: str, message: str) -> None:
    runtime.stream_writer({"node": node, "round": 1, "message": message})


def _instance(state: RocState) -> RelationInstance:
    def span(ent: dict[str, Any]) -> EntitySpan:
        return EntitySpan(name=ent["name"], start=ent["pos"][0], end=ent["pos"][1])

    return RelationInstance(tokens=tuple(state["tokens"]), head=span(state["head"]), tail=span(state["tail"]))


def _image_view(ctx: RocContext, image: str | None) -> tuple[bool, str]:
    """(whether the image can be fused, why or why not)."""
    if not image:
        return False, "no image in the input: text only"
    scorer = ctx.image_text
    if scorer is None:
        return False, "image not used: the profile has no image_text tool"
    scale = getattr(scorer, "scale", None)
    if scale not in IMAGE_SCALES:
        return False, (f"image not used: the profile's image_text tool ({getattr(scorer, 'name', scorer)}) scores "
                       f"on {scale!r}, not an image-text model's scale (the cpu profile has no CLIP weights)")
    if ctx.config.image_weight <= 0:
        return False, "image not used: graphs.roc.image_weight is 0 (image fusion is off)"
    return True, f"image fused with weight {ctx.config.image_weight} ({getattr(scorer, 'name', scorer)})"


# --- nodes ---------------------------------------------------------------------------------
def encode(state: RocState, runtime: Rt) -> dict[str, Any]:
    """The pair written into its sentence ([H] head [/H] ... [T] tail [/T] | head: ... ; tail: ...), embedded."""
    ctx = runtime.context
    calls = ToolCalls()
    inst = _instance(state)
    head, tail = dict(state["head"]), dict(state["tail"])
    if ctx.use_types:
        missing = [e for e in (head, tail) if not e.get("type")]
        if missing:
            assert ctx.type_classifier is not None
            predicted = calls.call(ctx.type_classifier, "predict entity types", lambda: ctx.type_classifier
                                   .predict_pairs(ctx.type_embedder, [inst])[0])  # type: ignore[union-attr]
            for ent, t in ((head, predicted[0]), (tail, predicted[1])):
                if not ent.get("type"):
                    ent["type"], ent["type_source"] = t, "predicted"
        for ent in (head, tail):
            ent.setdefault("type_source", "input")
    else:
        for ent in (head, tail):
            ent["type_source"] = "unused"
    marked = mark_text(inst, head.get("type") if ctx.use_types else None, tail.get("type") if ctx.use_types else None,
                       style=ctx.marker_style, pair_suffix=ctx.pair_suffix)
    vector = calls.call(ctx.encoder, "embed pair", lambda: ctx.encoder.embed([marked])[0])
    use_image, image_note = _image_view(ctx, state.get("image"))
    image_scores = None
    if use_image:
        labels = ctx.labels
        raw = calls.call(ctx.image_text, "score image vs targets", lambda: ctx.image_text.score(
            ImageView(path=state["image"]), [ctx.targets[lab] for lab in labels]))
        scale = IMAGE_SCALES[ctx.image_text.scale]
        image_scores = {lab: float(s) / scale for lab, s in zip(labels, raw, strict=True) if s is not None}
    types_note = (f"types head={head.get('type')} ({head['type_source']}), tail={tail.get('type')} "
                  f"({tail['type_source']})" if ctx.use_types else "no entity types (the encoder was not trained "
                  "with them)")
    _progress(runtime, "encode", marked[:120])
    return {"head": head, "tail": tail, "marked_text": marked, "pair_vector": [float(x) for x in vector],
            "image_scores": image_scores, "image_note": image_note,
            "trace": [event("encode", 1, "pair encoded", f"{types_note}; {image_note}",
                            inputs=["tokens", "head", "tail", *(["image"] if state.get("image") else [])],
                            tool_calls=calls.records, marked_text=marked, encoder=ctx.encoder_source,
                            image_used=use_image)]}


def retrieve(state: RocState, runtime: Rt) -> dict[str, Any]:
    """Every label's similarity: the nearest targets in the FAISS index, all of them (the None rule needs the
    None description's score)."""
    ctx = runtime.context
    calls = ToolCalls()
    vector = np.asarray([state["pair_vector"]], dtype=np.float32)
    hits = calls.call(ctx.index, "search", lambda: ctx.index.search(vector, len(ctx.labels))[0])
    text_scores = {label: float(s) for label, s in hits}
    image_scores = state.get("image_scores") or {}
    w = ctx.config.image_weight if image_scores else 0.0
    scores = {lab: round(text_scores[lab] + w * image_scores.get(lab, 0.0), 6) for lab in ctx.labels}
    top = sorted(scores.items(), key=lambda kv: -kv[1])[:5]
    how = (f"cosine to {len(scores)} {ctx.config.targets.replace('_', ' ')}"
           + (f" + {w} x image-target similarity" if w else ""))
    _progress(runtime, "retrieve", f"nearest: {top[0][0]} ({top[0][1]:.3f})")
    return {"scores": scores,
            "trace": [event("retrieve", 1, f"nearest {top[0][0]}", how, scores=dict(top),
                            inputs=["pair vector", *(["image scores"] if w else [])], tool_calls=calls.records)]}


def decide(state: RocState, runtime: Rt) -> dict[str, Any]:
    """The best relation other than None wins if it reaches the threshold and beats None by the margin."""
    ctx = runtime.context
    labels, rule = ctx.labels, ctx.rule
    d = decide_batch(np.asarray([[state["scores"][lab] for lab in labels]]), labels, rule)[0]
    threshold = gate(d.best_score, rule.threshold)
    margin = gate(None if d.none_score is None else d.best_score - d.none_score, rule.margin)
    gates = [{"gate": "threshold", **threshold}, {"gate": "margin", **margin}]
    _progress(runtime, "decide", d.label)
    return {"decision": d.model_dump(), "gates": gates,
            "trace": [event("decide", 1, d.label, d.reason, scores={"threshold": threshold, "margin": margin},
                            inputs=["scores"], best_relation=d.best_relation)]}


def fuse(state: RocState, runtime: Rt) -> dict[str, Any]:
    """The answer: the relation with its score, the top relations, the rule's gates and what was read."""
    ctx = runtime.context
    d = state["decision"]
    assert d is not None
    scores = state["scores"]
    ranked = sorted(((lab, s) for lab, s in scores.items() if lab != NONE_LABEL), key=lambda kv: -kv[1])
    top = [{"relation": lab, "score": s, "description": ctx.descriptions.get(lab, "")}
           for lab, s in ranked[: ctx.config.top_k]]
    relation = d["label"]
    result = {
        "relation": relation, "score": scores.get(relation, d["best_score"]),
        "decided_by": "retrieval" if relation != NONE_LABEL else "none_rule", "reason": d["reason"],
        "top_k": top, "none_score": d["none_score"], "scores": scores, "gates": state.get("gates", []),
        "marked_text": state["marked_text"], "head": state["head"], "tail": state["tail"],
        "encoder": ctx.encoder_source, "targets": ctx.config.targets,
        "image_used": bool(state.get("image_scores")), "image_note": state.get("image_note", ""),
    }
    _progress(runtime, "fuse", f"answer {relation}")
    return {"result": result,
            "trace": [event("fuse", 1, f"answer {relation}", d["reason"], inputs=["decision", "scores"],
                            top_k=[(t["relation"], round(t["score"], 4)) for t in top])]}
