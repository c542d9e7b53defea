"""Helpers every evaluation shares: timing summaries, report writing, plotting set-up."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from groundgraph.agents.jsonl import read_records
from groundgraph.tools.errors import InputError


def load_benchmark(path: str | Path, limit: int | None, is_record: Callable[[Mapping[str, Any]], bool],
                   what: str) -> list[dict[str, Any]]:
    """The first ``limit`` records of a benchmark JSONL; a line that is not ``what`` stops with its line number."""
    rows: list[dict[str, Any]] = []
    for lineno, record, error in read_records(path):
        if error or not isinstance(record, dict) or not is_record(record):
            raise InputError(f"{path}:{lineno} is not {what} ({error or 'wrong shape'})")
        rows.append(record)
        if limit and len(rows) >= limit:
            break
    if not rows:
        raise InputError(f"{path} holds no records")
    return rows


def latency_summary(seconds: Sequence[float]) -> dict[str, float | None]:
    if not seconds:
        return {"mean_ms": None, "median_ms": None, "p95_ms": None}
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"mean_ms": round(statistics.fmean(ordered) * 1000, 2),
            "median_ms": round(statistics.median(ordered) * 1000, 2), "p95_ms": round(p95 * 1000, 2)}


def environment() -> dict[str, Any]:
    import os

    return {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def write_report(report: dict[str, Any], path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str))
    return p


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no screen here; files only
    import matplotlib.pyplot as plt

    return plt
