"""``groundgraph train roc``, ``run roc`` and ``eval roc``."""

from __future__ import annotations

from typing import Any


def register(*, run_app: Any, eval_app: Any, train_app: Any) -> None:
    """Add the roc commands to the main CLI's sub-apps."""
