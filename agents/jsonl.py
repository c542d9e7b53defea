"""JSON Lines batches with resume: finished ids are skipped, each result is flushed as it ends.

Output lines are the graph's outputs (one per record); records that fail go to
``<output>.errors.jsonl`` with the reason, and are retried on the next run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from groundgraph.tools.errors import InputError


def record_id(record: Any, lineno: int) -> str:
    rid = record.get("id") if isinstance(record, dict) else None
    return str(rid) if rid is not None else f"line-{lineno}"


def read_records(path: str | Path) -> Iterator[tuple[int, Any, str | None]]:
    """Yield (line number, record, parse error) for each non-blank line of a JSONL file."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"input file not found: {p}")
    with p.open(encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield lineno, json.loads(line), None
            except json.JSONDecodeError as exc:
                yield lineno, None, f"line {lineno} is not JSON: {exc.msg}"


def finished_ids(output: Path) -> set[str]:
    """Ids already written to ``output`` (a torn last line from a crash is dropped and redone)."""
    done: set[str] = set()
    if not output.is_file():
        return done
    good: list[str] = []
    with output.open(encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by a crash
            if isinstance(row, dict) and row.get("id") is not None:
                done.add(str(row["id"]))
                good.append(line if line.endswith("\n") else line + "\n")
    text = "".join(good)
    if output.read_text(encoding="utf-8") != text:  # rewrite without the torn line
        tmp = output.with_suffix(output.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(output)
    return done


class BatchWriter:
    """Appends results and errors, flushing and fsyncing each line so a crash loses at most one."""

    def __init__(self, output: str | Path) -> None:
        self.output = Path(output)
        self.errors_path = self.output.with_name(self.output.name + ".errors.jsonl")
        try:
            self.output.parent.mkdir(parents=True, exist_ok=True)
            self.done = finished_ids(self.output)
            self._out = self.output.open("a", encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:  # a directory, no permission, not our JSONL...
            raise InputError(f"cannot write the output file {self.output}: {exc}") from None
        try:
            self._err = self.errors_path.open("w", encoding="utf-8")  # failures of this run only: they are retried
        except OSError as exc:
            self._out.close()
            raise InputError(f"cannot write the errors file {self.errors_path}: {exc}") from None

    @staticmethod
    def _append(f: Any, row: dict[str, Any]) -> None:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
        f.flush()
        os.fsync(f.fileno())

    def result(self, rid: str, output: dict[str, Any]) -> None:
        self._append(self._out, {**output, "id": rid})
        self.done.add(rid)

    def error(self, rid: str, lineno: int, message: str, error_type: str) -> None:
        self._append(self._err, {"id": rid, "line": lineno, "error": message, "error_type": error_type})

    def close(self) -> None:
        self._out.close()
        self._err.close()


def run_jsonl(input_path: str | Path, output_path: str | Path, run_one: Callable[[dict[str, Any]], dict[str, Any]],
              *, progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Run ``run_one`` over each record not yet in the output; return counts."""
    from groundgraph.tools.errors import GroundgraphError

    records = list(read_records(input_path))
    writer = BatchWriter(output_path)
    counts = {"records": len(records), "skipped": 0, "done": 0, "errors": 0}
    try:
        for n, (lineno, record, parse_error) in enumerate(records, 1):
            rid = record_id(record, lineno)
            if rid in writer.done:
                counts["skipped"] += 1
            elif parse_error or not isinstance(record, dict):
                writer.error(rid, lineno, parse_error or "record is not a JSON object", "InputError")
                counts["errors"] += 1
            else:
                try:
                    writer.result(rid, run_one(record))
                    counts["done"] += 1
                except GroundgraphError as exc:
                    writer.error(rid, lineno, str(exc), type(exc).__name__)
                    counts["errors"] += 1
            if progress:
                progress(n, len(records))
    finally:
        writer.close()
    return counts
