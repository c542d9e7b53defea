"""Wiring of the i2cr StateGraph; ``build()`` returns it uncompiled so the host picks the checkpointer."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from groundgraph.graphs.base import Wiring
from groundgraph.graphs.i2cr import nodes
from groundgraph.graphs.i2cr.config import I2CRConfig
from groundgraph.graphs.i2cr.context import I2CRContext
from groundgraph.graphs.i2cr.state import I2CRInput, I2CRState

# One table of nodes, edges and gates drives both the LangGraph build and the plain-loop runner.
WIRING = Wiring(
    nodes={
        "retrieve_candidates": nodes.retrieve_candidates,
        "select": nodes.select,
        "verify_intra": nodes.verify_intra,
        "verify_inter": nodes.verify_inter,
        "fetch_visual_cue": nodes.fetch_visual_cue,
        "fuse": nodes.fuse,
    },
    edges={"retrieve_candidates": "select", "fuse": END},
    gates={
        START: (nodes.route_start, ["select", "retrieve_candidates"]),
        "select": (nodes.route_after_select, ["verify_intra", "verify_inter", "fuse"]),
        "verify_intra": (nodes.route_after_intra, ["select", "verify_inter", "fuse"]),
        "verify_inter": (nodes.route_after_inter, ["fetch_visual_cue", "fuse"]),
        "fetch_visual_cue": (nodes.route_after_cue, ["select", "fuse"]),
    },
    append_keys=("gates", "trace"),  # list reducers in I2CRState
    retried=("retrieve_candidates", "select", "verify_intra", "verify_inter", "fetch_visual_cue"),
)


def build() -> StateGraph:
    return WIRING.build(I2CRState, I2CRContext)


def run_plain(state: dict[str, Any], context: I2CRContext) -> dict[str, Any]:
    """The graph's nodes and gates in a plain loop (see ``Wiring.run_plain``)."""
    return WIRING.run_plain(state, context)


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
