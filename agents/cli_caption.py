"""``groundgraph corpus build``, ``groundgraph run enriched_caption`` and ``groundgraph eval enriched_caption``.

Registered in ``agents/cli.py``::

    app.add_typer(corpus_app, name="corpus")
    run_app.command("enriched_caption")(run_enriched_caption)
    eval_app.command("enriched_caption")(eval_enriched_caption)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from groundgraph.agents.cli_common import ConfigFile, Profile, err, out, progress_bar
from groundgraph.tools.errors import InputError

corpus_app = typer.Typer(help="Build article corpora (images + article text) for enriched_caption.",
                         no_args_is_help=True)

CorpusOpt = Annotated[Path | None, typer.Option(
    "--corpus", help="article corpus: a JSONL file or a directory with articles.jsonl (default: the profile's, "
    "the shipped news corpus)")]
SHIPPED = "package:groundgraph.agents/data/news"


def _corpus_override(corpus: Path | str | None) -> dict[str, Any]:
    return {"tools": {"corpus": {"backend": "faiss", "source": str(corpus)}}} if corpus else {}


@corpus_app.command("build")
def corpus_build(
    source: Annotated[Path, typer.Argument(help="articles JSONL, or a directory holding articles.jsonl")],
    force: Annotated[bool, typer.Option(help="rebuild even if a cached index exists")] = False,
    profile: Profile = None, config: ConfigFile = None,
) -> None:
    """Encode every article image once and save the FAISS index with JSON metadata; later runs reuse it."""
    from groundgraph.agents.settings import load_settings
    from groundgraph.agents.toolbox import Toolbox

    settings = load_settings(profile, config, **_corpus_override(source))
    corpus = Toolbox(settings.tools)["corpus"]
    directory = corpus.build(source, force=force, progress=progress_bar("encoding images", "image"))
    info = json.loads((directory / "done.json").read_text())
    out.print(f"article corpus: {info['articles']} articles, {info['images']} images in {directory} "
              f"(image features {info['space']})")
    if info["error_count"]:
        err.print(f"{info['error_count']} problems skipped, e.g. {info['errors'][:3]}")


def run_enriched_caption(
    image: Annotated[Path | None, typer.Option(help="the image to caption")] = None,
    corpus: CorpusOpt = None,
    input: Annotated[Path | None, typer.Option("--input", help="JSONL of {id, image} records")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="JSONL of answers (resumable)")] = None,
    profile: Profile = None, config: ConfigFile = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of text")] = False,
) -> None:
    """Caption one image (--image) or a JSONL file of records (--input/--output) from matching news articles."""
    from groundgraph.agents.agent import load_agent

    agent = load_agent("enriched_caption", profile, config=str(config) if config else None,
                       **_corpus_override(corpus))
    if input or output:
        if not (input and output):
            raise InputError("--input and --output go together")
        from groundgraph.agents.jsonl import run_jsonl

        counts = run_jsonl(input, output, lambda r: agent.invoke(r).model_dump(mode="json"),
                           progress=progress_bar("enriched_caption"))
        err.print(f"{counts['done']} done, {counts['skipped']} already finished, {counts['errors']} errors"
                  + (f" (see {output}.errors.jsonl)" if counts["errors"] else ""))
        return
    if image is None:
        raise InputError("give --image (or --input and --output)")
    result = agent.invoke({"image": str(image)})
    if as_json:
        out.print_json(json.dumps(result.model_dump(mode="json"), ensure_ascii=False))
        return
    out.print(result.caption)
    if result.article:
        a = result.article
        out.print(f"[dim]article {a.id} ({a.date}, {a.place}): {a.title}; matched by {result.match_by}, "
                  f"fusion {result.fusion}, base caption from {result.visual_source}; run {result.run_id}[/]")
    else:
        out.print(f"[dim]no matching article in the corpus; caption from {result.visual_source}; "
                  f"run {result.run_id}[/]")


def eval_enriched_caption(
    corpus: CorpusOpt = None,
    queries: Annotated[Path | None, typer.Option(
        help="query JSONL (default: the shipped crops/rescales/re-compressions of the shipped corpus)")] = None,
    report: Annotated[Path, typer.Option(help="where to write the JSON report")] = Path(
        "reports/enriched_caption.json"),
    fusion: Annotated[list[str] | None, typer.Option(
        help="fusion variants to score (template, template:event_visual, llm, llm_unguarded, ...)")] = None,
    limit: Annotated[int | None, typer.Option(help="only the first N queries")] = None,
    render_dir: Annotated[Path | None, typer.Option(help="where query images are rendered (default: cache)")] = None,
    trace: Annotated[bool, typer.Option(help="keep every run in the trace store")] = False,
    profile: Profile = None, config: ConfigFile = None,
) -> None:
    """Retrieval AP / R@1 / R@10, match decisions, CIDEr per fusion variant, CLIPScore (with CLIP), latency."""
    from groundgraph.agents.agent import load_agent
    from groundgraph.agents.evaluation import enriched_caption as ec
    from groundgraph.agents.evaluation.common import write_report
    from groundgraph.tools.article_corpus import resolve_file

    if queries is None:
        if corpus is not None:
            raise InputError("--corpus needs --queries: the shipped queries belong to the shipped corpus")
        queries = resolve_file(f"{SHIPPED}/queries.jsonl", Path.cwd())
    agent = load_agent("enriched_caption", profile, config=str(config) if config else None, trace=trace,
                       **_corpus_override(corpus))
    rows, skipped = ec.load_queries(queries, render_dir, limit)
    if skipped:
        err.print(f"{len(skipped)} queries skipped (source unavailable), e.g. {skipped[0]}")
    result = ec.report(agent, rows, corpus=str(corpus or agent.toolbox.configs.get("corpus", {}).get("source")),
                       queries_path=str(queries), fusions=fusion or ["template"], skipped=skipped,
                       progress=progress_bar("enriched_caption"))
    result["command"] = " ".join(["groundgraph", *sys.argv[1:]])
    write_report(result, report)
    r, m = result["retrieval"], result["matching"]
    table = Table("metric", "value", title=f"enriched_caption on {len(rows)} queries ({queries.name})")
    for key in ("AP", "R@1", "R@10", "R@1_before_verify"):
        table.add_row(key, str(r.get(key)))
    for key in ("matched_right", "matched_wrong", "said_no_match", "no_match_said_so"):
        table.add_row(key, str(m.get(key)))
    for name, c in result["captions"].items():
        table.add_row(f"CIDEr ({name})", str(c["CIDEr"]))
    table.add_row("CLIPScore", str(result["clip_score"].get("CLIPScore")))
    table.add_row("latency median / p95 ms", f"{result['latency']['median_ms']} / {result['latency']['p95_ms']}")
    out.print(table)
    out.print(f"report: {report}")
