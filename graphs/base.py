"""What a graph plugin provides: the contract between a method's graph and the runtime.

A graph plugin is a ``GraphSpec`` registered under the ``groundgraph.graphs`` entry-point
group. It hands the host an *uncompiled* StateGraph (the host picks the checkpointer), typed
input/output/config models, and a function that builds the run context (model handles) from
the tools it names by role. Nothing here knows about agents, profiles or the CLI.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import RetryPolicy
from pydantic import BaseModel

from groundgraph.tools.errors import ToolError

#: tools by role ("embedder", "llm", ...); a role the profile leaves empty maps to None
Tools = Mapping[str, Any]


@dataclass(frozen=True)
class GraphSpec:
    name: str
    description: str
    build: Callable[[], StateGraph]
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    config_model: type[BaseModel]
    #: roles this graph reads from the toolbox; optional ones may be None at run time
    tools: tuple[str, ...]
    optional_tools: tuple[str, ...]
    #: (tools, config) -> the object passed as ``context`` (LangGraph Runtime.context)
    make_context: Callable[[Tools, Any], Any]
    #: (validated input, config) -> the initial JSON-native state
    initial_state: Callable[[Any, Any], dict[str, Any]]
    #: (final state, run id) -> the output model
    read_output: Callable[[Mapping[str, Any], str], BaseModel]
    #: short text for run listings
    summarize_input: Callable[[Any], str] = field(default=lambda x: str(x)[:80])
    #: max LangGraph steps for one run (derived from the config's loop bounds)
    recursion_limit: Callable[[Any], int] = field(default=lambda config: 50)


#: model calls may fail transiently (a GPU out of memory, a server restarting); bad input is never retried
TOOL_RETRY = RetryPolicy(max_attempts=3, initial_interval=0.5, retry_on=ToolError)


@dataclass(frozen=True)
class Wiring:
    """One table of nodes, edges and gates that drives both the LangGraph build and a plain-loop runner.

    ``gates`` maps a node (or START) to (router, targets); ``append_keys`` are the state's list reducers;
    ``retried`` names the nodes that get ``TOOL_RETRY`` (None: every node).
    """

    nodes: Mapping[str, Callable[..., dict[str, Any]]]
    edges: Mapping[str, str]
    gates: Mapping[str, tuple[Callable[..., str], list[str]]] = field(default_factory=dict)
    append_keys: tuple[str, ...] = ("trace",)
    retried: tuple[str, ...] | None = None

    def build(self, state_schema: type[Any], context_schema: type[Any]) -> StateGraph:
        g = StateGraph(state_schema, context_schema=context_schema)
        for name, fn in self.nodes.items():
            retry = TOOL_RETRY if self.retried is None or name in self.retried else None
            g.add_node(name, fn, retry_policy=retry)
        for src, dst in self.edges.items():
            g.add_edge(src, dst)
        for src, (router, targets) in self.gates.items():
            g.add_conditional_edges(src, router, targets)  # type: ignore[arg-type]
        return g

    def run_plain(self, state: Mapping[str, Any], context: Any) -> dict[str, Any]:
        """The same nodes and gates in a plain Python loop: no checkpoints, no retries, no streaming.

        The baseline for measuring LangGraph's overhead, and fast enough for calibration grids and fits.
        """
        runtime = Runtime(context=context)
        current = dict(state)

        def route(src: str) -> str:
            if src in self.edges:
                return self.edges[src]
            router = self.gates[src][0]
            takes_runtime = "runtime" in inspect.signature(router).parameters
            return router(current, runtime) if takes_runtime else router(current)

        node = route(START)
        while node != END:
            for key, value in self.nodes[node](current, runtime).items():
                current[key] = current.get(key, []) + value if key in self.append_keys else value
            node = route(node)
        return current
