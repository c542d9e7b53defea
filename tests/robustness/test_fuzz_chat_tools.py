"""The chat tools as a chat model or an MCP client calls them: >= 1000 generated calls through the
LangChain face and >= 1000 through an in-process MCP session, over link_entity, extract_relation,
enrich_caption and get_trace on a host whose agents run on fake tools.

Image paths are untrusted here: they come from inside and outside the allowed root, with ``..``,
symlinks that lead out, absolute paths elsewhere, NULs, names too long. A call passes when it answers
(JSON, with an entity among the candidates, a relation of the label set, a corpus article, an image
inside the root) or comes back as a typed error message without a traceback. The host's last-resort
"failed unexpectedly" message is counted as a crash, since it means an untyped exception got that far.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from fake_agent import CANDIDATES, CUES, FakeKB
from hypothesis import given
from hypothesis import strategies as st
from robust_agents import caption_agent, i2cr_agent, insgenel_agent, roc_agent
from robust_helpers import FIGURES, FUZZ, Tally, anything, make_image_zoo, text_or_wrong, text_values, wrong_types

from groundgraph.agents.chat import GRAPH_TOOLS, ChatHost, langchain_tools
from groundgraph.agents.mcp_server import build_server
from groundgraph.tools.errors import GroundgraphError

pytestmark = pytest.mark.robustness

ERROR_TYPES = ("InputError", "PathNotAllowedError", "ToolError", "ConfigError", "ToolUnavailableError")


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("chat")
    root = tmp / "images"
    zoo = make_image_zoo(root)
    outside = tmp / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(Path(zoo["ok.png"]).read_bytes())
    (root / "escape.png").symlink_to(outside / "secret.png")  # a symlink inside the root leading out
    (root / "escape_dir").symlink_to(outside, target_is_directory=True)
    db = tmp / "traces.sqlite"
    stored = i2cr_agent(db, roots=[str(root)], trace=True)  # one stored run for get_trace to find
    run_id = stored.invoke({"mention": "Carroll Baker", "candidates": CANDIDATES, "visual_cues": CUES}).run_id
    agents = {"i2cr": i2cr_agent(db, roots=[str(root)]), "roc": roc_agent(tmp, roots=[str(root)]),
              "enriched_caption": caption_agent(tmp, roots=[str(root)]), "insgenel": insgenel_agent(tmp)}
    host = ChatHost(agents["i2cr"].settings, agents=agents)
    host._store = stored.store  # get_trace reads the store that holds the run
    inside = sorted(os.path.relpath(p, root) for p in zoo.values() if p.startswith(str(root)))
    paths = inside + [str(Path(p)) for p in zoo.values()] + [
        "../outside/secret.png", str(outside / "secret.png"), "escape.png", "escape_dir/secret.png",
        "./../images/ok.png", "images/../../outside/secret.png", "ok.png/..", "/etc/passwd", "/", ".", "..",
        "~/ok.png", "~nosuchuser_gg/ok.png", "ok.png\x00.png", "n" * 5000, "/proc/self/environ", "\udcff.png"]
    from insgenel_fakes import ENTITIES

    return {"host": host, "run_id": run_id, "root": root.resolve(), "paths": paths,
            "labels": set(agents["roc"].context.labels), "kb_ids": {e["id"] for e in ENTITIES},
            "tools": set(GRAPH_TOOLS[g].name for g in agents if g in GRAPH_TOOLS) | {"get_trace"}}


def pick(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.tuples(st.integers(0, 9), valid, hostile).map(lambda t: t[1] if t[0] < 7 else t[2])


def tool_calls(setup: dict[str, Any]) -> st.SearchStrategy[tuple[str, Any]]:
    path = st.sampled_from(setup["paths"]) | text_values
    candidate = st.fixed_dictionaries({"id": text_or_wrong, "name": text_or_wrong}, optional={
        "description": text_or_wrong, "extra": anything})

    def args(required: dict[str, Any], optional: dict[str, Any]) -> st.SearchStrategy[Any]:
        record = st.fixed_dictionaries(required, optional={**optional, "unexpected_argument": anything})
        return st.tuples(st.integers(0, 19), record, wrong_types).map(lambda t: t[1] if t[0] else t[2])

    link = args({"mention": pick(st.sampled_from(["Carroll Baker", "Baker"]), text_or_wrong)}, {
        "context": pick(text_values, wrong_types), "image_path": path,
        "candidates": pick(st.sampled_from([CANDIDATES, CANDIDATES[:2]]), st.lists(candidate, max_size=3)
                           | wrong_types),
        "visual_cues": pick(st.sampled_from([CUES, {}]), st.dictionaries(text_values, text_or_wrong, max_size=3)
                            | wrong_types)})
    relation = args({"text": pick(st.just("Alice plays for Ajax since 2019"), text_or_wrong),
                     "head": pick(st.just("Alice"), text_or_wrong), "tail": pick(st.just("Ajax"), text_or_wrong)}, {
        "head_offset": pick(st.just(0), st.integers(-5, 50) | wrong_types),
        "tail_offset": pick(st.just(16), st.integers(-5, 50) | st.just(2**64) | wrong_types),
        "image_path": path})
    caption = args({"image_path": pick(st.sampled_from(["ok.png", "ok.jpg", "symlink_in.png"]), path | wrong_types)},
                   {})
    trace = args({"run_id": pick(st.just(setup["run_id"]), text_or_wrong)},
                 {"max_events": pick(st.integers(1, 500), st.integers() | wrong_types)})
    document = args({"text": pick(st.sampled_from(["Steve Jobs founded Apple with Steve Wozniak.",
                                                   "Steve studied at Stanford University in New York."]),
                                  text_or_wrong)},
                    {"max_links": pick(st.integers(1, 500), st.integers() | wrong_types)})
    calls = {"link_entity": link, "extract_relation": relation, "enrich_caption": caption, "get_trace": trace,
             "link_document": document}  # link_document: insgenel's tool, fuzzed once the registry offers it
    return st.one_of(*(st.tuples(st.just(name), strategy) for name, strategy in calls.items()
                       if name in setup["tools"]))


def check_answer(setup: dict[str, Any], tool: str, args: Any, answer: dict[str, Any]) -> None:
    assert answer.get("run_id"), answer
    if tool == "link_entity" and answer["entity"] is not None:
        given_ids = {str(c["id"]) for c in (args.get("candidates") or [])}
        allowed = given_ids or {m.entity.id for m in FakeKB().lookup("", 10)}
        assert answer["entity"]["id"] in allowed, answer["entity"]
    if tool == "extract_relation":
        assert answer["relation"] in setup["labels"], answer["relation"]
    if tool == "enrich_caption":
        assert answer["article"] is None or answer["article"]["id"] in {"rocket-2015", "cat-2022"}
    if tool == "link_document":
        assert all(link["entity_id"] in setup["kb_ids"] for link in answer["links"]), answer["links"]
        assert len(answer["links"]) <= args.get("max_links", 50)
    if tool in ("link_entity", "extract_relation", "enrich_caption"):
        record = setup["host"].store().get(answer["run_id"])  # stored runs only; the fuzz agents keep none
        assert record is None or not record.input.get("image") or Path(record.input["image"]).is_relative_to(
            setup["root"])


def classify(tally: Tally, setup: dict[str, Any], tool: str, args: Any, is_error: bool, text: str) -> None:
    per_tool = FIGURES.setdefault("fuzz (calls per chat tool)", {}).setdefault(tally.name, {})
    per_tool[tool] = per_tool.get(tool, 0) + 1
    if is_error:
        message = text.removeprefix(f"Error executing tool {tool}: ")
        typed = message.split(":")[0].strip()
        if typed not in ERROR_TYPES:  # MCP's own check of the arguments against the published schema
            typed = "argument validation (MCP schema)" if re.search(r"validation errors? for", message) else ""
        if not typed or "Traceback" in text or "failed unexpectedly" in text:
            tally.crash(f"{tool} {args!r:.300}: {text[:300]}")
            return
        tally.typed_errors += 1
        tally.error_types[typed] = tally.error_types.get(typed, 0) + 1
        return
    try:
        check_answer(setup, tool, args, json.loads(text))
    except (AssertionError, ValueError, KeyError, TypeError) as exc:
        tally.crash(f"{tool} {args!r:.300}: answer {text[:200]!r} is not valid: {exc}")
        return
    tally.ok += 1


def test_langchain_chat_tools_fuzz(setup: dict[str, Any]) -> None:
    tools = {t.name: t for t in langchain_tools(setup["host"])}
    tally = Tally("langchain chat tools")

    @FUZZ
    @given(call=tool_calls(setup))
    def case(call: tuple[str, Any]) -> None:
        name, args = call
        if not isinstance(args, dict):  # a chat model's tool call always carries an object of arguments
            args = {"input": args}
        try:
            msg = tools[name].invoke({"type": "tool_call", "id": "call-1", "name": name, "args": args})
        except GroundgraphError as exc:  # raised, not returned as a message: typed, but counted apart
            tally.typed_errors += 1
            tally.error_types[f"raised {type(exc).__name__}"] = tally.error_types.get(
                f"raised {type(exc).__name__}", 0) + 1
            return
        except Exception as exc:  # noqa: BLE001 - what escapes is the crash we count
            tally.crash(f"{name} {args!r:.300}: {type(exc).__name__}: {str(exc)[:300]}")
            return
        classify(tally, setup, name, args, msg.status == "error", str(msg.content))

    case()
    tally.assert_clean()


class McpSession:
    """One in-process MCP client session on its own event loop thread, callable from synchronous code."""

    def __init__(self, server: Any) -> None:
        from mcp import Client

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.ready = threading.Event()
        self.client: Any = None

        async def hold() -> None:
            self.stop = asyncio.Event()
            async with Client(server) as client:
                self.client = client
                self.ready.set()
                await self.stop.wait()

        self.main = asyncio.run_coroutine_threadsafe(hold(), self.loop)
        if not self.ready.wait(60):
            raise RuntimeError(f"MCP session did not start: {self.main}")

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=120)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self.main.result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_mcp_tools_fuzz(setup: dict[str, Any]) -> None:
    session = McpSession(build_server(setup["host"]))
    tally = Tally("mcp tools")
    try:
        listed = {t.name for t in session.run(session.client.list_tools()).tools}
        assert setup["tools"] <= listed

        @FUZZ
        @given(call=tool_calls(setup))
        def case(call: tuple[str, Any]) -> None:
            name, args = call
            args = json.loads(json.dumps(args, default=repr))  # what a JSON-RPC client can send (bytes as text)
            try:
                result = session.run(session.client.call_tool(name, args if isinstance(args, dict) else {"a": args}))
            except Exception as exc:  # noqa: BLE001 - a protocol-level failure: the server did not answer
                tally.crash(f"{name} {args!r:.300}: {type(exc).__name__}: {str(exc)[:300]}")
                return
            text = "".join(getattr(c, "text", "") for c in result.content)
            classify(tally, setup, name, args, bool(result.is_error), text)

        case()
    finally:
        session.close()
    tally.assert_clean()
