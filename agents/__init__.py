"""The groundgraph runtime: load an agent for a graph, run it, inspect its traces."""

from groundgraph.agents.agent import Agent, BatchItem, TraceEvent, load_agent

__all__ = ["Agent", "BatchItem", "TraceEvent", "load_agent"]
