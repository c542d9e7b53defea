"""A real MCP client session against `groundgraph serve mcp` (stdio) and a streamable-HTTP server process."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import REPO, free_port, wait_until
from fake_agent import CANDIDATES, CUES, RECORD, fake_agent
from mcp import Client
from mcp.client.stdio import StdioServerParameters

pytestmark = pytest.mark.e2e


def test_streamable_http_session_lists_and_calls_tools(tmp_path: Path, start_server: Any) -> None:
    port = free_port()
    proc = start_server([sys.executable, str(REPO / "tests" / "e2e" / "mcp_fake_server.py"), str(port),
                         str(tmp_path / "traces.sqlite")], log_name="mcp.log")
    url = f"http://127.0.0.1:{port}/mcp"

    async def session() -> tuple[Any, Any, Any]:
        async with Client(url) as client:
            listed = await client.list_tools()
            linked = await client.call_tool("link_entity", {"mention": "Carroll Baker", "candidates": CANDIDATES,
                                                            "visual_cues": CUES})
            run_id = json.loads(linked.content[0].text)["run_id"]
            trace = await client.call_tool("get_trace", {"run_id": run_id})
            return listed, linked, trace

    def connected() -> bool:
        import httpx

        return httpx.get(url, timeout=5).status_code < 500  # the endpoint answers (GET without a session: 4xx)

    wait_until(connected, proc, "MCP HTTP server", proc.log, limit_s=120)
    listed, linked, trace = asyncio.run(session())
    assert {t.name for t in listed.tools} == {"link_entity", "enrich_caption", "extract_relation",
                                               "link_document", "get_trace"}
    assert not linked.is_error
    answer = json.loads(linked.content[0].text)
    assert answer["answer"] == "Q2 (Roy Carroll)" and answer["rounds"] == 2
    assert not trace.is_error and json.loads(trace.content[0].text)["events_total"] == 8


def test_cli_stdio_server_answers_from_the_trace_store_and_refuses_paths(tmp_path: Path) -> None:
    # a run stored where the CLI's default settings look: $GROUNDGRAPH_HOME/traces.sqlite
    run_id = fake_agent(tmp_path / "traces.sqlite").invoke(RECORD).run_id
    groundgraph = Path(sys.executable).with_name("groundgraph")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROUNDGRAPH_")}
    params = StdioServerParameters(command=str(groundgraph), args=["serve", "mcp"], cwd=str(tmp_path),
                                   env={**env, "GROUNDGRAPH_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"})

    async def session() -> tuple[Any, Any, Any]:
        async with Client(params, read_timeout_seconds=120) as client:
            listed = await client.list_tools()
            trace = await client.call_tool("get_trace", {"run_id": run_id, "max_events": 2})
            refused = await client.call_tool("link_entity", {"mention": "Carroll Baker", "image_path": "/etc/hosts"})
            return listed, trace, refused

    listed, trace, refused = asyncio.run(asyncio.wait_for(session(), timeout=240))
    assert {t.name for t in listed.tools} == {"link_entity", "enrich_caption", "extract_relation",
                                               "link_document", "get_trace"}
    assert not trace.is_error
    shown = json.loads(trace.content[0].text)
    assert shown["run_id"] == run_id and shown["answer"] == "Q2 (Roy Carroll)" and len(shown["events"]) == 2
    assert refused.is_error
    text = refused.content[0].text
    assert "PathNotAllowedError" in text and "allowed_image_roots" in text and "Traceback" not in text
