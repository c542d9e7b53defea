"""Wiring of the enriched_caption StateGraph; ``build()`` returns it uncompiled so the host picks the checkpointer."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import RetryPolicy

from groundgraph.graphs.enriched_caption import nodes
from groundgraph.graphs.enriched_caption.config import EnrichedCaptionConfig
from groundgraph.graphs.enriched_caption.context import EnrichedCaptionContext
from groundgraph.graphs.enriched_caption.state import EnrichedCaptionInput, EnrichedCaptionState
from groundgraph.tools.errors import ToolError

# Model calls may fail transiently (an LLM server restarting); bad input never is retried.
TOOL_RETRY = RetryPolicy(max_attempts=3, initial_interval=0.5, retry_on=ToolError)

# One table of nodes and gates drives both the LangGraph build and the plain-loop runner.
NODES = {
    "retrieve": nodes.retrieve,
    "verify": nodes.verify,
    "fetch_visual_cue": nodes.fetch_visual_cue,
    "select": nodes.select,
    "fuse": nodes.fuse,
}
EDGES: dict[str, str] = {START: "retrieve", "verify": "fetch_visual_cue", "select": "fuse", "fuse": END}
GATES: dict[str, tuple[Callable[..., str], list[str]]] = {
    "retrieve": (nodes.route_after_retrieve, ["verify", "fetch_visual_cue"]),
    "fetch_visual_cue": (nodes.route_after_cue, ["select", "fuse"]),
}
APPEND_KEYS = ("trace",)  # list reducers in EnrichedCaptionState


def build() -> StateGraph:
    g = StateGraph(EnrichedCaptionState, context_schema=EnrichedCaptionContext)
    for name, fn in NODES.items():
        g.add_node(name, fn, retry_policy=TOOL_RETRY)
    for src, dst in EDGES.items():
        g.add_edge(src, dst)
    for src, (router, targets) in GATES.items():
        g.add_conditional_edges(src, router, targets)
    return g


def run_plain(state: dict[str, Any], context: EnrichedCaptionContext) -> dict[str, Any]:
    """The same nodes and gates in a plain Python loop: no checkpoints, no retries, no streaming.

    The baseline for measuring LangGraph's overhead, and fast enough for parameter sweeps.
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


def initial_state(inp: EnrichedCaptionInput, config: EnrichedCaptionConfig) -> dict[str, Any]:
    return {
        "image": inp.image,
        "record_id": inp.id,
        "input_cues": dict(inp.visual_cues),
        "hits": [],
        "match": None,
        "article": None,
        "cues": {},
        "cue_sources": {},
        "visual": "",
        "visual_source": "",
        "passages": [],
        "llm_calls": 0,
        "result": None,
        "trace": [],
    }


def recursion_limit(config: EnrichedCaptionConfig) -> int:
    return 12  # five nodes, no loop
