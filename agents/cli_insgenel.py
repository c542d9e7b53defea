"""``groundgraph run insgenel`` and ``eval insgenel``.

Registered in ``agents/cli.py`` with ``cli_insgenel.register(run_app=..., eval_app=...)``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from groundgraph.agents.cli_common import AsJson, ConfigFile, Profile, err, out, print_json, progress_bar, run_file
from groundgraph.tools.errors import InputError

KbOpt = Annotated[Path | None, typer.Option(
    "--kb", help="entities JSONL of the knowledge base (default: kb_source of the config), e.g. "
    "../shared/data/kb/entities.jsonl")]
LlmOpt = Annotated[bool, typer.Option("--llm/--no-llm", help="score ambiguous spans with the profile's LLM "
                                      "(--no-llm: the fitted features alone)")]


def _insgenel_agent(profile: str | None, config: Path | None, kb: Path | None, use_llm: bool,
                    trace: bool | None = None) -> Any:
    from groundgraph.agents.agent import load_agent

    overrides: dict[str, Any] = {}
    if kb is not None:
        if not kb.is_file():
            raise InputError(f"knowledge-base file not found: {kb}")
        overrides["kb_source"] = str(kb)
    if not use_llm:
        overrides["graphs"] = {"insgenel": {"use_llm": False}}
    return load_agent("insgenel", profile, config=str(config) if config else None, trace=trace, **overrides)


def run_insgenel(
    text: Annotated[str | None, typer.Option(help="the document to link")] = None,
    kb: KbOpt = None,
    use_llm: LlmOpt = True,
    input: Annotated[Path | None, typer.Option("--input", help="JSONL of documents {text, id?}")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="JSONL of answers (resumable; default: "
                                                                  "INPUT.insgenel.jsonl)")] = None,
    profile: Profile = None, config: ConfigFile = None, as_json: AsJson = False,
) -> None:
    """Link the entity mentions of one document (--text) or of every document of a JSONL file (--input)."""
    agent = _insgenel_agent(profile, config, kb, use_llm)
    if input or output:
        if not input:
            raise InputError("--output needs --input")
        run_file(agent, input, output or input.with_suffix(".insgenel.jsonl"))
        return
    if text is None:
        raise InputError("give --text (or --input)")
    result = agent.invoke({"text": text})
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    table = Table("start", "end", "mention", "entity", "name", "score", "by",
                  title=f"{len(result.spans)} links; {result.llm_calls} LLM calls (naive: {result.naive_calls})")
    for s in result.spans:
        # Text(): document words such as "[/]" are not rich markup
        table.add_row(str(s.start), str(s.end), Text(s.mention), Text(s.entity_id), Text(s.entity_name),
                      f"{s.score:.3f}", s.method)
    out.print(table)
    out.print(f"run {result.run_id}", style="dim", markup=False, highlight=False)


def eval_insgenel(
    data: Annotated[Path, typer.Option(help="ELEVANT EL JSONL with gold labels, e.g. "
                                            "../shared/data/el/kore50.benchmark.jsonl")],
    kb: KbOpt = None,
    use_llm: LlmOpt = True,
    report: Annotated[Path, typer.Option(help="where to write the JSON report")] = Path("reports/insgenel.json"),
    limit: Annotated[int | None, typer.Option(help="only the first N documents")] = None,
    trace: Annotated[bool, typer.Option(help="keep every run in the trace store")] = False,
    profile: Profile = None, config: ConfigFile = None,
) -> None:
    """InKB micro P/R/F1 over (span, entity) pairs, retriever recall, LLM calls vs naive, documents/s."""
    from groundgraph.agents.evaluation import insgenel
    from groundgraph.agents.evaluation.common import write_report

    if not data.is_file():
        raise InputError(f"no such file: {data}")
    agent = _insgenel_agent(profile, config, kb, use_llm, trace=trace)
    records = insgenel.load_el(data, limit)
    err.print(f"linking {len(records)} documents of {data.name} ({'with' if use_llm else 'without'} the LLM)")
    result = insgenel.report(agent, records, str(data), progress=progress_bar("insgenel", unit="doc"))
    result["command"] = " ".join(["groundgraph", *sys.argv[1:]])
    write_report(result, report)
    r = result
    table = Table("P", "R", "F1", f"retriever recall (K={agent.config.k})", "LLM calls", "naive calls", "docs/s",
                  "errors", title=f"insgenel on {data.name} ({r['documents']} documents, LLM: {r['llm'] or 'off'})")
    table.add_row(f"{r['precision']:.4f}", f"{r['recall']:.4f}", f"{r['f1']:.4f}", str(r["retriever_recall"]),
                  str(r["llm_calls"]), str(r["naive_calls"]), str(r["docs_per_s"]), str(r["errors"]))
    out.print(table)
    out.print(f"report: {report}")


def register(*, run_app: Any, eval_app: Any) -> None:
    """Add the insgenel commands to the main CLI's sub-apps."""
    run_app.command("insgenel")(run_insgenel)
    eval_app.command("insgenel")(eval_insgenel)
