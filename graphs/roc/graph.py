"""Wiring of the roc StateGraph; ``build()`` returns it uncompiled so the host picks the checkpointer."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from groundgraph.graphs.base import Wiring
from groundgraph.graphs.roc import nodes
from groundgraph.graphs.roc.config import RocConfig
from groundgraph.graphs.roc.context import RocContext
from groundgraph.graphs.roc.state import RocInput, RocState

# One table of nodes, edges and gates drives both the LangGraph build and the plain-loop runner.
WIRING = Wiring(
    nodes={"encode": nodes.encode, "retrieve": nodes.retrieve, "decide": nodes.decide, "fuse": nodes.fuse},
    # ROC is one pass: the None rule is a decision inside `decide`, not a loop
    edges={START: "encode", "encode": "retrieve", "retrieve": "decide", "decide": "fuse", "fuse": END},
    retried=("encode", "retrieve"),
)


def build() -> StateGraph:
    return WIRING.build(RocState, RocContext)


def run_plain(state: dict[str, Any], context: RocContext) -> dict[str, Any]:
    """The graph's nodes and gates in a plain loop (see ``Wiring.run_plain``)."""
    return WIRING.run_plain(state, context)


def initial_state(inp: RocInput, config: RocConfig) -> dict[str, Any]:
    assert inp.tokens is not None  # the input model resolves text into tokens
    return {
        "tokens": list(inp.tokens),
        "head": inp.head.model_dump(),
        "tail": inp.tail.model_dump(),
        "image": inp.image,
        "record_id": inp.id,
        "marked_text": "",
        "pair_vector": [],
        "image_scores": None,
        "image_note": "",
        "scores": {},
        "decision": None,
        "gates": [],
        "result": None,
        "trace": [],
    }


def recursion_limit(config: RocConfig) -> int:
    return 10  # four nodes, no loop
