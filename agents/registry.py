"""Graph plugins, discovered through the ``groundgraph.graphs`` entry-point group."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from groundgraph.graphs.base import GraphSpec
from groundgraph.tools.errors import ConfigError

GROUP = "groundgraph.graphs"


@cache
def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available_graphs() -> list[str]:
    return sorted(_entry_points())


def graph_spec(name: str) -> GraphSpec:
    eps = _entry_points()
    if name not in eps:
        raise ConfigError(f"unknown graph {name!r}; registered graphs: {', '.join(sorted(eps)) or 'none'}")
    spec = eps[name].load()
    if not isinstance(spec, GraphSpec):
        raise ConfigError(f"entry point {name!r} does not name a GraphSpec")
    return spec


def reset_cache() -> None:
    _entry_points.cache_clear()
