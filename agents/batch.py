"""Batch runs over JSON Lines: a local process pool or Ray Data actor pools, resumable.

Each worker (a process, or a Ray actor) loads the profile's tools once and runs the graph on
batches of records. Results are written by one writer as they finish (``agents.jsonl``), so a
rerun skips finished ids and nothing is lost or written twice; failed records go to the
errors file with their reason while the others complete.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from groundgraph.agents.jsonl import BatchWriter, read_records, record_id
from groundgraph.tools.errors import ConfigError, GroundgraphError, InputError


class BatchStats(BaseModel):
    engine: str
    workers: int
    records: int
    skipped: int = 0
    done: int = 0
    errors: int = 0
    wall_s: float = 0.0
    compute_s: float = 0.0  # summed over workers: time inside graph runs
    serialize_s: float = 0.0  # JSON encoding/decoding of records and results on both sides
    records_per_s: float = 0.0


def run_records(agent: Any, records: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Run the agent on (id, record JSON) pairs; a failing record becomes an error row."""
    rows = []
    for rid, text in records:
        t0 = time.perf_counter()
        record = json.loads(text)
        ser = time.perf_counter() - t0
        start = time.perf_counter()
        try:
            row: dict[str, Any] = {"id": rid, "ok": True, "output": agent.invoke(record).model_dump(mode="json")}
        except GroundgraphError as exc:
            row = {"id": rid, "ok": False, "error": str(exc), "error_type": type(exc).__name__}
        row["compute_s"] = time.perf_counter() - start
        row["serialize_s"] = ser
        rows.append(row)
    return rows


def _limit_threads(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a dependency, but workers need not care
        pass


def _make_agent(graph: str, profile: str | None, config: str | None, threads: int) -> Any:
    from groundgraph.agents.agent import load_agent

    _limit_threads(threads)
    return load_agent(graph, profile, config=config, trace=False)


# --- local process pool ---------------------------------------------------------------------------
_WORKER_AGENT: Any = None


def _pool_init(graph: str, profile: str | None, config: str | None, threads: int) -> None:
    global _WORKER_AGENT
    _WORKER_AGENT = _make_agent(graph, profile, config, threads)


def _pool_run(records: list[tuple[str, str]]) -> str:
    t0 = time.perf_counter()
    rows = run_records(_WORKER_AGENT, records)
    text = json.dumps(rows)
    return json.dumps({"rows": text, "encode_s": time.perf_counter() - t0 - sum(r["compute_s"] for r in rows)})


def _chunks(items: list[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _local(graph: str, profile: str | None, config: str | None, todo: list[tuple[str, str]], workers: int,
           batch_size: int, threads: int) -> Iterator[list[dict[str, Any]]]:
    if workers == 1:
        agent = _make_agent(graph, profile, config, threads)
        for chunk in _chunks(todo, batch_size):
            yield run_records(agent, chunk)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=_pool_init,
                             initargs=(graph, profile, config, threads)) as pool:
        pending: set[Future[str]] = set()
        chunks = _chunks(todo, batch_size)
        for chunk in chunks:  # keep every worker busy, with one batch queued each
            pending.add(pool.submit(_pool_run, chunk))
            if len(pending) >= 2 * workers:
                break
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                t0 = time.perf_counter()
                payload = json.loads(fut.result())
                rows = json.loads(payload["rows"])
                decode = time.perf_counter() - t0
                for r in rows:
                    r["serialize_s"] += (payload["encode_s"] + decode) / max(1, len(rows))
                nxt = next(chunks, None)
                if nxt is not None:
                    pending.add(pool.submit(_pool_run, nxt))
                yield rows


# --- Ray Data actor pool --------------------------------------------------------------------------
class RayGraphWorker:
    """A Ray Data actor: loads the agent once, then runs it on each batch of records."""

    def __init__(self, graph: str, profile: str | None, config: str | None, threads: int) -> None:
        self.agent = _make_agent(graph, profile, config, threads)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        rows = run_records(self.agent, list(zip(map(str, batch["id"]), map(str, batch["record"]), strict=True)))
        return {"row": [json.dumps(r) for r in rows]}


def _ray(graph: str, profile: str | None, config: str | None, todo: list[tuple[str, str]], workers: int,
         batch_size: int, threads: int, address: str | None) -> Iterator[list[dict[str, Any]]]:
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray engine needs Ray: pip install 'ray[data]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        if address:
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = max(workers * threads, os.cpu_count() or 1)
        ray.init(**kwargs)
    try:
        items = ray.data.from_items([{"id": rid, "record": text} for rid, text in todo])
        ds = items.map_batches(RayGraphWorker, fn_constructor_kwargs={"graph": graph, "profile": profile,
                                                                   "config": config, "threads": threads},
                            batch_size=batch_size, concurrency=workers, num_cpus=threads, batch_format="numpy")
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            t0 = time.perf_counter()
            rows = [json.loads(text) for text in batch["row"]]
            decode = time.perf_counter() - t0
            for r in rows:
                r["serialize_s"] += decode / max(1, len(rows))
            yield rows
    finally:
        if started_here:
            ray.shutdown()


def run_batch(graph: str, input_path: str | Path, output_path: str | Path, *,
              engine: Literal["local", "ray"] = "local", workers: int = 1, batch_size: int = 16,
              profile: str | None = None, config: str | None = None, address: str | None = None,
              progress: Callable[[int, int], None] | None = None) -> BatchStats:
    """Run ``graph`` over a JSONL file with the chosen engine; resumable, one line per record."""
    if workers < 1:
        raise InputError("workers must be >= 1")
    if engine not in ("local", "ray"):
        raise InputError(f"unknown engine {engine!r}; choose local or ray")
    from groundgraph.agents.registry import graph_spec

    graph_spec(graph)  # unknown graph: fail before starting workers
    writer = BatchWriter(output_path)
    stats = BatchStats(engine=engine, workers=workers, records=0)
    todo: list[tuple[str, str]] = []
    for lineno, record, error in read_records(input_path):
        stats.records += 1
        rid = record_id(record, lineno)
        if rid in writer.done:
            stats.skipped += 1
        elif error or not isinstance(record, dict):
            writer.error(rid, lineno, error or "record is not a JSON object", "InputError")
            stats.errors += 1
        else:
            todo.append((rid, json.dumps(record)))
    threads = max(1, (os.cpu_count() or 1) // workers)
    start = time.perf_counter()
    runs = (_local(graph, profile, config, todo, workers, batch_size, threads) if engine == "local"
            else _ray(graph, profile, config, todo, workers, batch_size, threads, address))
    try:
        for rows in runs:
            for row in rows:
                stats.compute_s += row.pop("compute_s")
                stats.serialize_s += row.pop("serialize_s")
                if row["ok"]:
                    writer.result(row["id"], row["output"])
                    stats.done += 1
                else:
                    writer.error(row["id"], 0, row["error"], row["error_type"])
                    stats.errors += 1
            if progress:
                progress(stats.skipped + stats.done + stats.errors, stats.records)
    finally:
        writer.close()
    stats.wall_s = round(time.perf_counter() - start, 3)
    stats.records_per_s = round(len(todo) / stats.wall_s, 3) if stats.wall_s else 0.0
    stats.compute_s = round(stats.compute_s, 3)
    stats.serialize_s = round(stats.serialize_s, 3)
    return stats
