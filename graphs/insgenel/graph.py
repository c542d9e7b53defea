"""Wiring of the insgenel StateGraph; ``build()`` returns it uncompiled so the host picks the checkpointer."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from groundgraph.graphs.base import Wiring
from groundgraph.graphs.insgenel import nodes
from groundgraph.graphs.insgenel.config import InsgenelConfig
from groundgraph.graphs.insgenel.context import InsgenelContext
from groundgraph.graphs.insgenel.state import InsgenelInput, InsgenelState

# One table of nodes, edges and gates drives both the LangGraph build and the plain-loop runner.
WIRING = Wiring(
    nodes={"retrieve": nodes.retrieve, "match": nodes.match, "decide": nodes.decide, "fuse": nodes.fuse},
    edges={START: "retrieve", "retrieve": "match", "match": "decide", "decide": "fuse", "fuse": END},
    retried=("retrieve", "decide"),
)


def build() -> StateGraph:
    return WIRING.build(InsgenelState, InsgenelContext)


def run_plain(state: dict[str, Any], context: InsgenelContext) -> dict[str, Any]:
    """The graph's nodes and gates in a plain loop (see ``Wiring.run_plain``)."""
    return WIRING.run_plain(state, context)


def initial_state(inp: InsgenelInput, config: InsgenelConfig) -> dict[str, Any]:
    return {
        "text": inp.text,
        "record_id": inp.id,
        "mentions": [],
        "candidates": {},
        "chunks": [],
        "spans": [],
        "decisions": [],
        "llm_calls": 0,
        "result": None,
        "trace": [],
    }


def recursion_limit(config: InsgenelConfig) -> int:
    return 10  # four nodes, no loop
