"""INSGENEL-R: document entity linking with a light retriever and decision spans (arXiv 2311.03250)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from groundgraph.graphs.base import GraphSpec
from groundgraph.graphs.insgenel.config import InsgenelConfig
from groundgraph.graphs.insgenel.context import make_context
from groundgraph.graphs.insgenel.graph import build, initial_state, recursion_limit
from groundgraph.graphs.insgenel.state import InsgenelInput, InsgenelResult


def read_output(state: Mapping[str, Any], run_id: str) -> InsgenelResult:
    return InsgenelResult(run_id=run_id, id=state.get("record_id"), **state["result"])


def summarize_input(inp: InsgenelInput) -> str:
    return f"{len(inp.text)} characters: {inp.text[:60]!r}"


SPEC = GraphSpec(
    name="insgenel",
    description="Link the entity mentions of a document to knowledge-base entities (INSGENEL-R: retriever, "
    "decision spans, constrained choice).",
    build=build,
    input_model=InsgenelInput,
    output_model=InsgenelResult,
    config_model=InsgenelConfig,
    tools=("kb", "embedder"),
    optional_tools=("llm",),
    make_context=make_context,
    initial_state=initial_state,
    read_output=read_output,
    summarize_input=summarize_input,
    recursion_limit=recursion_limit,
)

__all__ = ["SPEC", "InsgenelConfig", "InsgenelInput", "InsgenelResult", "build"]
