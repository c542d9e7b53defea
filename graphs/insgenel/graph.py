"""Wiring of the insgenel StateGraph; ``build()`` returns it uncompiled so the host picks the checkpointer."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import RetryPolicy

from groundgraph.graphs.insgenel import nodes
from groundgraph.graphs.insgenel.config import InsgenelConfig
from groundgraph.graphs.insgenel.context import InsgenelContext
from groundgraph.graphs.insgenel.state import InsgenelInput, InsgenelState
from groundgraph.tools.errors import ToolError

# Model calls may fail transiently (a GPU out of memory, a server restarting); bad input never is retried.
TOOL_RETRY = RetryPolicy(max_attempts=3, initial_interval=0.5, retry_on=ToolError)

# One table of nodes drives both the LangGraph build and the plain-loop runner.
NODES = {
    "retrieve": nodes.retrieve,
    "match": nodes.match,
    "decide": nodes.decide,
    "fuse": nodes.fuse,
}
TOOL_NODES = ("retrieve", "decide")
EDGES: dict[str, str] = {START: "retrieve", "retrieve": "match", "match": "decide", "decide": "fuse", "fuse": END}
APPEND_KEYS = ("trace",)  # list reducers in InsgenelState


def build() -> StateGraph:
    g = StateGraph(InsgenelState, context_schema=InsgenelContext)
    for name, fn in NODES.items():
        g.add_node(name, fn, retry_policy=TOOL_RETRY if name in TOOL_NODES else None)
    for src, dst in EDGES.items():
        g.add_edge(src, dst)
    return g


def run_plain(state: dict[str, Any], context: InsgenelContext) -> dict[str, Any]:
    """The same nodes in a plain Python loop: no checkpoints, no retries, no streaming.

    The baseline for measuring LangGraph's overhead, and the fit script's way to run many documents.
    """
    runtime = Runtime(context=context)
    state = dict(state)
    node = EDGES[START]
    while node != END:
        for key, value in NODES[node](state, runtime).items():  # type: ignore[arg-type]
            state[key] = state.get(key, []) + value if key in APPEND_KEYS else value
        node = EDGES[node]
    return state


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
