"""Tool plugins, discovered through the ``groundgraph.tools`` entry-point group.

Entry point names are ``<kind>.<backend>`` (``embedder.sentence_transformers``); built-ins
register the same way as third-party plugins.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from groundgraph.tools.base import Tool
from groundgraph.tools.errors import ConfigError

GROUP = "groundgraph.tools"


@cache
def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def available_tools() -> list[str]:
    """Names (``kind.backend``) of every registered tool backend."""
    return sorted(_entry_points())


def tool_class(name: str) -> type[Tool[Any]]:
    eps = _entry_points()
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none"
        raise ConfigError(f"unknown tool {name!r}; registered tools: {known}")
    cls = eps[name].load()
    if not (isinstance(cls, type) and issubclass(cls, Tool)):
        raise ConfigError(f"entry point {name!r} does not name a groundgraph Tool subclass")
    return cls


def create_tool(kind: str, config: dict[str, Any]) -> Tool[Any]:
    """Build the backend named by ``config['backend']`` for capability ``kind``."""
    backend = config.get("backend")
    if not backend:
        raise ConfigError(f"tool config for {kind!r} names no backend")
    return tool_class(f"{kind}.{backend}")(config)


def reset_cache() -> None:
    """Forget discovered plugins (after installing one at run time)."""
    _entry_points.cache_clear()
