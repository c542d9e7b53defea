"""What a graph plugin provides: the contract between a method's graph and the runtime.

A graph plugin is a ``GraphSpec`` registered under the ``groundgraph.graphs`` entry-point
group. It hands the host an *uncompiled* StateGraph (the host picks the checkpointer), typed
input/output/config models, and a function that builds the run context (model handles) from
the tools it names by role. Nothing here knows about agents, profiles or the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from langgraph.graph import StateGraph
from pydantic import BaseModel

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
