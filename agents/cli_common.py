"""What every CLI module shares: common options, consoles, JSON output, progress bars, JSONL runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

out = Console()
err = Console(stderr=True)

Profile = Annotated[str | None, typer.Option("--profile", "-p", help="cpu (default) or gpu")]
ConfigFile = Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON instead of tables")]


def print_json(data: Any) -> None:
    out.print_json(json.dumps(data, ensure_ascii=False, default=str))


def log_progress(every: int) -> Any:
    """A training progress callback for off a terminal (a log file): a line every ``every`` steps, not a bar."""
    import time

    start = time.perf_counter()

    def log(p: Any) -> None:
        if p.step % every == 0 or p.step == p.total_steps:
            err.print(f"epoch {p.epoch} step {p.step}/{p.total_steps} loss {p.loss:.4f} "
                      f"{time.perf_counter() - start:.0f}s", highlight=False)

    return log


def progress_bar(desc: str, unit: str = "record") -> Any:
    """A tqdm bar (quiet when not on a terminal) fed by ``update(done, total)`` callbacks."""
    from tqdm import tqdm

    bar = tqdm(total=0, unit=unit, desc=desc, disable=None)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)
        if done == total:
            bar.close()

    return update


def run_file(agent: Any, input_path: Path, output_path: Path) -> None:
    """Run ``agent`` over a JSONL file into a resumable JSONL output, reporting bad records."""
    from groundgraph.agents.jsonl import run_jsonl

    counts = run_jsonl(input_path, output_path, lambda r: agent.invoke(r).model_dump(mode="json"),
                       progress=progress_bar(agent.name))
    err.print(f"{counts['done']} done, {counts['skipped']} already finished, {counts['errors']} errors"
              + (f" (see {output_path}.errors.jsonl)" if counts["errors"] else ""))
