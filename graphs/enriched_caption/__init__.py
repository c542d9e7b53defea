"""Beyond Vision: captions enriched from retrieved news articles (arXiv 2512.20042)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from groundgraph.graphs.base import GraphSpec
from groundgraph.graphs.enriched_caption.config import EnrichedCaptionConfig
from groundgraph.graphs.enriched_caption.context import make_context
from groundgraph.graphs.enriched_caption.graph import build, initial_state, recursion_limit
from groundgraph.graphs.enriched_caption.state import EnrichedCaptionInput, EnrichedCaptionResult


def read_output(state: Mapping[str, Any], run_id: str) -> EnrichedCaptionResult:
    result = state["result"]
    match = state.get("match")
    article = state.get("article")
    retrieved = [{"image_id": h["image_id"], "article_id": h["article_id"], "score": h["score"], "rank": i,
                  "retrieval_rank": h["retrieval_rank"], "inliers": h.get("inliers")}
                 for i, h in enumerate(state.get("hits", []), 1)]
    return EnrichedCaptionResult(
        run_id=run_id, id=state.get("record_id"), caption=result["caption"], matched=match is not None,
        match_by=match["by"] if match else "none",
        article={k: article[k] for k in ("id", "title", "date", "place", "url")} if article else None,
        image_id=match["image_id"] if match else None, retrieved=retrieved, passages=state.get("passages", []),
        facts=result.get("facts"), visual_cue=state.get("visual", ""), visual_source=state.get("visual_source", ""),
        fusion=result["fusion"], guard_problems=result.get("guard_problems", []), llm_calls=result.get("llm_calls", 0))


def summarize_input(inp: EnrichedCaptionInput) -> str:
    return f"image {Path(inp.image).name}"


SPEC = GraphSpec(
    name="enriched_caption",
    description="Caption an image with who, what, when, where and why from the news articles it appears in "
    "(Beyond Vision).",
    build=build,
    input_model=EnrichedCaptionInput,
    output_model=EnrichedCaptionResult,
    config_model=EnrichedCaptionConfig,
    tools=("corpus", "embedder"),
    optional_tools=("geometric", "ocr", "cues", "llm"),
    make_context=make_context,
    initial_state=initial_state,
    read_output=read_output,
    summarize_input=summarize_input,
    recursion_limit=recursion_limit,
)

__all__ = ["SPEC", "EnrichedCaptionConfig", "EnrichedCaptionInput", "EnrichedCaptionResult", "build"]
