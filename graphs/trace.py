"""Structured trace events that every node appends to state (a list reducer).

An event is a JSON-native dict: node, round, decision, why, scores against thresholds, the
inputs it used and its tool calls with latency. ``ToolCalls`` times calls inside a node.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


class ToolCalls:
    """Collects {tool, what, latency_ms} records for the tool calls a node makes."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def call(self, tool: Any, what: str, fn: Callable[[], T], **info: Any) -> T:
        start = time.perf_counter()
        try:
            return fn()
        finally:
            self.records.append({
                "tool": getattr(tool, "name", str(tool)),
                "what": what,
                "latency_ms": round((time.perf_counter() - start) * 1000, 2),
                **info,
            })


def event(
    node: str,
    round_: int,
    decision: str,
    why: str,
    *,
    scores: dict[str, Any] | None = None,
    inputs: list[str] | None = None,
    tool_calls: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One trace event. ``scores`` maps a name to {value, threshold?, passed?} or a number."""
    return {
        "node": node,
        "round": round_,
        "decision": decision,
        "why": why,
        "scores": scores or {},
        "inputs": inputs or [],
        "tool_calls": tool_calls or [],
        "time": time.time(),
        **extra,
    }


def gate(value: float | None, threshold: float, *, at_or_above: bool = True) -> dict[str, Any]:
    """A gate score against its threshold; ``passed`` is None when the value is unknown."""
    passed = None if value is None else (value >= threshold if at_or_above else value < threshold)
    return {"value": None if value is None else round(float(value), 4), "threshold": threshold, "passed": passed}
