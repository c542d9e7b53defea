"""The ``groundgraph`` command line. Every command takes --profile and --config."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from groundgraph.agents import cli_i2cr_train, cli_insgenel, cli_roc
from groundgraph.agents.cli_caption import corpus_app, eval_enriched_caption, run_enriched_caption
from groundgraph.agents.cli_common import AsJson, ConfigFile, Profile, err, out, print_json, progress_bar, run_file
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
train_app = typer.Typer(help="Train models: the i2cr LoRA selector, the roc encoder.", no_args_is_help=True)
app.add_typer(tools_app, name="tools")
app.add_typer(kb_app, name="kb")
app.add_typer(config_app, name="config")
app.add_typer(run_app, name="run")
app.add_typer(eval_app, name="eval")
app.add_typer(calibrate_app, name="calibrate")
app.add_typer(train_app, name="train")
app.add_typer(trace_app, name="trace")
app.add_typer(corpus_app, name="corpus")
run_app.command("enriched_caption")(run_enriched_caption)
eval_app.command("enriched_caption")(eval_enriched_caption)
cli_roc.register(run_app=run_app, eval_app=eval_app, train_app=train_app)
cli_i2cr_train.register(train_app=train_app)
cli_insgenel.register(run_app=run_app, eval_app=eval_app)
app.add_typer(serve_app, name="serve")



def _settings(profile: str | None, config: Path | None, **overrides: Any) -> Any:
    from groundgraph.agents.settings import load_settings

    return load_settings(profile, config, **overrides)


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
        print_json([c.model_dump() for c in checks])
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
             config: ConfigFile = None, force: bool = False,
             index_type: Annotated[str | None, typer.Option(
                 help="dense index: flat (exact; default), ivf or hnsw (approximate, for millions of entities; "
                      "same as tools.kb.index_type)")] = None) -> None:
    """Build the knowledge base (SQLite + fuzzy names + FAISS vectors) once; later loads reuse it."""
    from tqdm import tqdm

    from groundgraph.agents.toolbox import Toolbox

    settings = _settings(profile, config, **({"tools": {"kb": {"index_type": index_type}}} if index_type else {}))
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
    print_json(_settings(profile, config).model_dump(mode="json"))


# --- run ----------------------------------------------------------------------------------------
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
        run_file(agent, input, output)
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
        print_json(result.model_dump(mode="json"))
    else:
        e = result.entity
        out.print(f"{e.name if e else None} [{e.id if e else '-'}]  accepted by {result.accepted_by}, "
                  f"{result.rounds} round(s), run {result.run_id}", markup=False, highlight=False)


# --- eval / calibrate ---------------------------------------------------------------------------
@eval_app.command("i2cr")
def eval_i2cr(
    data: Annotated[Path, typer.Option(help="MEL JSONL with gold entities, e.g. ../shared/data/mel/wikimel.dev.jsonl")],
    report: Annotated[Path, typer.Option(help="where to write the JSON report")] = Path("reports/i2cr.json"),
    limit: Annotated[int | None, typer.Option(help="only the first N records")] = None,
    ablation: Annotated[list[str] | None, typer.Option(
        help="full, text_only, all_cues_at_once, no_icr, no_iav, reverse_cue_order; or 'all'")] = None,
    images: Annotated[Path | None, typer.Option(help="directory holding the records' image files")] = None,
    trace: Annotated[bool, typer.Option(help="keep every run in the trace store")] = False,
    profile: Profile = None, config: ConfigFile = None,
) -> None:
    """Top-1 accuracy, accuracy by round, gate pass rates, fallback rate, latency; one row per ablation."""
    from groundgraph.agents.agent import load_agent
    from groundgraph.agents.evaluation import i2cr
    from groundgraph.agents.evaluation.common import write_report

    names = ablation or ["full"]
    if "all" in names:
        names = list(i2cr.ABLATIONS)
    agent = load_agent("i2cr", profile, config=str(config) if config else None, trace=trace)
    records = i2cr.load_mel(data, limit)
    bars: dict[str, Any] = {}
    result = i2cr.report(agent, records, str(data), names, image_dir=images, plot_path=report.with_suffix(".png"),
                         progress=lambda name, i, t: bars.setdefault(name, progress_bar(name))(i, t))
    result["command"] = " ".join(["groundgraph", *sys.argv[1:]])
    write_report(result, report)
    table = Table("run", "top-1", "fallback", "mean rounds", "LLM calls/rec", "median ms", "p95 ms", "rec/s",
                  title=f"i2cr on {data.name} ({len(records)} records)")
    for name, row in result["runs"].items():
        table.add_row(name, f"{row['top1']:.4f}", str(row["fallback_rate"]), str(row["mean_rounds"]),
                      str(row["llm"]["calls_per_record"]), str(row["latency"]["median_ms"]),
                      str(row["latency"]["p95_ms"]), str(row["throughput_per_s"]))
    out.print(table)
    out.print(f"report: {report}" + (f", plot: {result['plot']}" if "plot" in result else ""))


@calibrate_app.command("i2cr")
def calibrate_i2cr(
    data: Annotated[Path, typer.Option(help="a MEL dev JSONL with gold entities")],
    out_file: Annotated[Path, typer.Option("--out", help="TOML config file to write the thresholds to")] = Path(
        "groundgraph.toml"),
    limit: Annotated[int | None, typer.Option(help="only the first N records")] = None,
    alphas: Annotated[str, typer.Option(help="comma-separated alpha grid (cosine)")] = "-1,0,0.1,0.2,0.3,0.4,0.5",
    betas: Annotated[str, typer.Option(help="comma-separated beta grid, on the image_text tool's scale")] = (
        "0,10,20,25,30,35,40,45,50,60,101"),
    fallbacks: Annotated[str, typer.Option(help="comma-separated fallback rules to try")] = "text_only,last_round",
    profile: Profile = None, config: ConfigFile = None,
) -> None:
    """Grid-search alpha and beta on a dev file and write them to a config file the agent reads."""
    from groundgraph.agents.agent import load_agent
    from groundgraph.agents.evaluation import i2cr
    from groundgraph.agents.evaluation.common import write_report

    def floats(text: str) -> list[float]:
        try:
            return [float(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise InputError(f"not a comma-separated list of numbers: {text!r}") from None

    agent = load_agent("i2cr", profile, config=str(config) if config else None, trace=False)
    records = i2cr.load_mel(data, limit)
    result = i2cr.calibrate(agent, records, floats(alphas), floats(betas),
                            [f.strip() for f in fallbacks.split(",") if f.strip()], progress=progress_bar("grid"))
    best = result["best"]
    scale = result["scale"]["beta"]
    write_report({**result, "data": str(data), "command": " ".join(["groundgraph", *sys.argv[1:]])},
                 out_file.with_suffix(".calibration.json"))
    out_file.write_text(f"# written by `groundgraph calibrate i2cr` on {data.name} ({len(records)} records): "
                        f"top-1 {best['top1']}\n[graphs.i2cr]\nalpha = {best['alpha']}\nbeta = {best['beta']}\n"
                        f'beta_scale = "{scale}"\nfallback = "{best["fallback"]}"\n')
    out.print(f"alpha = {best['alpha']}, beta = {best['beta']} ({scale}), fallback {best['fallback']}: "
              f"top-1 {best['top1']} on {len(records)} records; written to {out_file} (--config {out_file})")


@app.command("batch")
def batch(
    graph: Annotated[str, typer.Argument(help="graph id, e.g. i2cr")],
    input: Annotated[Path, typer.Option("--input", help="JSONL of records")],
    output: Annotated[Path, typer.Option("--output", help="JSONL of answers; rerun to resume")],
    engine: Annotated[str, typer.Option(help="local (process pool) or ray (Ray Data actor pool)")] = "local",
    workers: Annotated[int, typer.Option(help="worker processes or actors, each holding the models once")] = 1,
    batch_size: Annotated[int, typer.Option(help="records per task")] = 16,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (default: start a local Ray)")] = None,
    profile: Profile = None, config: ConfigFile = None, as_json: AsJson = False,
) -> None:
    """Run a graph over a large JSONL file on several workers; failed records go to an errors file."""
    from groundgraph.agents.batch import run_batch

    stats = run_batch(graph, input, output, engine=engine, workers=workers, batch_size=batch_size,  # type: ignore[arg-type]
                      profile=profile, config=str(config) if config else None, address=address,
                      progress=progress_bar(f"{graph} ({engine} x{workers})"))
    if as_json:
        print_json(stats.model_dump())
    else:
        err.print(f"{stats.done} done, {stats.skipped} already finished, {stats.errors} errors in {stats.wall_s} s: "
                  f"{stats.records_per_s} records/s ({engine}, {workers} worker(s))"
                  + (f"; errors in {output}.errors.jsonl" if stats.errors else ""))


# --- train -------------------------------------------------------------------------------------
@train_app.command("selector")
def train_selector(
    base: Annotated[str, typer.Option(help="base causal LM: a local HF model dir (or a hub id, downloaded once)")],
    data: Annotated[Path, typer.Option(help="MEL JSONL with gold entities")],
    out_dir: Annotated[Path, typer.Option("--out", help="where the LoRA adapter and checkpoints go")],
    rank: int = 16, alpha: int = 32, dropout: float = 0.05,
    target_modules: Annotated[str, typer.Option(help="comma-separated module names")] = (
        "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"),
    epochs: float = 1.0, max_steps: Annotated[int | None, typer.Option()] = None, lr: float = 2e-4,
    batch_size: int = 4, grad_accumulation: int = 4, max_length: int = 1024, eval_fraction: float = 0.1,
    eval_every: int = 50, device: str = "cpu", dtype: str = "float32",
    limit: Annotated[int | None, typer.Option()] = None,
) -> None:
    """LoRA-tune a causal LM to pick the gold entity among a MEL record's candidates (the I2CR selector)."""
    from tqdm import tqdm

    from groundgraph.agents.evaluation.i2cr import load_mel
    from groundgraph.graphs.i2cr.selector_data import instruction_examples
    from groundgraph.tools.lora_training import Example, LoraTrainConfig, train_lora

    examples = [Example(**e) for e in instruction_examples(load_mel(data, limit))]
    config = LoraTrainConfig(rank=rank, alpha=alpha, dropout=dropout, learning_rate=lr, epochs=epochs,
                             max_steps=max_steps, batch_size=batch_size, grad_accumulation=grad_accumulation,
                             max_length=max_length, eval_fraction=eval_fraction, eval_every=eval_every, device=device,
                             dtype=dtype, target_modules=[t.strip() for t in target_modules.split(",") if t.strip()])
    bar = tqdm(total=0, unit="step", desc="LoRA", disable=None)

    def progress(step: int, total: int, loss: float) -> None:
        bar.total = total
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{loss:.3f}")

    result = train_lora(base, examples, out_dir, config, progress)
    bar.close()
    out.print(f"{result.steps} steps in {result.seconds} s on {result.train_examples} examples; train loss "
              f"{result.train_loss[0]:.3f} -> {result.train_loss[-1]:.3f}; eval loss {result.eval_loss}; "
              f"adapter in {result.adapter_dir}")


@app.command("demo")
def demo(profile: Profile = None, config: ConfigFile = None) -> None:
    """Run i2cr on a few real records shipped with groundgraph and print each answer."""
    from groundgraph.agents.agent import load_agent
    from groundgraph.agents.checks import data_path
    from groundgraph.agents.evaluation.i2cr import mel_input
    from groundgraph.agents.jsonl import read_records

    agent = load_agent("i2cr", profile, config=str(config) if config else None)
    right = 0
    for _, record, _ in read_records(data_path("demo_mel.jsonl")):
        result = agent.invoke(mel_input(record))
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
        err.print(f"[red]error:[/] {type(exc).__name__}: {escape(str(exc))}")  # messages quote user input
        sys.exit(2)


if __name__ == "__main__":
    main()
