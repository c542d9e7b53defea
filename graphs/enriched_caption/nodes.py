"""The nodes and gates of the enriched_caption graph (Beyond Vision, arXiv 2512.20042).

retrieve (image features + FAISS) -> verify (ORB + SIFT homography inliers re-rank the top images) ->
fetch_visual_cue (base caption, OCR, the matched image's own caption) -> select (article passages ranked
by the text embedder, plus the first and last sentences) -> fuse (template, or LLM guarded by the template).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from langgraph.runtime import Runtime

from groundgraph.graphs.enriched_caption import facts as F
from groundgraph.graphs.enriched_caption.context import EnrichedCaptionContext
from groundgraph.graphs.enriched_caption.state import EnrichedCaptionState
from groundgraph.graphs.trace import ToolCalls, event, gate
from groundgraph.tools.images import ImageView

Rt = Runtime[EnrichedCaptionContext]


def _progress(runtime: Rt, node: str, message: str) -> None:
    runtime.stream_writer({"node": node, "round": 1, "message": message})


def _hits_view(hits: list[dict[str, Any]], n: int = 10) -> list[dict[str, Any]]:
    keys = ("image_id", "article_id", "score", "inliers")
    return [{k: h.get(k) for k in keys} for h in hits[:n]]


def _similarity_match(hits: list[dict[str, Any]], floor: float) -> dict[str, Any] | None:
    """The top image as a match when its feature cosine alone says near-duplicate, else None."""
    if hits and hits[0]["score"] >= floor:
        return {"image_id": hits[0]["image_id"], "article_id": hits[0]["article_id"], "by": "similarity",
                "similarity": hits[0]["score"], "inliers": hits[0].get("inliers")}
    return None


# --- nodes ---------------------------------------------------------------------------------
def retrieve(state: EnrichedCaptionState, runtime: Rt) -> dict[str, Any]:
    """The corpus images nearest to the query in image-feature space (FAISS)."""
    ctx = runtime.context
    calls = ToolCalls()
    found = calls.call(ctx.corpus, "search", lambda: ctx.corpus.search(state["image"], ctx.config.top_k))
    hits = [{"image_id": h.image_id, "article_id": h.article_id, "score": round(h.score, 4), "path": h.path,
             "caption": h.caption, "retrieval_rank": h.rank, "inliers": None} for h in found]
    match = _similarity_match(hits, ctx.config.min_similarity)
    top = hits[0]["score"] if hits else None
    _progress(runtime, "retrieve", f"{len(hits)} corpus images, best cosine {top}")
    return {"hits": hits, "match": match,
            "trace": [event("retrieve", 1, f"{len(hits)} images retrieved",
                            f"nearest corpus images by {getattr(ctx.corpus.encoder, 'name', 'image features')}",
                            scores={"top_similarity": gate(top, ctx.config.min_similarity)},
                            inputs=["image"], tool_calls=calls.records, retrieved=_hits_view(hits, ctx.config.top_k))]}


def verify(state: EnrichedCaptionState, runtime: Rt) -> dict[str, Any]:
    """Geometric re-rank: homography inliers of ORB + SIFT matches for the top images, best first.

    Below the confidence floor (``min_inliers``) the geometry proves nothing and the embedding order is
    kept; checking stops early once an image reaches ``decisive_inliers``.
    """
    ctx = runtime.context
    cfg = ctx.config
    hits = [dict(h) for h in state["hits"]]
    calls = ToolCalls()
    checked = 0
    for h in hits[: cfg.verify_top]:
        m = calls.call(ctx.geometric, "verify", lambda h=h: ctx.geometric.verify(state["image"], [h["path"]])[0],
                       image_id=h["image_id"])
        h["inliers"] = m.inliers
        h["by_feature"] = {f.feature: f.inliers for f in m.by_feature}
        checked += 1
        if cfg.decisive_inliers is not None and m.inliers >= cfg.decisive_inliers:
            break
    best = max(hits[:checked], key=lambda h: h["inliers"])
    g = gate(best["inliers"], cfg.min_inliers)
    if g["passed"]:
        # verified images by inliers (ties keep retrieval order), then the unchecked ones in retrieval order
        order = sorted(hits[:checked], key=lambda h: (-h["inliers"], h["retrieval_rank"])) + hits[checked:]
        top = order[0]
        match: dict[str, Any] | None = {"image_id": top["image_id"], "article_id": top["article_id"], "by": "inliers",
                                        "inliers": top["inliers"], "similarity": top["score"]}
        decision = f"match {top['image_id']} ({top['inliers']} inliers)"
        why = f"{top['inliers']} inliers >= floor {cfg.min_inliers}: re-ranked {checked} images by inliers"
    else:
        order = hits
        match = _similarity_match(hits, cfg.min_similarity)
        why = (f"best {best['inliers']} inliers < floor {cfg.min_inliers}: embedding order kept; "
               + (f"top cosine {hits[0]['score']} >= {cfg.min_similarity}: near-duplicate" if match else
                  f"top cosine {hits[0]['score']} < {cfg.min_similarity}: no corpus image shows this picture"))
        decision = f"match {match['image_id']} (similarity)" if match else "no match"
    _progress(runtime, "verify", decision)
    return {"hits": order, "match": match,
            "trace": [event("verify", 1, decision, why, scores={"inliers": g}, inputs=["image", "retrieved images"],
                            tool_calls=calls.records, checked=checked, reranked=_hits_view(order, cfg.top_k),
                            match=match)]}


def fetch_visual_cue(state: EnrichedCaptionState, runtime: Rt) -> dict[str, Any]:
    """Gather the visual cues in the configured order: a base caption (captioner), OCR text, and the
    matched corpus image's own caption. The first caption found is the base caption."""
    ctx = runtime.context
    calls = ToolCalls()
    given = state.get("input_cues", {})
    cues: dict[str, str] = {}
    sources: dict[str, str] = {}
    skipped: dict[str, str] = {}
    match = state.get("match")
    for kind in ctx.config.cue_order:
        text, source = "", ""
        if given.get(kind, "").strip():
            text, source = given[kind].strip(), "the input's precomputed cues"
        elif kind == "caption" and ctx.cues is not None:
            cue = calls.call(ctx.cues, "describe", lambda: ctx.cues.describe(
                ImageView(path=state["image"], cues=given), ["caption"])[0])
            text, source = (cue.text or "").strip(), cue.source if cue.text else f"{cue.source}: {cue.reason}"
        elif kind == "ocr" and ctx.ocr is not None:
            lines = calls.call(ctx.ocr, "read", lambda: ctx.ocr.read([state["image"]])[0])
            # words, not fragments: photos make OCR read texture as stray letters
            text = " ".join(ln.text.strip() for ln in lines if ln.confidence >= ctx.config.ocr_min_confidence
                            and len(re.sub(r"\W", "", ln.text)) >= 3)
            source = ctx.ocr.name
        elif kind == "article_caption" and match is not None:
            text = (ctx.corpus.image(match["image_id"]).get("caption") or "").strip()
            source = f"the caption of corpus image {match['image_id']}"
        if text:
            cues[kind], sources[kind] = text, source
        else:
            skipped[kind] = source or ("no matched image" if kind == "article_caption" else "no tool configured")
    visual_kind = next((k for k in ("caption", "article_caption") if k in cues), "ocr" if "ocr" in cues else None)
    visual = cues.get(visual_kind, "") if visual_kind in ("caption", "article_caption") else ""
    visual_source = sources[visual_kind] if visual_kind else "none"
    if visual_kind == "ocr":
        visual_source = f"none (only OCR text, from {sources['ocr']})"
    _progress(runtime, "fetch_visual_cue", f"cues: {sorted(cues) or 'none'}")
    return {"cues": cues, "cue_sources": sources, "visual": visual, "visual_source": visual_source,
            "trace": [event("fetch_visual_cue", 1, f"cues {sorted(cues) or 'none'}",
                            f"base caption from {visual_source}" + (f"; empty or unavailable: {skipped}" if skipped
                                                                    else ""),
                            inputs=["image"], tool_calls=calls.records,
                            cues={k: v[:300] for k, v in cues.items()}, sources=sources)]}


def select(state: EnrichedCaptionState, runtime: Rt) -> dict[str, Any]:
    """The matched article's passages most related to the image: sentence windows ranked by cosine with the
    visual cue text (the text embedder), plus the article's first and last sentences."""
    ctx = runtime.context
    cfg = ctx.config
    match = state["match"]
    assert match is not None
    article = ctx.corpus.article(match["article_id"])
    sentences = F.split_sentences(article.text)
    query = ". ".join(t for t in (state.get("cues", {}).get(k, "") for k in ("caption", "article_caption", "ocr"))
                      if t) or article.title
    query_from = "visual cues" if state.get("cues") else "the article title (no visual cue)"
    spans = F.windows(sentences, cfg.window_sentences)
    calls = ToolCalls()
    chosen: list[dict[str, Any]] = []
    if spans and cfg.top_passages:
        texts = [" ".join(sentences[a:b]) for a, b in spans]
        vecs = calls.call(ctx.embedder, "embed", lambda: ctx.embedder.embed([query, *texts]))
        sims = vecs[1:] @ vecs[0]
        used: set[int] = set()
        for i in np.argsort(-sims, kind="stable"):
            a, b = spans[int(i)]
            if used & set(range(a, b)):
                continue  # overlapping windows would repeat sentences
            chosen.append({"text": texts[int(i)], "kind": "window", "score": round(float(sims[int(i)]), 4),
                           "sentences": [a, b]})
            used |= set(range(a, b))
            if len(chosen) >= cfg.top_passages:
                break
    if cfg.include_first_last and sentences:
        covered = {s for p in chosen for s in range(*p["sentences"])}
        for idx, kind in ((0, "first"), (len(sentences) - 1, "last")):
            if idx not in covered:
                chosen.append({"text": sentences[idx], "kind": kind, "score": None, "sentences": [idx, idx + 1]})
                covered.add(idx)
    art = {"id": article.id, "title": article.title, "date": article.date, "place": article.place,
           "url": article.url, "text": article.text}
    _progress(runtime, "select", f"{len(chosen)} passages from {article.id}")
    return {"article": art, "passages": chosen,
            "trace": [event("select", 1, f"{len(chosen)} passages from {article.id}",
                            f"{len(spans)} windows of {cfg.window_sentences} sentences ranked by cosine with "
                            f"{query_from}; top {cfg.top_passages} kept"
                            + (" with the first and last sentences" if cfg.include_first_last else ""),
                            scores={f"window {p['sentences']}": p["score"] for p in chosen if p["score"] is not None},
                            inputs=[query_from, f"article {article.id}"], tool_calls=calls.records,
                            article_id=article.id, query=query[:300], passages=chosen)]}


def _fill(template: list[str], slots: dict[str, str], max_words: int) -> str:
    """Template sentences in order, each kept only if its slots are filled; later ones only within budget."""
    out: list[str] = []
    for part in template:
        names = re.findall(r"{(\w+)}", part)
        if any(not slots.get(n, "").strip() for n in names):
            continue
        text = F.sentence(part.format(**{n: slots[n].strip().rstrip(".") for n in names}))
        if out and F.words(" ".join([*out, text])) > max_words:
            continue
        out.append(text)
    return " ".join(out)


def fuse(state: EnrichedCaptionState, runtime: Rt) -> dict[str, Any]:
    """The enriched caption: the template filled from the article's facts; with fusion='llm' the LLM rephrases
    the facts and the guard keeps its caption only if no key fact is dropped and nothing is invented."""
    ctx = runtime.context
    cfg = ctx.config
    cues = state.get("cues", {})
    visual = state.get("visual", "")
    match, article = state.get("match"), state.get("article")
    calls = ToolCalls()
    facts: dict[str, Any] | None = None
    problems: list[str] = []
    llm_calls = state.get("llm_calls", 0)
    extra: dict[str, Any] = {}
    if match is None or article is None:
        slots = {"visual": visual, "ocr": cues.get("ocr", "")}
        caption = _fill(ctx.templates["no_match"], slots, cfg.max_words)
        fusion = "no_match" if caption else "nothing"
        caption = caption or ctx.templates["nothing"]
        why = "no corpus article matched: the caption says only what the visual cues give"
    else:
        facts = F.extract_facts(article, state.get("passages", []))
        slots = {"event": facts["what"], "visual": visual, "why": facts["why"], "where": facts["where"],
                 "when": facts["when"], "who": ", ".join(facts["who"]), "ocr": cues.get("ocr", ""),
                 "title": article["title"]}
        template_caption = _fill(ctx.templates["templates"][cfg.template], slots, cfg.max_words)
        caption, fusion, why = template_caption, "template", f"template {cfg.template!r} filled from the facts"
        if cfg.fusion == "llm":
            prompt = ctx.fuse_prompt.format(max_words=cfg.max_words, visual=visual or "(unknown)",
                                            who=slots["who"] or "(unknown)", what=facts["what"] or "(unknown)",
                                            when=facts["when"] or "(unknown)", where=facts["where"] or "(unknown)",
                                            why=facts["why"] or "(unknown)")
            raw = calls.call(ctx.llm, "generate", lambda: ctx.llm.generate(prompt, max_tokens=cfg.llm_max_tokens,
                                                                            temperature=0.0))
            llm_calls += 1
            candidate = clean_llm_caption(raw)
            # only what the prompt showed: OCR text is untrusted (anything printed in the photo) and is
            # not in the prompt, so a name that appears only there is invented or planted
            sources = [article["text"], article["title"], visual, facts["when"], facts["where"]]
            problems = F.guard(candidate, facts, sources, max_words=int(cfg.max_words * 1.5)) if cfg.guard else []
            extra = {"llm_caption": candidate, "template_caption": template_caption}
            if problems:
                fusion, why = "template_after_guard", f"LLM caption rejected ({'; '.join(problems)}): template used"
            else:
                caption, fusion, why = F.sentence(candidate), "llm", "LLM caption passed the guard"
    result = {"caption": caption, "fusion": fusion, "facts": facts, "guard_problems": problems,
              "llm_calls": llm_calls}
    _progress(runtime, "fuse", f"{fusion}: {caption[:80]}")
    return {"result": result, "llm_calls": llm_calls,
            "trace": [event("fuse", 1, fusion, why, inputs=["facts", "visual cue", "passages"],
                            tool_calls=calls.records, caption=caption, facts=facts, guard_problems=problems,
                            **extra)]}


def clean_llm_caption(raw: str) -> str:
    """The caption in an LLM reply: its first paragraph, without a 'Caption:' label or quotes."""
    text = raw.strip().split("\n\n")[0].strip()
    text = re.sub(r"^\s*(?:\*\*)?caption(?:\*\*)?\s*:\s*", "", text, flags=re.I)
    return " ".join(text.strip().strip('"“”').split())


# --- gates (conditional edges) -------------------------------------------------------------
def route_after_retrieve(state: EnrichedCaptionState, runtime: Rt) -> str:
    """Geometric verification when it is on, configured and there is something to verify."""
    ctx = runtime.context
    if ctx.config.use_geometric and ctx.geometric is not None and state.get("hits"):
        return "verify"
    return "fetch_visual_cue"


def route_after_cue(state: EnrichedCaptionState) -> str:
    """A matched article gives passages to select; no match goes straight to fuse."""
    return "select" if state.get("match") else "fuse"
