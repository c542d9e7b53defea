"""`langgraph dev` serves the graphs; a run completes through its HTTP API."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_helpers import REPO, free_port, http_ok, wait_until
from fake_agent import CANDIDATES, CUES

from groundgraph.agents.registry import available_graphs

pytestmark = pytest.mark.e2e

LANGGRAPH = shutil.which("langgraph", path=str(Path(sys.executable).parent)) or shutil.which("langgraph")


def test_langgraph_json_exports_every_graph_with_a_json_context() -> None:
    import importlib.util

    config = json.loads((REPO / "langgraph.json").read_text())
    assert set(config["graphs"]) == set(available_graphs())
    for name, target in config["graphs"].items():
        path, attr = target.split(":")
        spec = importlib.util.spec_from_file_location(f"served_{name}", REPO / path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # as the server loads it
        spec.loader.exec_module(module)
        graph = getattr(module, attr)
        assert graph.checkpointer is None  # the server brings its own
        assert set(graph.get_context_jsonschema()["properties"]) == {"profile"}
        assert {"prepare", name} <= set(graph.get_graph().nodes)


@pytest.mark.skipif(LANGGRAPH is None, reason='needs `pip install "langgraph-cli[inmem]"`')
def test_langgraph_dev_completes_a_run_over_http(tmp_path: Path, start_server: Any) -> None:
    # the real server_graph wrapper, on an agent with fake tools (tests/e2e/fake_server_graphs.py)
    config = tmp_path / "langgraph.json"
    config.write_text(json.dumps({"dependencies": [str(REPO)],
                                  "graphs": {"i2cr": str(REPO / "tests" / "e2e" / "fake_server_graphs.py") + ":i2cr"}}))
    port = free_port()
    proc = start_server([str(LANGGRAPH), "dev", "--no-browser", "--no-reload", "--allow-blocking", "--host",
                         "127.0.0.1", "--port", str(port), "--config", str(config)], log_name="langgraph.log",
                        env={"GROUNDGRAPH_TEST_DB": str(tmp_path / "fake.sqlite"), "LANGSMITH_TRACING": "false",
                             "LANGGRAPH_CLI_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1"})
    base = f"http://127.0.0.1:{port}"
    wait_until(http_ok(f"{base}/ok"), proc, "langgraph dev", proc.log)

    with httpx.Client(base_url=base, timeout=120) as client:
        thread = client.post("/threads", json={}).json()["thread_id"]
        record = {"mention": "Carroll Baker", "context": "Carroll Baker in the swing scene", "candidates": CANDIDATES,
                  "visual_cues": CUES}
        res = client.post(f"/threads/{thread}/runs/wait", json={"assistant_id": "i2cr", "input": record})
        assert res.status_code == 200, res.text
        state = res.json()
        assert state["result"]["entity"]["id"] == "Q2" and state["result"]["rounds"] == 2
        assert [e["node"] for e in state["trace"]][-1] == "fuse"
        stored = client.get(f"/threads/{thread}/state").json()
        assert stored["values"]["result"]["accepted_by"] == "inter_modal"

        # node progress messages stream as "custom" events
        with client.stream("POST", "/runs/stream", json={"assistant_id": "i2cr", "input": record,
                                                         "stream_mode": ["custom"], "stream_subgraphs": True}) as s:
            body = "".join(s.iter_text())
        assert "selected Roy Carroll" in body and "answer Roy Carroll (inter_modal)" in body

        # bad input and image paths outside the allowed roots fail with the typed error, not a traceback
        bad = client.post("/runs/wait", json={"assistant_id": "i2cr", "input": {"mention": "  "}}).json()
        assert bad["__error__"]["error"] == "InputError" and "mention is blank" in bad["__error__"]["message"]
        path = client.post("/runs/wait", json={"assistant_id": "i2cr",
                                               "input": {"mention": "x", "image": "/etc/hosts"}}).json()
        assert path["__error__"]["error"] == "PathNotAllowedError"
