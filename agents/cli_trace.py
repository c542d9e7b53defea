"""``groundgraph trace ...`` and ``groundgraph serve ...`` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from groundgraph.agents.cli_common import AsJson, ConfigFile, Profile, err, out, print_json

trace_app = typer.Typer(help="Inspect stored runs: list, show, html, fork.", no_args_is_help=True)
serve_app = typer.Typer(help="Serve the agents to chat assistants (MCP).", no_args_is_help=True)

Db = Annotated[Path | None, typer.Option("--db", help="trace store (default: trace.db of the settings)")]
RunId = Annotated[str, typer.Argument(help="a run id (see `groundgraph trace list`)")]


def _settings(profile: str | None, config: Path | None, db: Path | None) -> Any:
    from groundgraph.agents.settings import load_settings

    overrides: dict[str, Any] = {"trace": {"db": str(db)}} if db else {}
    return load_settings(profile, config, **overrides)


def _store(settings: Any) -> Any:
    from groundgraph.agents.runs import RunStore

    return RunStore(settings.trace.db)


def _fork_agent(graph: str, settings: Any, store: Any) -> Any:
    """The agent that continues a fork: the run's graph on these settings, over the same store."""
    from groundgraph.agents.agent import Agent
    from groundgraph.agents.registry import graph_spec

    return Agent(graph_spec(graph), settings, store=store)


@trace_app.command("list")
def trace_list(profile: Profile = None, config: ConfigFile = None, db: Db = None,
               limit: Annotated[int, typer.Option(help="how many runs, newest first")] = 20,
               graph: Annotated[str | None, typer.Option(help="only runs of this graph")] = None,
               as_json: AsJson = False) -> None:
    """Recent runs: graph, input summary, answer, rounds, status and time."""
    from groundgraph.agents.traces import runs_table

    records = _store(_settings(profile, config, db)).list(limit=limit, graph=graph)
    if as_json:
        print_json([r.model_dump(mode="json", exclude={"input", "output"}) for r in records])
    else:
        out.print(runs_table(records))


@trace_app.command("show")
def trace_show(run_id: RunId, profile: Profile = None, config: ConfigFile = None, db: Db = None,
               as_json: AsJson = False) -> None:
    """A run step by step: node, round, decision, scores against thresholds, tool calls and latency."""
    from groundgraph.agents.traces import load_run, text_view, view_json

    view = load_run(_store(_settings(profile, config, db)), run_id)
    if as_json:
        print_json(view_json(view))
    else:
        out.print(text_view(view))


@trace_app.command("html")
def trace_html(run_id: RunId, output: Annotated[Path, typer.Option("--output", "-o", help="the page to write")],
               profile: Profile = None, config: ConfigFile = None, db: Db = None) -> None:
    """Write one self-contained HTML page of a run (input image, a card per round, gate score bars)."""
    from groundgraph.agents.traces import load_run, render_html
    from groundgraph.tools.errors import InputError

    page = render_html(load_run(_store(_settings(profile, config, db)), run_id))
    try:
        output.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write {output}: {exc}") from None
    err.print(f"wrote {output} ({len(page.encode()) // 1024} KiB)")


@trace_app.command("fork")
def trace_fork(run_id: RunId,
               step: Annotated[int, typer.Option("--step", help="continue from the state after this step")],
               set_: Annotated[list[str] | None, typer.Option(
                   "--set", help="state change key=value (JSON values parsed), repeatable")] = None,
               profile: Profile = None, config: ConfigFile = None, db: Db = None, as_json: AsJson = False) -> None:
    """Continue a run from a past step with changed state; the fork is a new run with its parent's id."""
    from groundgraph.agents.agent import answer_text
    from groundgraph.agents.traces import parse_updates
    from groundgraph.tools.errors import InputError

    settings = _settings(profile, config, db)
    updates = parse_updates(set_ or [])
    store = _store(settings)
    record = store.get(run_id)
    if record is None:
        raise InputError(f"no run with id {run_id!r} in {store.path}; `groundgraph trace list` shows the runs")
    result = _fork_agent(record.graph, settings, store).fork(run_id, step, updates)
    data = result.model_dump(mode="json")
    if as_json:
        print_json(data)
    else:
        out.print(f"answer: {answer_text(data)}" + (f"  rounds: {data['rounds']}" if "rounds" in data else "")
                  + f"\nnew run {result.run_id} (fork of {run_id} at step {step})", soft_wrap=True)


@serve_app.command("mcp")
def serve_mcp(
    transport: Annotated[str, typer.Option(help="stdio, or http (streamable HTTP)")] = "stdio",
    host: Annotated[str, typer.Option(help="address to bind for http")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port for http")] = 8765,
    graph: Annotated[list[str] | None, typer.Option(help="serve only these graphs' tools")] = None,
    profile: Profile = None, config: ConfigFile = None,
) -> None:
    """Serve the chat tools (one per graph, plus get_trace) over MCP."""
    from groundgraph.agents.chat import ChatHost
    from groundgraph.agents.mcp_server import build_server, serve
    from groundgraph.tools.errors import InputError

    if transport not in ("stdio", "http"):
        raise InputError(f"--transport is stdio or http, not {transport!r}")
    kind: Literal["stdio", "http"] = "stdio" if transport == "stdio" else "http"
    server = build_server(ChatHost(profile=profile, config=str(config) if config else None), graph or None)
    if kind == "http":
        err.print(f"MCP over streamable HTTP at http://{host}:{port}/mcp")
    serve(server, kind, bind=host, port=port)
