"""Wiring of the i2cr StateGraph; ``build()`` returns it uncompiled so the host picks the checkpointer."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.types import RetryPolicy

from groundgraph.graphs.i2cr import nodes
from groundgraph.graphs.i2cr.config import I2CRConfig
from groundgraph.graphs.i2cr.context import I2CRContext
from groundgraph.graphs.i2cr.state import I2CRInput, I2CRState
from groundgraph.tools.errors import ToolError

# Model calls may fail transiently (an LLM server restarting); bad input never is retried.
TOOL_RETRY = RetryPolicy(max_attempts=3, initial_interval=0.5, retry_on=ToolError)


def build() -> StateGraph:
    g = StateGraph(I2CRState, context_schema=I2CRContext)
    g.add_node("retrieve_candidates", nodes.retrieve_candidates, retry_policy=TOOL_RETRY)
    g.add_node("select", nodes.select, retry_policy=TOOL_RETRY)
    g.add_node("verify_intra", nodes.verify_intra, retry_policy=TOOL_RETRY)
    g.add_node("verify_inter", nodes.verify_inter, retry_policy=TOOL_RETRY)
    g.add_node("fetch_visual_cue", nodes.fetch_visual_cue, retry_policy=TOOL_RETRY)
    g.add_node("fuse", nodes.fuse)
    g.add_conditional_edges(START, nodes.route_start, ["select", "retrieve_candidates"])
    g.add_edge("retrieve_candidates", "select")
    g.add_conditional_edges("select", nodes.route_after_select, ["verify_intra", "verify_inter", "fuse"])
    g.add_conditional_edges("verify_intra", nodes.route_after_intra, ["select", "verify_inter", "fuse"])
    g.add_conditional_edges("verify_inter", nodes.route_after_inter, ["fetch_visual_cue", "fuse"])
    g.add_conditional_edges("fetch_visual_cue", nodes.route_after_cue, ["select", "fuse"])
    g.add_edge("fuse", END)
    return g


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
