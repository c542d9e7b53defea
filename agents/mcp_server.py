"""The chat tools over MCP (``mcp`` 2.x ``MCPServer``): stdio, or streamable HTTP on loopback.

    groundgraph serve mcp                         # stdio, for a desktop assistant
    groundgraph serve mcp --transport http        # http://127.0.0.1:8765/mcp

mcp 2.x is chosen deliberately (``langchain-mcp-adapters`` still pins ``mcp<2``, so it is not used).
The tools are the ``ChatTool``s of ``groundgraph.agents.chat``: the same arguments models, the same
answers, the same error messages (a failed call returns ``is_error`` with the message, no trace).
"""

from __future__ import annotations

import inspect
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError as MCPToolError

from groundgraph.agents.chat import ChatHost, ChatTool, chat_tools, error_message
from groundgraph.tools.errors import GroundgraphError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
INSTRUCTIONS = ("groundgraph links mentions in text and images to knowledge-base entities with LangGraph "
                "agents. Each answer carries a run_id; get_trace explains how the agent reached it.")


def _signature(tool: ChatTool) -> inspect.Signature:
    """Keyword parameters mirroring the tool's arguments model, so MCP publishes the same schema
    (types, defaults, constraints and field descriptions)."""
    params = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[field.annotation, field])
              for name, field in tool.args_model.model_fields.items()]
    return inspect.Signature(params, return_annotation=str)


def _mcp_function(host: ChatHost, tool: ChatTool) -> Any:
    def call(**kwargs: Any) -> str:  # sync: MCPServer runs it on a worker thread
        try:
            return host.call(tool, kwargs)
        except GroundgraphError as exc:
            raise MCPToolError(error_message(exc)) from None

    call.__name__ = tool.name
    call.__doc__ = tool.description
    call.__signature__ = _signature(tool)  # type: ignore[attr-defined]
    return call


def _version() -> str:
    try:
        return version("groundgraph")
    except PackageNotFoundError:
        return "0"


def build_server(host: ChatHost | None = None, graphs: list[str] | None = None) -> MCPServer:
    """An MCP server offering the chat tools of ``graphs`` (default: all) and ``get_trace``."""
    host = host or ChatHost()
    server: MCPServer = MCPServer("groundgraph", instructions=INSTRUCTIONS, version=_version(), log_level="WARNING")
    for tool in chat_tools(graphs):
        server.add_tool(_mcp_function(host, tool), name=tool.name, description=tool.description,
                        structured_output=False)
    return server


def serve(server: MCPServer, transport: Literal["stdio", "http"] = "stdio", *, bind: str = DEFAULT_HOST,
          port: int = DEFAULT_PORT) -> None:
    """Run until interrupted. HTTP binds loopback unless ``bind`` says otherwise."""
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run("streamable-http", host=bind, port=port)
