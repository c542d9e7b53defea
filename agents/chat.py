"""The agents as tools for chat assistants: one tool per graph, plus ``get_trace``.

A ``ChatTool`` is the one description of a tool that every face shares: LangChain
(``langchain_tools``), MCP (``groundgraph.agents.mcp_server``). It names a pydantic arguments model
(field descriptions become the schema the chat model sees), how to turn those arguments into the
graph's input, and how to say the answer concisely (with the run id, never the whole state).

Graph tools are registered by graph name (``register_chat_tool``); ``link_entity`` (i2cr) is the
first. Proposal: a later ``GraphSpec`` field ``chat: ChatTool | None`` lets each graph plugin bring
its own (``extract_relation`` for roc, ``link_document`` for insgenel, ``enrich_caption`` for
enriched_caption), and this registry then only collects them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from groundgraph.agents.paths import resolve_image_path
from groundgraph.agents.settings import Settings, load_settings
from groundgraph.tools.errors import ConfigError, GroundgraphError, InputError, ToolError

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from groundgraph.agents.agent import Agent
    from groundgraph.agents.runs import RunStore

log = logging.getLogger(__name__)


# --- arguments ---------------------------------------------------------------------------------------
class CandidateArg(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="the entity's id in the knowledge base (e.g. a Wikidata QID)")
    name: str = Field(min_length=1, description="the entity's name")
    description: str = Field("", description="a short description of the entity")


class LinkEntityArgs(BaseModel):
    """Arguments of ``link_entity`` (graph i2cr)."""

    model_config = ConfigDict(extra="forbid")

    # lengths are checked by the graph's input model: a maxLength in the schema would make grammar-constrained
    # tool calling (llama.cpp) build a huge grammar
    mention: str = Field(min_length=1, description="the name or phrase to link, as written")
    context: str = Field("", description="the sentence or caption around the mention")
    image_path: str | None = Field(
        None, description="path of the mention's image, inside the server's allowed image roots "
                          "(relative paths are looked up in those roots); omit when there is no image")
    candidates: list[CandidateArg] | None = Field(
        None, description="entities to choose from; omit to retrieve candidates from the knowledge base")
    visual_cues: dict[str, str] = Field(
        default_factory=dict, description="texts already known about the image, by kind: ocr, caption, "
                                          "dense_captions, tags")


class EnrichCaptionArgs(BaseModel):
    """Arguments of ``enrich_caption`` (graph enriched_caption)."""

    model_config = ConfigDict(extra="forbid")

    image_path: str = Field(min_length=1, description="path of the news photograph, inside the server's allowed "
                                                        "image roots (relative paths are looked up in those roots)")


class ExtractRelationArgs(BaseModel):
    """Arguments of ``extract_relation`` (graph roc)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, description="the sentence (or short post) that mentions both entities")
    head: str = Field(min_length=1, description="the first entity, copied exactly as it appears in the text")
    tail: str = Field(min_length=1, description="the second entity, copied exactly as it appears in the text")
    head_offset: int | None = Field(
        None, ge=0, description="character offset where the head starts in the text; only needed when the head "
                                "occurs more than once (default: its first occurrence)")
    tail_offset: int | None = Field(
        None, ge=0, description="character offset where the tail starts; only needed when it occurs more than once")
    image_path: str | None = Field(
        None, description="path of the post's image, inside the server's allowed image roots (relative paths are "
                          "looked up in those roots); omit when there is no image")


class LinkDocumentArgs(BaseModel):
    """Arguments of ``link_document`` (graph insgenel)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=200_000,
                      description="the document (a paragraph to a long article) whose entity mentions to link")
    max_links: int = Field(50, ge=1, le=500, description="at most this many links in the answer (the run keeps all)")


class GetTraceArgs(BaseModel):
    """Arguments of ``get_trace``."""

    model_config = ConfigDict(extra="forbid")

    run_id: str = Field(min_length=1, description="the run id a groundgraph tool returned")
    max_events: int = Field(30, ge=1, le=500, description="at most this many trace events, the last ones")


# --- the tool description shared by every face -------------------------------------------------------
@dataclass(frozen=True)
class ChatTool:
    """A chat tool: name, description, arguments model, and what it does on a ``ChatHost``."""

    name: str
    description: str
    args_model: type[BaseModel]
    #: (host, validated arguments) -> a small JSON-native answer
    run: Callable[[ChatHost, Any], dict[str, Any]]
    #: the graph it runs, None for tools over stored runs
    graph: str | None = None


def _run_link_entity(host: ChatHost, args: LinkEntityArgs) -> dict[str, Any]:
    image = str(resolve_image_path(args.image_path, host.settings.allowed_image_roots)) if args.image_path else None
    record = {"mention": args.mention, "context": args.context, "image": image,
              "candidates": [c.model_dump() for c in args.candidates] if args.candidates else None,
              "visual_cues": args.visual_cues}
    from groundgraph.agents.agent import answer_text

    out = host.agent("i2cr").invoke(record).model_dump(mode="json")
    entity = out.get("entity")
    return {"answer": answer_text(out) if entity else "no entity could be linked",
            "entity": None if entity is None else {**entity, "description": (entity.get("description") or "")[:300]},
            "accepted_by": out.get("accepted_by"), "rounds": out.get("rounds"), "cues_used": out.get("cues_used"),
            "run_id": out["run_id"]}


def _run_enrich_caption(host: ChatHost, args: EnrichCaptionArgs) -> dict[str, Any]:
    image = str(resolve_image_path(args.image_path, host.settings.allowed_image_roots))
    out = host.agent("enriched_caption").invoke({"image": image}).model_dump(mode="json")
    keep = ("caption", "matched", "match_by", "article", "facts", "image_id", "fusion", "run_id")
    return {k: out.get(k) for k in keep}


def _run_extract_relation(host: ChatHost, args: ExtractRelationArgs) -> dict[str, Any]:
    def entity(name: str, offset: int | None, role: str) -> dict[str, Any]:
        if offset is None:
            return {"name": name}
        if args.text[offset:offset + len(name)] != name:
            raise InputError(f"{role} {name!r} is not at character {offset} of the text")
        return {"name": name, "pos": [offset, offset + len(name)]}

    image = str(resolve_image_path(args.image_path, host.settings.allowed_image_roots)) if args.image_path else None
    record = {"text": args.text, "head": entity(args.head, args.head_offset, "head"),
              "tail": entity(args.tail, args.tail_offset, "tail"), "image": image}
    out = host.agent("roc").invoke(record).model_dump(mode="json")
    return {"relation": out["relation"], "score": round(out["score"], 4), "decided_by": out["decided_by"],
            "top_3": [{"relation": t["relation"], "score": round(t["score"], 4)} for t in out["top_k"][:3]],
            "image_used": out["image_used"], "run_id": out["run_id"]}


def _run_link_document(host: ChatHost, args: LinkDocumentArgs) -> dict[str, Any]:
    out = host.agent("insgenel").invoke({"text": args.text}).model_dump(mode="json")
    keep = ("start", "end", "mention", "entity_id", "entity_name", "score")
    links = [{k: (round(s[k], 4) if k == "score" else s[k]) for k in keep} for s in out["spans"]]
    return {"links": links[:args.max_links], "total_links": len(links), "llm_calls": out["llm_calls"],
            "run_id": out["run_id"]}


def _run_get_trace(host: ChatHost, args: GetTraceArgs) -> dict[str, Any]:
    from groundgraph.agents.traces import load_run, score_text, scores_of

    view = load_run(host.store(), args.run_id)
    r = view.record
    events = view.events[-args.max_events:]
    return {
        "run_id": view.run_id, "graph": view.graph, "status": r.status if r else "unknown",
        "input": r.input_summary if r else None, "answer": (r.answer or r.error) if r else None,
        "rounds": r.rounds if r else None, "parent_run_id": r.parent_run_id if r else None,
        "events_total": len(view.events),
        "events": [{"node": e.node, "round": e.round, "decision": e.decision, "why": e.why,
                    **({"scores": "; ".join(score_text(s) for s in scores_of(e))} if e.scores else {})}
                   for e in events],
    }


LINK_ENTITY = ChatTool(
    name="link_entity",
    description=("Link a mention (a name in a sentence or image caption, optionally with its image) to one "
                 "knowledge-base entity with the I2CR agent. Returns the entity, how it was accepted, and a "
                 "run_id to pass to get_trace."),
    args_model=LinkEntityArgs, run=_run_link_entity, graph="i2cr")

ENRICH_CAPTION = ChatTool(
    name="enrich_caption",
    description=("Caption a news photograph with who, what, when, where and why, from the news article whose "
                 "photo matches it (image retrieval + geometric verification). Returns the caption, the matched "
                 "article (or says there was no match) and a run_id to pass to get_trace."),
    args_model=EnrichCaptionArgs, run=_run_enrich_caption, graph="enriched_caption")

EXTRACT_RELATION = ChatTool(
    name="extract_relation",
    description=("Find the relation between two entities mentioned in a sentence or social media post (optionally "
                 "with its image) with the ROC agent: retrieval over relation descriptions (MNRE relations such as "
                 "/per/org/member_of, or 'None'). Returns the relation, its score, the top 3 relations and a run_id "
                 "to pass to get_trace."),
    args_model=ExtractRelationArgs, run=_run_extract_relation, graph="roc")

LINK_DOCUMENT = ChatTool(
    name="link_document",
    description=("Find the named entities of a document and link each to the knowledge base with the INSGENEL "
                 "agent (alias matching, decision spans, constrained choice). Returns the links (character "
                 "offsets, mention, entity id and name, score) and a run_id to pass to get_trace."),
    args_model=LinkDocumentArgs, run=_run_link_document, graph="insgenel")

GET_TRACE = ChatTool(
    name="get_trace",
    description=("Explain a groundgraph run: its input, answer, and the steps the agent took (decisions, "
                 "gate scores against thresholds). Give the run_id a groundgraph tool returned."),
    args_model=GetTraceArgs, run=_run_get_trace)

#: graph tools by graph name; a new graph adds its own with ``register_chat_tool``
GRAPH_TOOLS: dict[str, ChatTool] = {"i2cr": LINK_ENTITY, "enriched_caption": ENRICH_CAPTION,
                                     "roc": EXTRACT_RELATION, "insgenel": LINK_DOCUMENT}
#: tools over stored runs, offered whatever graphs are served
RUN_TOOLS: tuple[ChatTool, ...] = (GET_TRACE,)


def register_chat_tool(tool: ChatTool) -> None:
    """Offer ``tool`` for its graph (one tool per graph; a later registration replaces an earlier one)."""
    if tool.graph is None:
        raise ConfigError(f"chat tool {tool.name!r} names no graph")
    GRAPH_TOOLS[tool.graph] = tool


def chat_tools(graphs: list[str] | None = None) -> list[ChatTool]:
    """The tools for ``graphs`` (default: every graph that has one) followed by the run tools."""
    names = list(GRAPH_TOOLS) if graphs is None else graphs
    missing = [g for g in names if g not in GRAPH_TOOLS]
    if missing:
        raise ConfigError(f"no chat tool for graph(s) {missing}; tools exist for {sorted(GRAPH_TOOLS)}")
    return [GRAPH_TOOLS[g] for g in names] + list(RUN_TOOLS)


# --- the host: agents, settings, and the one call path every face uses ---------------------------------
class ChatHost:
    """Builds each graph's Agent once (lazily) and runs chat tools against it.

    ``agents`` injects ready agents (tests, or a host that built them itself); otherwise they are
    loaded from ``settings`` (default: ``load_settings(profile, config)``).
    """

    def __init__(self, settings: Settings | None = None, *, agents: Mapping[str, Agent] | None = None,
                 profile: str | None = None, config: str | None = None) -> None:
        self.settings = settings or load_settings(profile, config)
        self._agents: dict[str, Agent] = dict(agents or {})
        self._store: RunStore | None = None
        self._lock = threading.Lock()

    def agent(self, graph: str) -> Agent:
        with self._lock:
            if graph not in self._agents:
                from groundgraph.agents.agent import Agent
                from groundgraph.agents.registry import graph_spec

                self._agents[graph] = Agent(graph_spec(graph), self.settings, trace=True)
            return self._agents[graph]

    def store(self) -> RunStore:
        with self._lock:
            for agent in self._agents.values():
                if agent.store is not None:
                    return agent.store
            if self._store is None:
                from groundgraph.agents.runs import RunStore

                self._store = RunStore(self.settings.trace.db)
            return self._store

    def call(self, tool: ChatTool, arguments: Mapping[str, Any] | BaseModel) -> str:
        """Validate, run, and answer as compact JSON. Every failure is a GroundgraphError whose message is
        meant for the chat client; an unexpected exception is logged here and reported without internals."""
        try:
            args = tool.args_model.model_validate(
                arguments.model_dump() if isinstance(arguments, BaseModel) else dict(arguments))
        except ValidationError as exc:
            from groundgraph.agents.agent import validation_message

            raise InputError(f"invalid {tool.name} arguments: {validation_message(exc)}") from None
        try:
            answer = tool.run(self, args)
        except GroundgraphError:
            raise
        except Exception as exc:
            log.exception("chat tool %s failed", tool.name)
            raise ToolError(f"{tool.name} failed unexpectedly ({type(exc).__name__}); the server log has "
                            "the details") from None
        return json.dumps(answer, ensure_ascii=False, default=str)


def error_message(exc: GroundgraphError) -> str:
    """What a chat client sees for a failed call: the error type and its message, never a stack trace."""
    return f"{type(exc).__name__}: {exc}"


# --- LangChain face --------------------------------------------------------------------------------
def langchain_tool(host: ChatHost, tool: ChatTool) -> BaseTool:
    """``tool`` as a LangChain StructuredTool; errors come back to the model as the tool's message."""
    from langchain_core.tools import StructuredTool, ToolException

    def call(**kwargs: Any) -> str:
        try:
            return host.call(tool, kwargs)
        except GroundgraphError as exc:
            raise ToolException(error_message(exc)) from None

    return StructuredTool.from_function(
        func=call, name=tool.name, description=tool.description, args_schema=tool.args_model,
        handle_tool_error=True,
        handle_validation_error=lambda exc: f"InputError: invalid {tool.name} arguments: {exc}")


def langchain_tools(host: ChatHost | None = None, graphs: list[str] | None = None) -> list[BaseTool]:
    """LangChain tools for ``graphs`` (default: all with a chat tool) and ``get_trace``."""
    host = host or ChatHost()
    return [langchain_tool(host, t) for t in chat_tools(graphs)]


def guided_tool_middleware(tool_name: str) -> Any:
    """``create_agent`` middleware for small local chat models (e.g. SmolLM2 on llama-cpp-python's server).

    The first model call must call ``tool_name`` (a named ``tool_choice``: llama.cpp then constrains the
    arguments by a grammar built from the schema), and calls after a tool result get no tools, so the
    model answers in text. An assistant tool-call message with empty content is sent with content " ",
    because llama-cpp-python's server rejects the null content OpenAI clients send there.
    """
    from langchain.agents.middleware import wrap_model_call
    from langchain_core.messages import AIMessage, ToolMessage

    @wrap_model_call  # type: ignore[arg-type]
    def guide(request: Any, handler: Any) -> Any:
        messages = [m.model_copy(update={"content": " "}) if isinstance(m, AIMessage) and m.tool_calls
                    and not m.content else m for m in request.messages]
        if any(isinstance(m, ToolMessage) for m in messages):
            return handler(request.override(messages=messages, tools=[]))
        return handler(request.override(messages=messages, tool_choice=tool_name))

    return guide
