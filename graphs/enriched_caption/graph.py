"""Wiring of the enriched_caption StateGraph; ``build()`` returns it uncompiled so the host picks the checkpointer."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph

from groundgraph.graphs.base import Wiring
from groundgraph.graphs.enriched_caption import nodes
from groundgraph.graphs.enriched_caption.config import EnrichedCaptionConfig
from groundgraph.graphs.enriched_caption.context import EnrichedCaptionContext
from groundgraph.graphs.enriched_caption.state import EnrichedCaptionInput, EnrichedCaptionState

# One table of nodes, edges and gates drives both the LangGraph build and the plain-loop runner.
WIRING = Wiring(
    nodes={
        "retrieve": nodes.retrieve,
        "verify": nodes.verify,
        "fetch_visual_cue": nodes.fetch_visual_cue,
        "select": nodes.select,
        "fuse": nodes.fuse,
    },
    edges={START: "retrieve", "verify": "fetch_visual_cue", "select": "fuse", "fuse": END},
    gates={
        "retrieve": (nodes.route_after_retrieve, ["verify", "fetch_visual_cue"]),
        "fetch_visual_cue": (nodes.route_after_cue, ["select", "fuse"]),
    },
)


def build() -> StateGraph:
    return WIRING.build(EnrichedCaptionState, EnrichedCaptionContext)


def run_plain(state: dict[str, Any], context: EnrichedCaptionContext) -> dict[str, Any]:
    """The graph's nodes and gates in a plain loop (see ``Wiring.run_plain``)."""
    return WIRING.run_plain(state, context)


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
