"""ROC: multimodal relation extraction as retrieval over relation descriptions (arXiv 2509.21151)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from groundgraph.graphs.base import GraphSpec
from groundgraph.graphs.roc.config import RocConfig
from groundgraph.graphs.roc.context import make_context
from groundgraph.graphs.roc.graph import build, initial_state, recursion_limit
from groundgraph.graphs.roc.state import RocInput, RocResult


def read_output(state: Mapping[str, Any], run_id: str) -> RocResult:
    return RocResult(run_id=run_id, id=state.get("record_id"), **state["result"])


def summarize_input(inp: RocInput) -> str:
    sentence = " ".join(inp.tokens or [])
    return f"{inp.head.name!r} -> {inp.tail.name!r} in {sentence[:60]!r}"


SPEC = GraphSpec(
    name="roc",
    description="Extract the relation between two entities of a sentence (and its image) by retrieval over "
    "relation descriptions (ROC).",
    build=build,
    input_model=RocInput,
    output_model=RocResult,
    config_model=RocConfig,
    tools=(),
    optional_tools=("embedder", "image_text"),
    make_context=make_context,
    initial_state=initial_state,
    read_output=read_output,
    summarize_input=summarize_input,
    recursion_limit=recursion_limit,
)

__all__ = ["SPEC", "RocConfig", "RocInput", "RocResult", "build"]
