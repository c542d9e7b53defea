"""The ``groundgraph`` command line. Every command takes --profile and --config."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from groundgraph.agents.cli_trace import serve_app, trace_app
from groundgraph.tools.errors import GroundgraphError, InputError

app = typer.Typer(help="Ground text and images in knowledge with LangGraph agents.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
tools_app = typer.Typer(help="Inspect and check tools.", no_args_is_help=True)
kb_app = typer.Typer(help="Build knowledge bases.", no_args_is_help=True)
config_app = typer.Typer(help="Show the effective configuration.", no_args_is_help=True)
run_app = typer.Typer(help="Run a graph on one input or a JSONL file.", no_args_is_help=True)
eval_app = typer.Typer(help="Evaluate a graph on a benchmark file.", no_args_is_help=True)
calibrate_app = typer.Typer(help="Fit a graph's thresholds on a dev file.", no_args_is_help=True)
app.add_typer(tools_app, name="tools")
app.add_typer(kb_app, name="kb")
app.add_typer(config_app, name="config")
app.add_typer(run_app, name="run")
app.add_typer(eval_app, name="eval")
app.add_typer(calibrate_app, name="calibrate")
app.add_typer(trace_app, name="trace")
app.add_typer(serve_app, name="serve")

out = Console()
err = Console(stderr=True)

Profile = Annotated[str | None, typer.Option("--profile", "-p", help="cpu (default) or gpu")]
ConfigFile = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON instead of tables")]


def _settings(profile: str | None, config: Path | None, **overrides: Any) -> Any:
    from groundgraph.agents.settings import load_settings

    return load_settings(profile, config, **overrides)


def _print_json(data: Any) -> None:
    out.print_json(json.dumps(data, ensure_ascii=False, default=str))


# --- tools ------------------------------------------------------------------------------------
@tools_app.command("list")
def tools_list(profile: Profile = None, config: ConfigFile = None) -> None:
    """Registered tool backends, and which ones the profile uses."""
    from groundgraph.tools.registry import available_tools

    settings = _settings(profile, config)
    used = {f"{role}.{cfg.get('backend')}": role for role, cfg in settings.tools.items()}
    table = Table("tool", "used by the profile as")
    for name in available_tools():
        table.add_row(name, used.get(name, ""))
    out.print(table)


@tools_app.command("check")
def tools_check(profile: Profile = None, config: ConfigFile = None,
                role: Annotated[list[str] | None, typer.Option(help="only these roles")] = None,
                as_json: AsJson = False) -> None:
    """Load each tool of the profile, run it on a shipped sample, print result, latency, memory."""
    from groundgraph.agents.checks import check_tools, data_path
    from groundgraph.agents.toolbox import Toolbox

    settings = _settings(profile, config)
    toolbox = Toolbox(settings.tools, kb_source=str(settings.kb_source or data_path("demo_kb.jsonl")))
    checks = check_tools(toolbox, role)
    if as_json:
        _print_json([c.model_dump() for c in checks])
    else:
        table = Table("role", "tool", "device", "ok", "load s", "call ms", "peak RSS MB", "result / error",
                      title=f"tools of the {settings.profile} profile")
        for c in checks:
            table.add_row(c.role, c.tool, c.device, "yes" if c.ok else "NO", str(c.load_s or ""),
                          str(c.call_ms or ""), str(c.peak_rss_mb or ""), c.result if c.ok else str(c.error))
        out.print(table)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


# --- kb -----------------------------------------------------------------------------------------
@kb_app.command("build")
def kb_build(source: Annotated[Path, typer.Argument(help="entities JSONL")], profile: Profile = None,
             config: ConfigFile = None, force: bool = False) -> None:
    """Build the knowledge base (SQLite + fuzzy names + FAISS vectors) once; later loads reuse it."""
    from tqdm import tqdm

    from groundgraph.agents.toolbox import Toolbox

    settings = _settings(profile, config)
    kb = Toolbox(settings.tools, kb_source=str(source))["kb"]
    bar = tqdm(total=0, unit="entity", desc="embedding", disable=None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    directory = kb.build(source, force=force, progress=progress)
    bar.close()
    info = json.loads((directory / "done.json").read_text())
    out.print(f"knowledge base: {info['entities']} entities in {directory}"
              + (f" ({info['bad_line_count']} bad lines skipped)" if info["bad_line_count"] else ""))


# --- config -------------------------------------------------------------------------------------
@config_app.command("show")
def config_show(profile: Profile = None, config: ConfigFile = None) -> None:
    """Print the effective configuration (profile + file + environment)."""
    _print_json(_settings(profile, config).model_dump(mode="json"))


# --- run ----------------------------------------------------------------------------------------
def _run_file(agent: Any, input_path: Path, output_path: Path) -> None:
    from tqdm import tqdm

    from groundgraph.agents.jsonl import run_jsonl

    bar = tqdm(total=0, unit="record", desc=agent.name, disable=None)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    counts = run_jsonl(input_path, output_path, lambda r: agent.invoke(r).model_dump(mode="json"),
                       progress=progress)
    bar.close()
    err.print(f"{counts['done']} done, {counts['skipped']} already finished, {counts['errors']} errors"
              + (f" (see {output_path}.errors.jsonl)" if counts["errors"] else ""))


@run_app.command("i2cr")
def run_i2cr(
    mention: Annotated[str | None, typer.Option(help="the mention")] = None,
    context: Annotated[str, typer.Option(help="text around the mention")] = "",
    image: Annotated[Path | None, typer.Option(help="the mention's image")] = None,
    candidates: Annotated[Path | None, typer.Option(help="JSON file: a list of {id, name, description}")] = None,
    input: Annotated[Path | None, typer.Option("--input", help="JSONL of records")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="JSONL of answers (resumable)")] = None,
    profile: Profile = None, config: ConfigFile = None, as_json: AsJson = False,
) -> None:
    """Link one mention (--mention ...) or a JSONL file of records (--input/--output)."""
    from groundgraph.agents.agent import load_agent

    agent = load_agent("i2cr", profile, config=str(config) if config else None)
    if input or output:
        if not (input and output):
            raise InputError("--input and --output go together")
        _run_file(agent, input, output)
        return
    if not mention:
        raise InputError("give --mention (or --input and --output)")
    record: dict[str, Any] = {"mention": mention, "context": context, "image": str(image) if image else None}
    if candidates:
        try:
            record["candidates"] = json.loads(candidates.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"cannot read candidates from {candidates}: {exc}") from None
    result = agent.invoke(record)
    if as_json:
        _print_json(result.model_dump(mode="json"))
    else:
        e = result.entity
        out.print(f"{e.name if e else None} [{e.id if e else '-'}]  accepted by {result.accepted_by}, "
                  f"{result.rounds} round(s), run {result.run_id}")


@app.command("demo")
def demo(profile: Profile = None, config: ConfigFile = None) -> None:
    """Run i2cr on a few real records shipped with groundgraph and print each answer."""
    from groundgraph.agents.agent import load_agent
    from groundgraph.agents.checks import data_path
    from groundgraph.agents.jsonl import read_records

    agent = load_agent("i2cr", profile, config=str(config) if config else None)
    right = 0
    for _, record, _ in read_records(data_path("demo_mel.jsonl")):
        result = agent.invoke(record)
        ok = result.entity is not None and result.entity.id == record["gold"]["id"]
        right += ok
        out.print(f"[bold]{record['mention']}[/] in {record['context'][:70]!r}\n"
                  f"  -> {result.entity.name if result.entity else None} "
                  f"({'correct' if ok else 'gold: ' + record['gold']['name']}), accepted by {result.accepted_by} "
                  f"after {result.rounds} round(s), cues {result.cues_used or 'none'}, run {result.run_id}")
    out.print(f"{right} correct; inspect a run with `groundgraph trace show RUN_ID`")


def main() -> None:
    """Console entry point: user errors print one clear line and exit 2."""
    try:
        app()
    except GroundgraphError as exc:
        err.print(f"[red]error:[/] {type(exc).__name__}: {exc}")
        sys.exit(2)


if __name__ == "__main__":
    main()
