"""Chat tools: the LangChain faces, their schemas, concise answers, errors as messages, the registry."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from fake_agent import CANDIDATES, CUES, fake_agent
from langchain_core.messages import ToolMessage
from PIL import Image

from groundgraph.agents import chat
from groundgraph.agents.chat import ChatHost, ChatTool, chat_tools, langchain_tools, register_chat_tool
from groundgraph.tools.errors import ConfigError


@pytest.fixture()
def host(tmp_path: Path) -> ChatHost:
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (32, 32), (10, 120, 200)).save(images / "baker.png")
    agent = fake_agent(tmp_path / "traces.sqlite", order=["Q2", "Q1"], inter=[0.0, 50.0],
                       allowed_image_roots=[str(images)])
    return ChatHost(agent.settings, agents={"i2cr": agent})


def tools_by_name(host: ChatHost) -> dict[str, Any]:
    return {t.name: t for t in langchain_tools(host)}


def call(tool: Any, args: dict[str, Any]) -> ToolMessage:
    """Invoke as a chat model's tool call does, so errors come back as the ToolMessage."""
    return tool.invoke({"type": "tool_call", "id": "call-1", "name": tool.name, "args": args})


def test_link_entity_answers_concisely_with_the_run_id(host: ChatHost) -> None:
    msg = call(tools_by_name(host)["link_entity"], {"mention": "Carroll Baker", "context": "in the swing scene",
                                                    "candidates": CANDIDATES, "visual_cues": CUES})
    assert msg.status == "success"
    answer = json.loads(msg.content)
    assert answer["answer"] == "Q2 (Roy Carroll)" and answer["rounds"] == 2
    assert set(answer) == {"answer", "entity", "accepted_by", "rounds", "cues_used", "run_id"}  # no state dump
    record = host.store().get(answer["run_id"])
    assert record is not None and record.status == "done"


def test_link_entity_without_candidates_uses_the_knowledge_base(host: ChatHost) -> None:
    answer = json.loads(call(tools_by_name(host)["link_entity"], {"mention": "Carroll Baker"}).content)
    assert answer["entity"]["id"] == "Q2" and answer["accepted_by"] == "unverifiable_accept"


def test_schemas_describe_every_argument(host: ChatHost) -> None:
    for tool in langchain_tools(host):
        props = tool.tool_call_schema.model_json_schema()["properties"]
        assert props and all(p.get("description") for p in props.values()), tool.name
    assert {t.name for t in langchain_tools(host)} == {"link_entity", "enrich_caption", "extract_relation",
                                                        "link_document", "get_trace"}


def test_image_path_inside_the_allowed_roots_is_used(host: ChatHost) -> None:
    answer = json.loads(call(tools_by_name(host)["link_entity"], {
        "mention": "Carroll Baker", "candidates": CANDIDATES, "image_path": "baker.png"}).content)
    record = host.store().get(answer["run_id"])
    root = host.settings.allowed_image_roots[0]
    assert record is not None and record.input["image"] == str((root / "baker.png").resolve())


@pytest.mark.parametrize("path", ["../traces.sqlite", "/etc/passwd"])
def test_image_path_outside_the_roots_is_a_tool_error_message(host: ChatHost, path: str) -> None:
    msg = call(tools_by_name(host)["link_entity"], {"mention": "Carroll Baker", "image_path": path})
    assert msg.status == "error"
    assert msg.content.startswith("PathNotAllowedError: ") and "Traceback" not in msg.content


def test_no_roots_configured_says_how_to_configure(tmp_path: Path) -> None:
    agent = fake_agent(tmp_path / "t.sqlite")
    msg = call(tools_by_name(ChatHost(agent.settings, agents={"i2cr": agent}))["link_entity"],
               {"mention": "x", "image_path": "a.png"})
    assert msg.status == "error" and "allowed_image_roots" in msg.content


def test_bad_arguments_and_bad_input_come_back_as_input_errors(host: ChatHost) -> None:
    tools = tools_by_name(host)
    missing = call(tools["link_entity"], {"context": "no mention"})
    assert missing.status == "error" and missing.content.startswith("InputError") and "mention" in missing.content
    blank = call(tools["link_entity"], {"mention": "   ", "candidates": CANDIDATES})
    assert blank.status == "error" and blank.content.startswith("InputError: invalid i2cr input")


def test_unexpected_failures_are_reported_without_internals(host: ChatHost, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(_record: Any) -> Any:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(host.agent("i2cr"), "invoke", boom)
    msg = call(tools_by_name(host)["link_entity"], {"mention": "Carroll Baker", "candidates": CANDIDATES})
    assert msg.status == "error"
    assert msg.content == ("ToolError: link_entity failed unexpectedly (RuntimeError); the server log has the "
                           "details")


def test_get_trace_explains_a_run_and_refuses_unknown_ids(host: ChatHost) -> None:
    tools = tools_by_name(host)
    run_id = json.loads(call(tools["link_entity"], {"mention": "Carroll Baker", "candidates": CANDIDATES,
                                                    "visual_cues": CUES}).content)["run_id"]
    trace = json.loads(call(tools["get_trace"], {"run_id": run_id, "max_events": 3}).content)
    assert trace["answer"] == "Q2 (Roy Carroll)" and trace["events_total"] == 8
    assert [e["node"] for e in trace["events"]] == ["verify_intra", "verify_inter", "fuse"]
    assert trace["events"][1]["scores"] == "inter 50 >= 31 pass"
    unknown = call(tools["get_trace"], {"run_id": "nope"})
    assert unknown.status == "error" and unknown.content.startswith("InputError: no run with id 'nope'")


def test_registry_is_keyed_by_graph_and_refuses_unknown_graphs(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [t.name for t in chat_tools()] == ["link_entity", "enrich_caption", "extract_relation", "link_document",
                                              "get_trace"]
    monkeypatch.setattr(chat, "GRAPH_TOOLS", {k: v for k, v in chat.GRAPH_TOOLS.items() if k != "insgenel"})
    extra = ChatTool(name="extract_relation", description="d", args_model=chat.GetTraceArgs,
                     run=lambda host, args: {}, graph="roc")
    register_chat_tool(extra)
    assert [t.name for t in chat_tools(["roc"])] == ["extract_relation", "get_trace"]
    with pytest.raises(ConfigError, match="no chat tool"):
        chat_tools(["insgenel"])
    with pytest.raises(ConfigError):
        register_chat_tool(ChatTool(name="x", description="d", args_model=chat.GetTraceArgs, run=lambda h, a: {}))


def test_mcp_server_offers_the_same_tools_in_process(host: ChatHost) -> None:
    from mcp import Client

    from groundgraph.agents.mcp_server import build_server

    async def session() -> tuple[Any, Any, Any]:
        async with Client(build_server(host)) as client:
            listed = await client.list_tools()
            ok = await client.call_tool("link_entity", {"mention": "Carroll Baker", "candidates": CANDIDATES})
            bad = await client.call_tool("link_entity", {"mention": "x", "image_path": "/etc/passwd"})
            return listed, ok, bad

    listed, ok, bad = asyncio.run(session())
    schemas = {t.name: t.input_schema for t in listed.tools}
    assert set(schemas) == {"link_entity", "enrich_caption", "extract_relation", "link_document", "get_trace"}
    assert schemas["link_entity"]["properties"]["image_path"]["description"].startswith("path of the mention's image")
    assert schemas["link_entity"]["required"] == ["mention"]
    assert not ok.is_error and json.loads(ok.content[0].text)["entity"]["id"] == "Q2"
    assert bad.is_error and "PathNotAllowedError" in bad.content[0].text


def test_extract_relation_takes_names_or_offsets_and_answers_with_top_3(tmp_path: Path) -> None:
    from roc_fakes import COUPLE, MEMBER, make_ctx

    from groundgraph.agents.agent import Agent
    from groundgraph.agents.registry import graph_spec
    from groundgraph.agents.settings import load_settings
    from groundgraph.agents.toolbox import Toolbox

    settings = load_settings("cpu", trace={"db": str(tmp_path / "t.sqlite")}, allowed_image_roots=[str(tmp_path)])
    roc = Agent(graph_spec("roc"), settings, toolbox=Toolbox({"embedder": {"backend": "hashing"}}),
                context=make_ctx(tmp_path))
    tool = tools_by_name(ChatHost(settings, agents={"roc": roc}))["extract_relation"]
    answer = json.loads(call(tool, {"text": "Ajax says Alice plays for Ajax", "head": "Alice", "tail": "Ajax",
                                    "tail_offset": 26}).content)
    assert answer["relation"] == MEMBER and [t["relation"] for t in answer["top_3"]] == [MEMBER, COUPLE]
    assert set(answer) == {"relation", "score", "decided_by", "top_3", "image_used", "run_id"}
    stored = roc.store.get(answer["run_id"]) if roc.store else None
    assert stored is not None and stored.input["tail"]["pos"] == [5, 6]  # the second "Ajax" token
    wrong = call(tool, {"text": "Alice plays for Ajax", "head": "Alice", "tail": "Ajax", "tail_offset": 3})
    assert wrong.status == "error" and wrong.content == "InputError: tail 'Ajax' is not at character 3 of the text"
    outside = call(tool, {"text": "Alice plays for Ajax", "head": "Alice", "tail": "Ajax", "image_path": "/etc/hosts"})
    assert outside.status == "error" and outside.content.startswith("PathNotAllowedError")


def test_link_document_answers_links_with_offsets_and_a_run_id(tmp_path: Path) -> None:
    from insgenel_fakes import kb_file, make_ctx

    from groundgraph.agents.agent import Agent
    from groundgraph.agents.registry import graph_spec
    from groundgraph.agents.settings import load_settings
    from groundgraph.agents.toolbox import Toolbox

    settings = load_settings("cpu", trace={"db": str(tmp_path / "t.sqlite")})
    ctx = make_ctx(tmp_path, use_llm=False)
    toolbox = Toolbox({"embedder": {"backend": "hashing"}, "kb": {"backend": "sqlite"}},
                      kb_source=str(kb_file(tmp_path)))
    linker = Agent(graph_spec("insgenel"), settings, toolbox=toolbox, context=ctx)
    tool = tools_by_name(ChatHost(settings, agents={"insgenel": linker}))["link_document"]
    text = "Steve Jobs founded Apple. Later Steve Jobs returned to Apple in Paris."
    answer = json.loads(call(tool, {"text": text, "max_links": 2}).content)
    assert set(answer) == {"links", "total_links", "llm_calls", "run_id"}
    assert len(answer["links"]) == 2 and answer["total_links"] >= 4
    first = answer["links"][0]
    assert text[first["start"]:first["end"]] == first["mention"] == "Steve Jobs" and first["entity_id"] == "Q19837"
    assert linker.store is not None and linker.store.get(answer["run_id"]) is not None
    blank = call(tool, {"text": "   "})
    assert blank.status == "error" and blank.content.startswith("InputError")
