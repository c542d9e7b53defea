"""Every graph plugin, ready for ``langgraph dev`` / LangGraph server (see ``langgraph.json``).

The server supplies the checkpointer, so graphs are compiled without one. It also passes the run
``context`` as JSON, which cannot carry model handles; so each exported graph's context schema is a
small JSON-native ``ServerContext`` (the profile to run on) whose other attributes resolve to the real
context of that profile's agent, built once per server process on first use. Each exported graph is

    START -> prepare -> <the graph itself, as a subgraph> -> END

where ``prepare`` validates the posted input with the graph's input model (an ``InputError`` fails the
run with its message), resolves image paths inside ``allowed_image_roots`` and builds the initial
state. A run's input is the graph's input JSON, e.g. for i2cr
``{"mention": ..., "context": ..., "candidates": [{"id", "name", "description"}]}``.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any, ClassVar

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.runtime import Runtime
from typing_extensions import TypedDict

from groundgraph.agents.paths import resolve_image_path
from groundgraph.agents.registry import available_graphs, graph_spec
from groundgraph.agents.settings import load_settings

_agents: dict[tuple[str, str | None], Any] = {}
_lock = threading.Lock()


def server_agent(graph: str, profile: str | None = None) -> Any:
    """The Agent (settings, config, context) behind server runs of ``graph`` on ``profile``; it keeps no
    trace store of its own, since the server checkpoints its runs itself."""
    from groundgraph.agents.agent import Agent

    with _lock:
        if (graph, profile) not in _agents:
            _agents[(graph, profile)] = Agent(graph_spec(graph), load_settings(profile), trace=False)
        return _agents[(graph, profile)]


@dataclasses.dataclass
class ServerContext:
    """The run context a server request may set (JSON-native); model handles are looked up from it."""

    profile: str | None = dataclasses.field(
        default=None, metadata={"description": "groundgraph profile: cpu or gpu (default: the server's)"})

    graph_name: ClassVar[str] = ""

    def agent(self) -> Any:
        return server_agent(self.graph_name, self.profile)

    def __getattr__(self, name: str) -> Any:
        # reached only for names that are not fields: the graph's nodes read their real context
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.agent().context, name)


def _context_class(graph: str, agent: Any = None) -> type[ServerContext]:
    namespace: dict[str, Any] = {"graph_name": graph, "__module__": __name__}
    if agent is not None:
        namespace["agent"] = lambda self: agent
    return type("".join(p.capitalize() for p in graph.split("_")) + "ServerContext", (ServerContext,), namespace)


def server_graph(graph: str, *, agent: Any = None) -> CompiledStateGraph[Any, Any, Any, Any]:
    """``graph`` wrapped for a LangGraph server: compiled without a checkpointer, with its context.

    ``agent`` fixes the Agent whose settings and context every run uses (a host with its own models,
    or tests with fake tools); by default each profile's agent is built on first use.
    """
    spec = graph_spec(graph)
    inner = spec.build()
    context_class = _context_class(graph, agent)
    # the posted input's keys, whatever their types: the graph's input model validates them in prepare
    input_schema = TypedDict(f"{context_class.__name__}Input",  # type: ignore[misc]
                             dict.fromkeys(spec.input_model.model_fields, Any), total=False)

    def prepare(state: Mapping[str, Any], *, runtime: Runtime[ServerContext]) -> dict[str, Any]:
        host = (runtime.context or context_class()).agent()
        raw = {k: v for k, v in state.items() if v is not None}
        if raw.get("image"):
            raw["image"] = str(resolve_image_path(raw["image"], host.settings.allowed_image_roots))
        return dict(spec.initial_state(host.validate(raw), host.config))

    outer = StateGraph(inner.state_schema, context_schema=context_class, input_schema=input_schema)
    outer.add_node("prepare", prepare, input_schema=input_schema)
    outer.add_node(graph, inner.compile())
    outer.add_edge(START, "prepare")
    outer.add_edge("prepare", graph)
    outer.add_edge(graph, END)
    return outer.compile(name=graph)


def __getattr__(name: str) -> Any:
    # langgraph.json names each graph as an attribute of this module (./agents/server_graphs.py:i2cr)
    if name in available_graphs():
        graph = server_graph(name)
        globals()[name] = graph
        return graph
    raise AttributeError(name)
