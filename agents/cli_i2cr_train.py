"""``groundgraph train scorer``: fine-tune the i2cr scorer's text encoder, and report whether it helps.

Registered in ``agents/cli.py`` with ``cli_i2cr_train.register(train_app=...)``.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from groundgraph.agents.cli_common import AsJson, ConfigFile, Profile, err, log_progress, out, print_json
from groundgraph.tools.errors import InputError


def train_scorer(
    data: Annotated[Path, typer.Option(help="MEL JSONL with gold entities, e.g. ../shared/data/mel/wikimel.dev.jsonl; "
                                            "split into train/validation by a seeded hash of the record ids")],
    out_dir: Annotated[Path, typer.Option("--out", help="directory for the tuned encoder (the embedder's model)")],
    base_model: Annotated[str | None, typer.Option(help="local sentence-transformers dir (default: packaged MiniLM)")
                          ] = None,
    epochs: Annotated[int, typer.Option(help="passes over the training records")] = 1,
    lr: Annotated[float, typer.Option(help="AdamW learning rate (linear warm-up then decay)")] = 2e-5,
    batch_size: Annotated[int, typer.Option(help="records per step")] = 16,
    temperature: Annotated[float, typer.Option(help="logits = cosine / temperature")] = 0.05,
    negatives: Annotated[int | None, typer.Option(help="negatives per record (default: all its candidates)")] = None,
    name_weight: Annotated[float, typer.Option(help="weight of the mention-vs-title loss")] = 0.5,
    candidate_grad: Annotated[bool, typer.Option(help="backpropagate through the candidate texts too")] = False,
    val_fraction: Annotated[float, typer.Option(help="share of the records held out for validation")] = 0.2,
    split_seed: Annotated[int, typer.Option(help="seed of the id-hash split")] = 0,
    seed: int = 0,
    threads: Annotated[int, typer.Option(help="torch CPU threads (1 on a shared machine)")] = 1,
    max_steps: Annotated[int | None, typer.Option(help="stop after this many optimiser steps")] = None,
    limit: Annotated[int | None, typer.Option(help="a seeded subset of the training records")] = None,
    report: Annotated[Path | None, typer.Option(help="then evaluate i2cr on the validation records, untuned vs "
                                                     "tuned embedder, and write this JSON report")] = None,
    eval_only: Annotated[bool, typer.Option(help="skip training: evaluate the encoder already in --out")] = False,
    profile: Profile = None,
    config: ConfigFile = None,
    as_json: AsJson = False,
) -> None:
    """Fine-tune the i2cr candidate scorer's text encoder (listwise softmax over each record's candidates)."""
    from groundgraph.graphs.i2cr.encoder_training import TUNING_FILE, ScorerTrainConfig, validation_records
    from groundgraph.graphs.i2cr.encoder_training import train as run_training

    if not data.is_file():
        raise InputError(f"no such file: {data}")
    result: dict[str, Any] = {}
    if not eval_only:
        try:
            train_config = ScorerTrainConfig(
                data_path=data, out_dir=out_dir, base_model=base_model, epochs=epochs, lr=lr, batch_size=batch_size,
                temperature=temperature, negatives=negatives, name_weight=name_weight, candidate_grad=candidate_grad,
                val_fraction=val_fraction, split_seed=split_seed, seed=seed, threads=threads, max_steps=max_steps,
                limit=limit, progress_bar=sys.stderr.isatty())
        except ValueError as exc:  # pydantic's ValidationError: a bad option value
            raise InputError(f"bad training option: {exc}") from None
        err.print(f"training the i2cr scorer encoder on the train split of {data} into {out_dir}")
        trained = run_training(train_config, on_progress=None if sys.stderr.isatty() else log_progress(10))
        result["training"] = {k: v for k, v in json.loads(trained.model_dump_json()).items() if k != "losses"}
        err.print(f"{trained.steps} steps on {trained.train_examples} records in {trained.seconds:.0f} s; loss "
                  f"{trained.loss_first:.4f} -> {trained.loss_last:.4f}; split {trained.split['train_records']} train /"
                  f" {trained.split['val_records']} val; saved to {out_dir}")
    elif not (out_dir / TUNING_FILE).is_file():
        raise InputError(f"{out_dir} holds no tuned encoder ({TUNING_FILE} is missing)")
    if report is not None:
        from groundgraph.agents.cli_common import progress_bar
        from groundgraph.agents.evaluation.i2cr_tuning import compare

        val = validation_records(out_dir / TUNING_FILE, data)
        bars: dict[str, Any] = {}

        def progress(name: str, done: int, total: int) -> None:
            bars.setdefault(name, progress_bar(f"i2cr {name}"))(done, total)

        comparison = compare(out_dir, val, profile=profile or "cpu", config=str(config) if config else None,
                             threads=threads, progress=progress)
        tuning = json.loads((out_dir / TUNING_FILE).read_text(encoding="utf-8"))
        comparison["training"] = {k: v for k, v in tuning.items() if k != "losses"}
        comparison["command"] = "groundgraph train scorer " + shlex.join(sys.argv[3:] if len(sys.argv) > 3 else [])
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(json.dumps(comparison, indent=2) + "\n", encoding="utf-8")
        result["evaluation"] = comparison
        err.print(f"report written to {report}")
    if as_json:
        print_json(result)
        return
    if "evaluation" in result:
        c = result["evaluation"]
        out.print(f"i2cr top-1 on {c['val_records']} validation records: untuned {c['top1']['untuned']}, tuned "
                  f"{c['top1']['tuned']} (delta {c['delta_top1']:+.4f}; {c['fixed']} fixed, {c['broken']} broken)")


def register(*, train_app: Any) -> None:
    """Add ``train scorer`` to the train sub-app."""
    train_app.command("scorer")(train_scorer)
