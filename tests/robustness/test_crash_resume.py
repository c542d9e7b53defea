"""kill -9 mid-run, then resume from the SQLite checkpoint: nothing lost, nothing repeated, trace readable.

- A single multi-round i2cr run (four select/verify rounds) is killed during round 2 or later; the same
  run id is then finished with ``Agent.resume``: its trace equals an uninterrupted run's event for
  event (no node of a checkpointed step runs twice), its record says done, and every viewer reads it.
- A ``groundgraph run --input/--output`` JSONL file (``run_jsonl``) is killed part-way and rerun: every
  record is in the output exactly once. (The ``groundgraph batch`` engine's kill test is
  tests/e2e/test_batch_engines.py::test_a_killed_batch_resumes_with_nothing_lost_or_repeated.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fake_agent import CANDIDATES, CUES, RECORD
from robust_agents import i2cr_agent
from robust_helpers import record

from groundgraph.agents import traces
from groundgraph.agents.cli_common import run_file
from groundgraph.agents.runs import RunStore

pytestmark = pytest.mark.robustness

CHILD = Path(__file__).resolve().parent / "crash_child.py"


def start(args: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, str(CHILD), *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)


def kill_when(proc: subprocess.Popen[bytes], marker: Path, calls: int, limit_s: float = 180.0,
              ready: Callable[[], bool] = lambda: True) -> int:
    """SIGKILL the child once ``marker`` has ``calls`` lines and ``ready()`` holds; returns the lines seen."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the child ended before the kill: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        seen = len(marker.read_text().splitlines()) if marker.exists() else 0
        if seen >= calls and ready():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return seen
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("the child never reached the kill point")


def events_key(events: list[traces.TraceEvent]) -> list[tuple[str, int, str]]:
    return [(e.node, e.round, e.decision) for e in events]


def test_a_killed_multi_round_run_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    db, marker, run_id = tmp_path / "traces.sqlite", tmp_path / "calls", "crashed-run"
    proc = start(["run", str(db), run_id, str(marker)])

    def round_2_checkpointed() -> bool:
        # LangGraph saves a step's checkpoint in the background while the next step runs (durability
        # "async"), so on a busy machine the steps before the held call can still be unsaved for a while.
        return max((e.round for e in i2cr_agent(db, trace=True).trace(run_id)), default=0) >= 2

    # the child holds inside its second image-text call (round 2's verify_inter) until it is killed
    kill_when(proc, marker, calls=2, ready=round_2_checkpointed)

    agent = i2cr_agent(db, trace=True)
    before = RunStore(db).get(run_id)
    assert before is not None and before.status == "running", before  # killed: never finished nor failed
    done_steps = agent.history(run_id)  # the checkpoint is readable as it was left
    assert done_steps and done_steps[-1].next, "the kill should land mid-run"
    rounds_done = max(e.round for e in agent.trace(run_id))

    resumed = agent.resume(run_id)
    reference = agent.invoke(RECORD)  # the same input, uninterrupted
    got, want = agent.trace(run_id), agent.trace(reference.run_id)
    repeated = len(got) - len(want)
    lost = sum(1 for k in events_key(want) if k not in events_key(got))
    after = agent.store.get(run_id) if agent.store else None
    view = traces.load_run(agent.store, run_id)  # type: ignore[arg-type]
    html = traces.render_html(view)
    record("crash/resume", **{
        "single run: rounds checkpointed before kill -9": rounds_done,
        "single run: trace events repeated after resume": repeated,
        "single run: trace events lost after resume": lost,
        "single run: status after resume": after.status if after else None})
    assert (resumed.entity, resumed.rounds, resumed.accepted_by) == (
        reference.entity, reference.rounds, reference.accepted_by)
    assert resumed.rounds == 4 and rounds_done >= 2
    assert events_key(got) == events_key(want) and repeated == 0 and lost == 0
    assert after is not None and after.status == "done" and after.answer == "Q2 (Roy Carroll)"
    assert view.steps[-1].ran == ["fuse"] and "Round 4" in html
    assert agent.resume(run_id).entity == resumed.entity  # resuming a finished run changes nothing
    assert len(agent.trace(run_id)) == len(got)


def test_a_killed_jsonl_run_resumes_with_nothing_lost_or_repeated(tmp_path: Path) -> None:
    n = 40
    source, output, marker = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "calls"
    source.write_text("".join(json.dumps({"id": f"r{i}", "mention": "Carroll Baker", "candidates": CANDIDATES,
                                          "visual_cues": CUES}) + "\n" for i in range(n)))
    proc = start(["jsonl", str(tmp_path / "traces.sqlite"), str(source), str(output), str(marker)])
    kill_when(proc, marker, calls=4 * 8)  # about eight records in (four image-text calls each)
    before = len(output.read_text().splitlines()) if output.exists() else 0
    assert 0 < before < n, f"{before} records written: the kill should land mid-file"

    agent = i2cr_agent(tmp_path / "traces.sqlite", trace=True)
    run_file(agent, source, output)
    ids = [json.loads(line)["id"] for line in output.read_text().splitlines()]
    lost = len({f"r{i}" for i in range(n)} - set(ids))
    repeated = len(ids) - len(set(ids))
    record("crash/resume", **{"jsonl run: records written before kill -9": before,
                              "jsonl run: records lost after resume": lost,
                              "jsonl run: records repeated after resume": repeated})
    assert lost == 0 and repeated == 0 and len(ids) == n


def test_resume_refuses_unknown_runs_and_agents_without_a_store(tmp_path: Path) -> None:
    from groundgraph.tools.errors import ConfigError, InputError

    with pytest.raises(InputError, match="no run with id"):
        i2cr_agent(tmp_path / "t.sqlite", trace=True).resume("never-ran")
    with pytest.raises(ConfigError, match="stored runs"):
        i2cr_agent(tmp_path / "t.sqlite").resume("never-ran")


def test_a_crash_between_a_nodes_saved_writes_and_its_checkpoint_resumes_without_rerunning_it(
        tmp_path: Path) -> None:
    """The race a kill -9 can land in, made deterministic: LangGraph has saved a node's writes but not yet
    the next checkpoint (the checkpointer's ``put`` is interrupted). At every such point of a four-round run,
    ``resume`` finishes with the trace of an uninterrupted run (the node is not run twice)."""
    reference_agent = i2cr_agent(tmp_path / "reference.sqlite", trace=True)
    reference = reference_agent.invoke(RECORD)
    want = events_key(reference_agent.trace(reference.run_id))
    points = identical = 0
    for n in range(2, 60):
        db = tmp_path / f"crash{n}.sqlite"
        agent = i2cr_agent(db, trace=True)
        saver = agent.store.checkpointer if agent.store else None
        assert saver is not None
        real_put, calls = saver.put, {"n": 0}

        def put(*args: object, n: int = n, real_put: object = real_put, calls: dict[str, int] = calls) -> object:
            calls["n"] += 1
            if calls["n"] == n:
                raise KeyboardInterrupt  # the process dies here
            return real_put(*args)  # type: ignore[operator]

        saver.put = put  # type: ignore[method-assign]
        try:
            agent.invoke(RECORD, run_id="r")
            break  # n is past the last checkpoint: every point was tried
        except KeyboardInterrupt:
            pass
        fresh = i2cr_agent(db, trace=True)
        snap = fresh.graph.get_state({"configurable": {"thread_id": "r"}})
        assert not snap.next and [t.result is not None for t in snap.tasks] == [True]  # writes saved, no checkpoint
        points += 1
        out = fresh.resume("r")
        identical += int(events_key(fresh.trace("r")) == want and out.entity == reference.entity
                         and (fresh.store.get("r") if fresh.store else None).status == "done")  # type: ignore[union-attr]
    record("crash/resume", **{"crash points between saved writes and checkpoint": points,
                              "crash points resumed with the uninterrupted trace": identical})
    assert points >= 15 and identical == points
