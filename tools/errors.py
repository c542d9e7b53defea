"""Error types every layer of groundgraph raises on purpose.

They live in ``tools`` because it is the bottom layer: graphs and agents import them from here.
Each message says what was wrong and what to do, so a user never needs a model's stack trace.
"""

from __future__ import annotations


class GroundgraphError(Exception):
    """Base class of every error groundgraph raises deliberately."""


class InputError(GroundgraphError, ValueError):
    """The caller's input is invalid (empty text, missing or unreadable image, bad span...)."""


class ConfigError(GroundgraphError):
    """Configuration is malformed or names something unknown (profile, tool, graph, backend)."""


class ToolUnavailableError(GroundgraphError):
    """A tool cannot run here: its package, weights or device is missing."""


class ToolError(GroundgraphError):
    """A tool failed while running (the model raised, a server went away, a timeout)."""


class PathNotAllowedError(InputError):
    """A path points outside the roots this entry point may read."""
