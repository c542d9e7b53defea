"""Concurrent runs against one trace store and one knowledge base, and the MCP HTTP server under load.

- Threads: one Agent (one RunStore) runs a batch on 8 threads; records without candidates read the shared
  real KB (SQLite + FAISS). Processes: 3 processes write runs into the same SQLite file and read the same
  KB directory. Afterwards every run has exactly one row, status done, an output that parses, a trace
  with every event, the answer a serial run gives, and SQLite's integrity check passes.
- MCP over streamable HTTP on 127.0.0.1 (the e2e fake server): 8 concurrent clients, 12 calls each (valid
  link_entity calls, get_trace of the runs they made, and invalid calls that must come back as errors):
  requests, unexpected errors and latency percentiles are reported.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from concurrency_child import shared_kb
from e2e_helpers import REPO, free_port, wait_until
from fake_agent import CANDIDATES, CUES
from robust_agents import i2cr_agent
from robust_helpers import record

from groundgraph.agents.runs import RunStore

pytestmark = pytest.mark.robustness

CHILD = Path(__file__).resolve().parent / "concurrency_child.py"


def records(prefix: str, n: int) -> list[dict[str, Any]]:
    """Half with candidates, half looked up in the KB (mentions of the insgenel fake entities)."""
    mentions = ["Steve Jobs", "Wozniak", "New York", "Stanford", "Microsoft", "Paris"]
    out = []
    for i in range(n):
        if i % 2:
            out.append({"id": f"{prefix}{i}", "mention": mentions[i % len(mentions)],
                        "context": f"{mentions[i % len(mentions)]} in the news", "visual_cues": CUES})
        else:
            out.append({"id": f"{prefix}{i}", "mention": "Carroll Baker", "candidates": CANDIDATES,
                        "visual_cues": CUES if i % 4 else {}})
    return out


@pytest.fixture(scope="module")
def kb_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    from insgenel_fakes import make_kb

    root = tmp_path_factory.mktemp("shared_kb")
    make_kb(root)
    return str(root / "kb.jsonl"), str(root / "kb-cache")


def reference_answers(tmp: Path, kb_files: tuple[str, str], recs: list[dict[str, Any]]) -> dict[str, Any]:
    agent = i2cr_agent(tmp / "reference.sqlite")
    agent.context.kb = shared_kb(*kb_files)
    return {r["id"]: (lambda o: (o.entity.id if o.entity else None, o.rounds))(agent.invoke(r)) for r in recs}


def audit(db: Path, expected: dict[str, tuple[str | None, int]], answers: dict[str, str]) -> dict[str, int]:
    """Check every stored run against the serial answers; count what is wrong."""
    store = RunStore(db)
    agent = i2cr_agent(db, store=store)
    rows = store.list(limit=100_000)
    by_id = {r.run_id: r for r in rows}
    problems = {"rows": len(rows), "lost traces": 0, "corrupted rows": 0, "wrong answers": 0, "duplicate rows": 0}
    problems["duplicate rows"] = len(rows) - len(by_id)
    for run_id, record_id in answers.items():
        row = by_id.get(run_id)
        if row is None:
            problems["lost traces"] += 1
            continue
        try:
            events = agent.trace(run_id)
            assert row.status == "done" and row.output is not None and row.finished is not None
            assert row.input["mention"] and [e.node for e in events][-1] == "fuse"
            assert row.rounds == row.output["rounds"] == max(e.round for e in events)
        except Exception:  # noqa: BLE001 - any unreadable or inconsistent row is corruption
            problems["corrupted rows"] += 1
            continue
        entity = (row.output.get("entity") or {}).get("id")
        if (entity, row.rounds) != tuple(expected[record_id]):
            problems["wrong answers"] += 1
    con = sqlite3.connect(db)
    problems["integrity check failures"] = int(con.execute("PRAGMA integrity_check").fetchone()[0] != "ok")
    con.close()
    store.close()
    return problems


def test_threads_share_one_trace_store_and_one_kb(tmp_path: Path, kb_files: tuple[str, str]) -> None:
    recs = records("t", 40)
    expected = reference_answers(tmp_path, kb_files, recs)
    db = tmp_path / "threads.sqlite"
    agent = i2cr_agent(db, trace=True)
    agent.context.kb = shared_kb(*kb_files)
    started = time.perf_counter()
    items = agent.batch(recs, max_workers=8)
    seconds = time.perf_counter() - started
    assert all(i.ok for i in items), [i.error for i in items if not i.ok][:3]
    answers = {i.output["run_id"]: i.id for i in items if i.output}
    problems = audit(db, expected, answers)
    record("concurrency", **{f"threads (8): {k}": v for k, v in problems.items()},
           **{"threads (8): runs": len(recs), "threads (8): seconds": round(seconds, 2)})
    assert problems == {"rows": 40, "lost traces": 0, "corrupted rows": 0, "wrong answers": 0, "duplicate rows": 0,
                        "integrity check failures": 0}


def test_processes_share_one_trace_store_and_one_kb(tmp_path: Path, kb_files: tuple[str, str]) -> None:
    n_procs, per_proc = 3, 15
    db = tmp_path / "processes.sqlite"
    RunStore(db).close()  # created once, as a deployment would
    batches = {w: records(f"p{w}-", per_proc) for w in range(n_procs)}
    expected = reference_answers(tmp_path, kb_files, [r for b in batches.values() for r in b])
    procs = []
    for w, recs in batches.items():
        (tmp_path / f"in{w}.json").write_text(json.dumps(recs))
        procs.append(subprocess.Popen(
            [sys.executable, str(CHILD), str(db), *kb_files, str(tmp_path / f"in{w}.json"),
             str(tmp_path / f"out{w}.json")],
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}, stderr=subprocess.PIPE))
    started = time.perf_counter()
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-3000:]
    seconds = time.perf_counter() - started
    answers: dict[str, str] = {}
    for w in batches:
        answers.update({run_id: a["id"] for run_id, a in json.loads((tmp_path / f"out{w}.json").read_text()).items()})
    problems = audit(db, expected, answers)
    record("concurrency", **{f"processes ({n_procs}): {k}": v for k, v in problems.items()},
           **{f"processes ({n_procs}): runs": n_procs * per_proc, f"processes ({n_procs}): seconds": round(seconds, 2)})
    assert len(answers) == n_procs * per_proc
    assert problems == {"rows": n_procs * per_proc, "lost traces": 0, "corrupted rows": 0, "wrong answers": 0,
                        "duplicate rows": 0, "integrity check failures": 0}


# --- the MCP HTTP server under bounded load --------------------------------------------------------------
def test_mcp_http_server_under_concurrent_load(tmp_path: Path) -> None:
    from mcp import Client

    port = free_port()
    log = tmp_path / "mcp.log"
    proc = subprocess.Popen([sys.executable, str(REPO / "tests" / "e2e" / "mcp_fake_server.py"), str(port),
                             str(tmp_path / "traces.sqlite")], stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, start_new_session=True)
    url = f"http://127.0.0.1:{port}/mcp"
    clients, calls_each = 8, 12
    latencies: list[float] = []
    counts = {"requests": 0, "answers": 0, "expected errors": 0, "unexpected errors": 0}

    async def one_client(k: int) -> None:
        async with Client(url) as client:
            run_ids: list[str] = []
            for i in range(calls_each):
                kind = ("link", "link", "trace", "bad")[i % 4]
                if kind == "link":
                    name, args = "link_entity", {"mention": "Carroll Baker", "candidates": CANDIDATES,
                                                 "visual_cues": CUES, "context": f"client {k} call {i}"}
                elif kind == "trace" and run_ids:
                    name, args = "get_trace", {"run_id": run_ids[-1], "max_events": 3}
                else:
                    name, args = "link_entity", {"mention": "   ", "image_path": "/etc/passwd"}
                t = time.perf_counter()
                result = await client.call_tool(name, args)
                latencies.append(time.perf_counter() - t)
                counts["requests"] += 1
                text = "".join(getattr(c, "text", "") for c in result.content)
                if kind == "bad":
                    good = bool(result.is_error) and ("PathNotAllowedError" in text or "InputError" in text)
                    counts["expected errors" if good else "unexpected errors"] += 1
                    continue
                if result.is_error:
                    counts["unexpected errors"] += 1
                    continue
                answer = json.loads(text)
                if name == "link_entity":  # the fake image scorer fails only its first call: 2 rounds, then 1
                    ok = answer["entity"]["id"] == "Q2" and answer["rounds"] in (1, 2)
                    run_ids.append(answer["run_id"])
                else:
                    ok = (answer["run_id"] == run_ids[-1] and answer["answer"] == "Q2 (Roy Carroll)"
                          and answer["status"] == "done" and answer["events_total"] >= 4)
                counts["answers" if ok else "unexpected errors"] += 1

    async def load() -> None:
        await asyncio.gather(*(one_client(k) for k in range(clients)))

    def up() -> bool:
        import httpx

        return httpx.get(url, timeout=5).status_code < 500

    try:
        wait_until(up, proc, "MCP HTTP server", log, limit_s=120)
        started = time.perf_counter()
        asyncio.run(asyncio.wait_for(load(), timeout=300))
        seconds = time.perf_counter() - started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    ordered = sorted(latencies)
    p95 = ordered[max(0, int(round(0.95 * len(ordered))) - 1)]
    record("mcp http load", **{"concurrent clients": clients, **counts, "seconds": round(seconds, 2),
                               "p50 latency ms": round(statistics.median(ordered) * 1000, 1),
                               "p95 latency ms": round(p95 * 1000, 1), "max latency ms": round(ordered[-1] * 1000, 1),
                               "requests per s": round(len(ordered) / seconds, 1)})
    assert counts["requests"] == clients * calls_each
    assert counts["unexpected errors"] == 0, counts
    assert counts["expected errors"] == clients * calls_each // 4
