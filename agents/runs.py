"""The run store: LangGraph's SQLite checkpointer plus a small index of runs, in one file.

Checkpoints (every step of every run, keyed by run id = thread id) come from
``SqliteSaver``; the ``groundgraph_runs`` table adds what listing needs without replaying
checkpoints: graph, input summary, answer, rounds, status and times.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from langgraph.checkpoint.sqlite import SqliteSaver
from pydantic import BaseModel

from groundgraph.tools.errors import ConfigError

SCHEMA = """
CREATE TABLE IF NOT EXISTS groundgraph_runs (
    run_id TEXT PRIMARY KEY,
    graph TEXT NOT NULL,
    profile TEXT NOT NULL,
    status TEXT NOT NULL,
    input_summary TEXT NOT NULL,
    input_json TEXT NOT NULL,
    answer TEXT,
    rounds INTEGER,
    output_json TEXT,
    error TEXT,
    parent_run_id TEXT,
    started REAL NOT NULL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS groundgraph_runs_started ON groundgraph_runs(started);
"""


class RunRecord(BaseModel):
    run_id: str
    graph: str
    profile: str
    status: str  # running, done, failed
    input_summary: str
    input: dict[str, Any]
    answer: str | None = None
    rounds: int | None = None
    output: dict[str, Any] | None = None
    error: str | None = None
    parent_run_id: str | None = None
    started: float
    finished: float | None = None


def _connect(path: Path) -> sqlite3.Connection:
    con = sqlite3.connect(path, check_same_thread=False, timeout=30.0)
    con.execute("PRAGMA journal_mode=WAL")  # readers never block the writer of a running batch
    con.execute("PRAGMA busy_timeout=30000")
    return con


class RunStore:
    """One SQLite file of checkpoints and run records; safe to share between threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._con = _connect(self.path)
            with self._con:
                self._con.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the trace store at {self.path}: {exc}") from None
        self._lock = threading.Lock()
        self.checkpointer = SqliteSaver(_connect(self.path))

    def _write(self, sql: str, args: tuple[Any, ...]) -> None:
        with self._lock, self._con:
            self._con.execute(sql, args)

    def start(self, run_id: str, graph: str, profile: str, summary: str, inp: dict[str, Any],
              parent_run_id: str | None = None) -> None:
        self._write("INSERT OR REPLACE INTO groundgraph_runs (run_id, graph, profile, status, input_summary, "
                    "input_json, parent_run_id, started) VALUES (?, ?, ?, 'running', ?, ?, ?, ?)",
                    (run_id, graph, profile, summary, json.dumps(inp), parent_run_id, time.time()))

    def finish(self, run_id: str, answer: str | None, rounds: int | None, output: dict[str, Any]) -> None:
        self._write("UPDATE groundgraph_runs SET status='done', answer=?, rounds=?, output_json=?, error=NULL, "
                    "finished=? WHERE run_id=?", (answer, rounds, json.dumps(output), time.time(), run_id))

    def fail(self, run_id: str, error: str) -> None:
        self._write("UPDATE groundgraph_runs SET status='failed', error=?, finished=? WHERE run_id=?",
                    (error, time.time(), run_id))

    def _rows(self, where: str, args: tuple[Any, ...]) -> list[RunRecord]:
        with self._lock:
            rows = self._con.execute(
                "SELECT run_id, graph, profile, status, input_summary, input_json, answer, rounds, output_json, "
                f"error, parent_run_id, started, finished FROM groundgraph_runs {where}", args).fetchall()
        return [RunRecord(run_id=r[0], graph=r[1], profile=r[2], status=r[3], input_summary=r[4],
                          input=json.loads(r[5]), answer=r[6], rounds=r[7],
                          output=json.loads(r[8]) if r[8] else None, error=r[9], parent_run_id=r[10],
                          started=r[11], finished=r[12]) for r in rows]

    def get(self, run_id: str) -> RunRecord | None:
        rows = self._rows("WHERE run_id = ?", (run_id,))
        return rows[0] if rows else None

    def list(self, limit: int = 20, graph: str | None = None) -> list[RunRecord]:
        if graph:
            return self._rows("WHERE graph = ? ORDER BY started DESC LIMIT ?", (graph, limit))
        return self._rows("ORDER BY started DESC LIMIT ?", (limit,))

    def close(self) -> None:
        self._con.close()
        self.checkpointer.conn.close()
