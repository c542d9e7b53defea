"""I2CR: multimodal entity linking with intra- and inter-modal reflection gates (arXiv 2508.02243)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from groundgraph.graphs.base import GraphSpec
from groundgraph.graphs.i2cr.config import I2CRConfig
from groundgraph.graphs.i2cr.context import make_context
from groundgraph.graphs.i2cr.graph import build, initial_state, recursion_limit
from groundgraph.graphs.i2cr.state import I2CRInput, I2CRResult


def read_output(state: Mapping[str, Any], run_id: str) -> I2CRResult:
    result = state["result"]
    return I2CRResult(run_id=run_id, id=state.get("record_id"), gates=state.get("gates", []), **result)


def summarize_input(inp: I2CRInput) -> str:
    return f"{inp.mention!r} in {inp.context[:60]!r}" if inp.context else repr(inp.mention)


SPEC = GraphSpec(
    name="i2cr",
    description="Link a mention with its context and image to one knowledge-base entity (I2CR).",
    build=build,
    input_model=I2CRInput,
    output_model=I2CRResult,
    config_model=I2CRConfig,
    tools=("embedder", "image_text"),
    optional_tools=("llm", "cues", "ocr", "kb"),
    make_context=make_context,
    initial_state=initial_state,
    read_output=read_output,
    summarize_input=summarize_input,
    recursion_limit=recursion_limit,
)

__all__ = ["SPEC", "I2CRConfig", "I2CRInput", "I2CRResult", "build"]
