"""``groundgraph train roc``, ``run roc`` and ``eval roc``.

Registered in ``agents/cli.py`` with ``cli_roc.register(run_app=..., eval_app=..., train_app=...)``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from groundgraph.agents.cli_common import (
    AsJson,
    ConfigFile,
    Profile,
    err,
    log_progress,
    out,
    print_json,
    progress_bar,
    run_file,
)
from groundgraph.tools.errors import InputError


def train_roc(
    train: Annotated[Path, typer.Option(help="MNRE-style training JSONL, e.g. ../shared/data/mre/mnre.train.jsonl")],
    val: Annotated[Path, typer.Option(help="dev JSONL: picks the best epoch and calibrates the None rule")],
    out_dir: Annotated[Path, typer.Option("--out", help="directory for the trained encoder (+ checkpoints/)")],
    base_model: Annotated[str | None, typer.Option(help="local sentence-transformers dir (default: packaged MiniLM)")
                          ] = None,
    descriptions: Annotated[Path | None, typer.Option(help="relation descriptions JSON (default: the shipped MNRE "
                                                           "ones)")] = None,
    epochs: Annotated[int, typer.Option(help="passes over the training data")] = 2,
    lr: Annotated[float, typer.Option(help="AdamW learning rate (linear warm-up then decay)")] = 1e-4,
    batch_size: int = 32,
    temperature: Annotated[float, typer.Option(help="logits = cosine / temperature")] = 0.05,
    none_fraction: Annotated[float, typer.Option(help="share of None pairs drawn each epoch")] = 0.35,
    description_grad: Annotated[bool, typer.Option(help="backpropagate through the descriptions too")] = False,
    types: Annotated[bool, typer.Option(help="write predicted entity types into the input")] = False,
    marker_style: Annotated[str, typer.Option(help="brackets, tokens or none")] = "brackets",
    pair_suffix: Annotated[bool, typer.Option(help="repeat 'head: ... ; tail: ...' after the sentence")] = True,
    max_seq_length: int = 128,
    seed: int = 0,
    threads: Annotated[int, typer.Option(help="torch CPU threads (1 on a shared machine)")] = 1,
    max_steps: Annotated[int | None, typer.Option(help="stop after this many optimiser steps")] = None,
    limit: Annotated[int | None, typer.Option(help="a seeded subset of the training records")] = None,
    keep_checkpoints: Annotated[bool, typer.Option(help="keep checkpoints/epoch-N")] = True,
    as_json: AsJson = False,
) -> None:
    """Fine-tune the ROC encoder: pull each marked pair towards its relation's description (contrastive)."""
    from groundgraph.graphs.roc.training import TrainConfig
    from groundgraph.graphs.roc.training import train as run_training

    try:
        config = TrainConfig(
            train_path=train, val_path=val, out_dir=out_dir, base_model=base_model, descriptions_path=descriptions,
            epochs=epochs, lr=lr, batch_size=batch_size, temperature=temperature, none_fraction=none_fraction,
            description_grad=description_grad, use_types=types, marker_style=marker_style,  # type: ignore[arg-type]
            pair_suffix=pair_suffix, max_seq_length=max_seq_length, seed=seed, threads=threads,
            max_steps=max_steps, max_train_records=limit, keep_checkpoints=keep_checkpoints,
            progress_bar=sys.stderr.isatty(),
        )
    except ValueError as exc:  # pydantic's ValidationError: a bad option value
        raise InputError(f"bad training option: {exc}") from None
    for path in (train, val):
        if not path.is_file():
            raise InputError(f"no such file: {path}")
    err.print(f"training roc on {train} for {epochs} epoch(s) into {out_dir}")
    result = run_training(config, on_progress=None if sys.stderr.isatty() else log_progress(25))
    if as_json:
        print_json(json.loads(result.model_dump_json()))
        return
    table = Table("epoch", "steps", "train loss", "seconds", "val P", "val R", "val F1", "val acc", "argmax F1",
                  "None rule (t, m)", title=f"roc training ({result.seconds:.0f} s in all)")
    for e in result.epochs:
        v = e.val
        table.add_row(str(e.epoch), str(e.steps), f"{e.train_loss:.4f}", f"{e.seconds:.0f}", f"{v.precision:.4f}",
                      f"{v.recall:.4f}", f"{v.f1:.4f}", f"{v.accuracy:.4f}", f"{e.val_argmax.f1:.4f}",
                      f"{e.none_rule.threshold:.3f}, {e.none_rule.margin:.3f}")
    out.print(table)
    out.print(f"best epoch {result.best_epoch} (val F1) saved to {result.out_dir}; training took "
              f"{result.seconds:.0f} s; checkpoints in {result.out_dir / 'checkpoints'}" if keep_checkpoints else
              f"best epoch {result.best_epoch} saved to {result.out_dir}; training took {result.seconds:.0f} s")


def _positions(text: str | None, what: str) -> list[int] | None:
    if text is None:
        return None
    try:
        start, end = (int(x) for x in text.replace(":", ",").split(","))
    except ValueError:
        raise InputError(f"{what} must be START,END (end exclusive), got {text!r}") from None
    return [start, end]


def _entity(name: str | None, pos: str | None, type_: str | None, what: str) -> dict[str, Any]:
    entity: dict[str, Any] = {"name": name, "pos": _positions(pos, f"--{what}-pos")}
    if type_:
        entity["type"] = type_
    return {k: v for k, v in entity.items() if v is not None}


def _roc_agent(profile: str | None, config: Path | None, model: Path | None, trace: bool | None = None) -> Any:
    from groundgraph.agents.agent import load_agent

    overrides = {"graphs": {"roc": {"encoder": str(model)}}} if model else {}
    return load_agent("roc", profile, config=str(config) if config else None, trace=trace, **overrides)


ModelOpt = Annotated[Path | None, typer.Option(
    "--model", help="trained encoder directory (default: graphs.roc.encoder, 'auto': models/roc-mnre if present)")]


def run_roc(
    text: Annotated[str | None, typer.Option(help="the sentence (head/tail found by name, or --head-pos as "
                                                  "character offsets)")] = None,
    tokens_json: Annotated[str | None, typer.Option(help="the tokenised sentence as a JSON list (positions are "
                                                         "then token indexes)")] = None,
    head: Annotated[str | None, typer.Option(help="the head entity as written")] = None,
    tail: Annotated[str | None, typer.Option(help="the tail entity as written")] = None,
    head_pos: Annotated[str | None, typer.Option(help="START,END of the head (end exclusive)")] = None,
    tail_pos: Annotated[str | None, typer.Option(help="START,END of the tail (end exclusive)")] = None,
    head_type: Annotated[str | None, typer.Option(help="per, org, loc or misc")] = None,
    tail_type: Annotated[str | None, typer.Option(help="per, org, loc or misc")] = None,
    image: Annotated[Path | None, typer.Option(help="the post's image")] = None,
    model: ModelOpt = None,
    input: Annotated[Path | None, typer.Option("--input", help="JSONL of records (tokens/text, head, tail)")] = None,
    output: Annotated[Path | None, typer.Option("--output", help="JSONL of answers (resumable)")] = None,
    profile: Profile = None, config: ConfigFile = None, as_json: AsJson = False,
) -> None:
    """The relation between two entities of one sentence, or of every record of a JSONL file (--input/--output)."""
    agent = _roc_agent(profile, config, model)
    if input or output:
        if not (input and output):
            raise InputError("--input and --output go together")
        run_file(agent, input, output)
        return
    record: dict[str, Any] = {"head": _entity(head, head_pos, head_type, "head"),
                              "tail": _entity(tail, tail_pos, tail_type, "tail")}
    if tokens_json is not None:
        try:
            record["tokens"] = json.loads(tokens_json)
        except json.JSONDecodeError as exc:
            raise InputError(f"--tokens-json is not JSON: {exc}") from None
    elif text is not None:
        record["text"] = text
    else:
        raise InputError("give --text or --tokens-json (or --input and --output)")
    if image:
        record["image"] = str(image)
    result = agent.invoke(record)
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    top = ", ".join(f"{t.relation} {t.score:.3f}" for t in result.top_k[:3])
    out.print(f"{result.relation}  (score {result.score:.3f}, by {result.decided_by}; {result.reason})",
              markup=False, highlight=False)
    out.print(f"top: {top}; read: {result.marked_text}; {result.image_note}; run {result.run_id}",
              style="dim", markup=False, highlight=False)


def eval_roc(
    data: Annotated[Path, typer.Option(help="MNRE JSONL with gold relations, e.g. "
                                            "../shared/data/mre/mnre.test-dev.jsonl")],
    model: ModelOpt = None,
    report: Annotated[Path, typer.Option(help="JSON report; the confusion matrix PNG goes next to it")] = Path(
        "reports/roc.json"),
    val: Annotated[Path | None, typer.Option(help="dev JSONL: calibrates the None rule of ablations whose rule "
                                                   "does not come from a trained encoder")] = None,
    ablation: Annotated[list[str] | None, typer.Option(
        help="full, zero_shot, label_names, zero_shot_label_names; or 'all' (default)")] = None,
    limit: Annotated[int | None, typer.Option(help="only the first N records")] = None,
    images: Annotated[Path | None, typer.Option(help="directory holding the records' image files")] = None,
    profile: Profile = None, config: ConfigFile = None,
) -> None:
    """Micro P/R/F1 over non-None relations, accuracy, confusion matrix, latency; one row per ablation."""
    from groundgraph.agents.evaluation import roc
    from groundgraph.agents.evaluation.common import write_report

    names = ablation or ["all"]
    if "all" in names:
        names = list(roc.ABLATIONS)
    agent = _roc_agent(profile, config, model, trace=False)
    records = roc.load_mnre(data, limit)
    val_records = roc.load_mnre(val) if val else None
    bars: dict[str, Any] = {}
    result = roc.report(agent, records, str(data), names, val_records=val_records, val_path=str(val) if val else None,
                        image_dir=images, plot_path=report.with_suffix(".png"),
                        progress=lambda name, i, t: bars.setdefault(name, progress_bar(name))(i, t))
    result["command"] = " ".join(["groundgraph", *sys.argv[1:]])
    write_report(result, report)
    table = Table("run", "P", "R", "micro-F1", "acc", "argmax F1", "None rule (t, m)", "median ms", "rec/s",
                  title=f"roc on {data.name} ({len(records)} records)")
    for name, row in result["runs"].items():
        rule = row["none_rule"]
        table.add_row(name, f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}",
                      f"{row['accuracy']:.4f}", f"{row['argmax']['f1']:.4f}",
                      f"{rule['threshold']:.3f}, {rule['margin']:.3f}", str(row["latency"]["median_ms"]),
                      str(row["throughput_per_s"]))
    out.print(table)
    out.print(f"report: {report}" + (f", confusion matrix: {result['plot']}" if "plot" in result else ""))


def register(*, run_app: Any, eval_app: Any, train_app: Any) -> None:
    """Add the roc commands to the main CLI's sub-apps."""
    train_app.command("roc")(train_roc)
    run_app.command("roc")(run_roc)
    eval_app.command("roc")(eval_roc)
