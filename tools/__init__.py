"""Tools: one module per capability, each a small Protocol, its backends and a LangChain face.

Nothing here imports ``graphs`` or ``agents``.
"""

from groundgraph.tools.errors import (
    ConfigError,
    GroundgraphError,
    InputError,
    PathNotAllowedError,
    ToolError,
    ToolUnavailableError,
)

__all__ = [
    "ConfigError",
    "GroundgraphError",
    "InputError",
    "PathNotAllowedError",
    "ToolError",
    "ToolUnavailableError",
]
