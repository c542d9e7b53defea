"""``groundgraph run insgenel`` and ``eval insgenel``."""

from __future__ import annotations

from typing import Any


def register(*, run_app: Any, eval_app: Any) -> None:
    """Add the insgenel commands to the main CLI's sub-apps."""
