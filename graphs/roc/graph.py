"""Wiring of the roc StateGraph; ``build()`` returns it uncompiled so the host picks the checkpointer."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import RetryPolicy

from groundgraph.graphs.roc import nodes
from groundgraph.graphs.roc.config import RocConfig
from groundgraph.graphs.roc.context import RocContext
from groundgraph.graphs.roc.state import RocInput, RocState
from groundgraph.tools.errors import ToolError

# Model calls may fail transiently (a GPU out of memory, a server restarting); bad input never is retried.
TOOL_RETRY = RetryPolicy(max_attempts=3, initial_interval=0.5, retry_on=ToolError)

# One table of nodes and gates drives both the LangGraph build and the plain-loop runner.
NODES = {
    "encode": nodes.encode,
    "retrieve": nodes.retrieve,
    "decide": nodes.decide,
    "fuse": nodes.fuse,
}
TOOL_NODES = ("encode", "retrieve")
EDGES: dict[str, str] = {START: "encode", "encode": "retrieve", "retrieve": "decide", "decide": "fuse", "fuse": END}
# ROC is one pass: the None rule is a decision inside `decide`, not a loop
GATES: dict[str, tuple[Callable[..., str], list[str]]] = {}
APPEND_KEYS = ("trace",)  # list reducers in RocState


def build() -> StateGraph:
    g = StateGraph(RocState, context_schema=RocContext)
    for name, fn in NODES.items():
        g.add_node(name, fn, retry_policy=TOOL_RETRY if name in TOOL_NODES else None)
    for src, dst in EDGES.items():
        g.add_edge(src, dst)
    for src, (router, targets) in GATES.items():
        g.add_conditional_edges(src, router, targets)
    return g


def run_plain(state: dict[str, Any], context: RocContext) -> dict[str, Any]:
    """The same nodes in a plain Python loop: no checkpoints, no retries, no streaming.

    The baseline for measuring LangGraph's overhead.
    """
    runtime = Runtime(context=context)
    state = dict(state)

    def route(src: str) -> str:
        if src in EDGES:
            return EDGES[src]
        router = GATES[src][0]
        return router(state, runtime) if "runtime" in inspect.signature(router).parameters else router(state)

    node = route(START)
    while node != END:
        for key, value in NODES[node](state, runtime).items():  # type: ignore[arg-type]
            state[key] = state.get(key, []) + value if key in APPEND_KEYS else value
        node = route(node)
    return state


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
