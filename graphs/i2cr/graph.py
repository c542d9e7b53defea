"""Wiring of the i2cr StateGraph; ``build()`` returns it uncompiled so the host picks the checkpointer."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import RetryPolicy

from groundgraph.graphs.i2cr import nodes
from groundgraph.graphs.i2cr.config import I2CRConfig
from groundgraph.graphs.i2cr.context import I2CRContext
from groundgraph.graphs.i2cr.state import I2CRInput, I2CRState
from groundgraph.tools.errors import ToolError

# Model calls may fail transiently (an LLM server restarting); bad input never is retried.
TOOL_RETRY = RetryPolicy(max_attempts=3, initial_interval=0.5, retry_on=ToolError)


# One table of nodes and gates drives both the LangGraph build and the plain-loop runner.
NODES = {
    "retrieve_candidates": nodes.retrieve_candidates,
    "select": nodes.select,
    "verify_intra": nodes.verify_intra,
    "verify_inter": nodes.verify_inter,
    "fetch_visual_cue": nodes.fetch_visual_cue,
    "fuse": nodes.fuse,
}
EDGES: dict[str, str] = {"retrieve_candidates": "select", "fuse": END}
GATES: dict[str, tuple[Callable[..., str], list[str]]] = {
    START: (nodes.route_start, ["select", "retrieve_candidates"]),
    "select": (nodes.route_after_select, ["verify_intra", "verify_inter", "fuse"]),
    "verify_intra": (nodes.route_after_intra, ["select", "verify_inter", "fuse"]),
    "verify_inter": (nodes.route_after_inter, ["fetch_visual_cue", "fuse"]),
    "fetch_visual_cue": (nodes.route_after_cue, ["select", "fuse"]),
}
APPEND_KEYS = ("gates", "trace")  # list reducers in I2CRState


def build() -> StateGraph:
    g = StateGraph(I2CRState, context_schema=I2CRContext)
    for name, fn in NODES.items():
        g.add_node(name, fn, retry_policy=None if name == "fuse" else TOOL_RETRY)
    for src, dst in EDGES.items():
        g.add_edge(src, dst)
    for src, (router, targets) in GATES.items():
        g.add_conditional_edges(src, router, targets)
    return g


def run_plain(state: dict[str, Any], context: I2CRContext) -> dict[str, Any]:
    """The same nodes and gates in a plain Python loop: no checkpoints, no retries, no streaming.

    The baseline for measuring LangGraph's overhead, and fast enough for calibration grids.
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


def initial_state(inp: I2CRInput, config: I2CRConfig) -> dict[str, Any]:
    cues = {k: v for k, v in inp.visual_cues.items()}
    order = [k for k in config.cue_order]
    gathered = {k: cues[k] for k in order if cues.get(k, "").strip()} if config.all_cues_at_once else {}
    return {
        "mention": inp.mention,
        "context": inp.context,
        "image": inp.image,
        "record_id": inp.id,
        "candidates": [c.model_dump() for c in inp.candidates] if inp.candidates else [],
        "cues_available": cues,
        "cues": gathered,
        "cue_queue": [] if config.all_cues_at_once else order,
        "round": 1,
        "rejected": [],
        "reselections": 0,
        "selection": None,
        "choices": [],
        "accepted_by": None,
        "gates": [],
        "llm_calls": 0,
        "result": None,
        "trace": [],
    }


def recursion_limit(config: I2CRConfig) -> int:
    # each round: select + verify_intra (+ reselections) + verify_inter + fetch_visual_cue
    return 10 + config.max_rounds * 4 + config.max_reselections * 2
