"""Model failures: a tool that raises ToolError (a server gone away, a timeout) is retried by the graph's
RetryPolicy, then reported as a clear per-record error while the rest of the batch completes.

- i2cr: the image-text scorer fails for one record every time: 3 attempts (the policy), a ToolError item
  naming the failure, every other record answered; a tool that fails twice then answers completes.
- An untyped exception in a tool (a bug, not a transient failure) is not retried and is reported as a
  ToolError naming the exception type, without internals, for that record only.
- roc through the JSONL runner (``groundgraph run --input/--output``): its encoder fails for one record;
  that record lands in the errors file, the others in the output.
- The real OpenAI-compatible LLM backend pointed at a server that went away (a closed port, a port that
  never answers): i2cr's scorer reports it in the trace and the cheap scores decide.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fake_agent import CANDIDATES, CUES
from robust_agents import i2cr_agent, roc_agent
from robust_helpers import record

from groundgraph.agents.jsonl import run_jsonl
from groundgraph.tools.errors import ToolError

pytestmark = pytest.mark.robustness


class FlakyImageText:
    """Fails (ToolError, or ``error``) for contexts containing ``poison``, or for the first ``transient`` calls
    of a context containing 'transient'; counts calls per context."""

    name = "image_text.flaky"
    scale = "clip_100cos"

    def __init__(self, error: type[Exception] = ToolError, transient: int = 2) -> None:
        self.error = error
        self.transient = transient
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def score(self, image: Any, texts: list[str]) -> list[float | None]:
        key = image.cues.get("tags", "")
        with self.lock:
            self.calls[key] = self.calls.get(key, 0) + 1
            n = self.calls[key]
        if "poison" in key:
            raise self.error("image_text.flaky: the server at http://127.0.0.1:9/v1 went away (connection refused)")
        if "transient" in key and n <= self.transient:
            raise ToolError(f"image_text.flaky: timed out after 1 s (attempt {n})")
        return [50.0 for _ in texts]


def batch_records(tags: list[str]) -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "mention": "Carroll Baker", "candidates": CANDIDATES,
             "visual_cues": {**CUES, "tags": tag}} for i, tag in enumerate(tags)]


def test_a_failing_tool_is_retried_then_reported_for_its_record_only(tmp_path: Path) -> None:
    agent = i2cr_agent(tmp_path / "t.sqlite", trace=True)
    flaky = FlakyImageText()
    agent.context.image_text = flaky
    tags = ["ok 0", "ok 1", "poison", "ok 3", "transient", "ok 5"]
    started = time.perf_counter()
    items = agent.batch(batch_records(tags), max_workers=2)
    seconds = time.perf_counter() - started
    failed = [i for i in items if not i.ok]
    record("model failures", **{
        "i2cr batch records": len(items), "i2cr batch answered": sum(i.ok for i in items),
        "i2cr batch per-record errors": len(failed), "attempts on the always-failing tool": flaky.calls["poison"],
        "attempts on the twice-failing tool (then answered)": flaky.calls["transient"],
        "i2cr batch seconds (with retry back-off)": round(seconds, 2)})
    assert [i.id for i in failed] == ["r2"]
    assert failed[0].error_type == "ToolError" and "went away" in (failed[0].error or "")
    assert "Traceback" not in (failed[0].error or "")
    assert flaky.calls["poison"] == 3  # RetryPolicy(max_attempts=3)
    assert flaky.calls["transient"] == 3 and items[4].ok  # two failures, then the answer
    rows = {r.input["visual_cues"]["tags"]: r for r in agent.store.list(50)} if agent.store else {}
    assert rows["poison"].status == "failed" and "went away" in (rows["poison"].error or "")
    assert all(rows[t].status == "done" for t in tags if t != "poison")


def test_an_untyped_tool_exception_is_not_retried_and_reported_without_internals(tmp_path: Path) -> None:
    agent = i2cr_agent(tmp_path / "t.sqlite")
    flaky = FlakyImageText(error=KeyError)
    agent.context.image_text = flaky
    items = agent.batch(batch_records(["ok", "poison", "ok 2"]))
    record("model failures", **{"attempts on a tool raising an untyped exception": flaky.calls["poison"]})
    assert [i.ok for i in items] == [True, False, True]
    assert items[1].error_type == "ToolError" and "KeyError" in (items[1].error or "")
    assert flaky.calls["poison"] == 1  # only ToolError is retried: a bug does not get better on retry


def test_roc_jsonl_run_reports_the_failed_record_and_completes_the_rest(tmp_path: Path) -> None:
    agent = roc_agent(tmp_path)
    encoder = agent.context.encoder
    real_embed = encoder.embed
    calls = {"poison": 0}

    def embed(texts: Any) -> Any:
        if any("Poison" in t for t in texts):
            calls["poison"] += 1
            raise ToolError("embedder: CUDA out of memory (simulated)")
        return real_embed(texts)

    encoder.embed = embed
    source, output = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    rows = [{"id": f"s{i}", "text": f"{'Poison' if i == 2 else 'Alice'} plays for Ajax since 2019",
             "head": {"name": "Poison" if i == 2 else "Alice"}, "tail": {"name": "Ajax"}} for i in range(5)]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    counts = run_jsonl(source, output, lambda r: agent.invoke(r).model_dump(mode="json"))
    errors = [json.loads(x) for x in output.with_name(output.name + ".errors.jsonl").read_text().splitlines()]
    done = [json.loads(x)["id"] for x in output.read_text().splitlines()]
    record("model failures", **{"roc jsonl records": len(rows), "roc jsonl answered": counts["done"],
                                "roc jsonl per-record errors": counts["errors"],
                                "attempts on the failing roc encoder": calls["poison"]})
    assert counts == {"records": 5, "skipped": 0, "done": 4, "errors": 1}
    assert done == ["s0", "s1", "s3", "s4"]
    assert errors[0]["id"] == "s2" and errors[0]["error_type"] == "ToolError" and "out of memory" in errors[0]["error"]
    assert calls["poison"] == 3


def _silent_port() -> tuple[socket.socket, int]:
    """A listening socket that accepts connections and never answers: a hung server."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s, int(s.getsockname()[1])


def test_a_real_llm_backend_whose_server_is_gone_degrades_to_the_cheap_scores(tmp_path: Path) -> None:
    from groundgraph.graphs.i2cr.scoring import CandidateScorer, ScorerWeights
    from groundgraph.tools.embedder import HashingEmbedder
    from groundgraph.tools.llm import OpenAICompatibleLLM

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_port = int(closed.getsockname()[1])
    closed.close()  # nothing listens there any more
    hung, hung_port = _silent_port()
    results = {}
    try:
        for name, port in (("connection refused", dead_port), ("no answer (timeout)", hung_port)):
            llm = OpenAICompatibleLLM(base_url=f"http://127.0.0.1:{port}/v1", model="m", timeout=0.5, max_retries=1)
            agent = i2cr_agent(tmp_path / "t.sqlite", inter=50.0)
            agent.context.scorer = CandidateScorer(HashingEmbedder(), llm, ScorerWeights(llm=5.0, llm_gap=1e9))
            started = time.perf_counter()
            out = agent.invoke({"mention": "Carroll Baker", "candidates": CANDIDATES, "visual_cues": CUES})
            results[name] = round(time.perf_counter() - started, 2)
            assert out.entity is not None and out.entity.id in {c["id"] for c in CANDIDATES}
            assert out.llm_calls == 0
            with pytest.raises(ToolError, match="127.0.0.1"):  # the backend itself says which server failed
                llm.choose("Carroll Baker is", ["an actress", "a footballer"])
    finally:
        hung.close()
    record("model failures", **{f"i2cr with its LLM server gone, {k}: seconds": v for k, v in results.items()})
