"""``groundgraph trace ...`` and ``groundgraph serve ...`` commands."""

from __future__ import annotations

import typer

trace_app = typer.Typer(help="Inspect stored runs: list, show, html, fork.", no_args_is_help=True)
serve_app = typer.Typer(help="Serve the agents to chat assistants (MCP).", no_args_is_help=True)
