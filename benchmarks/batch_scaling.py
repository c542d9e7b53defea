"""Batch throughput of a graph with 1 and 2 workers, local process pool and Ray Data, in one run.

For each (engine, workers): wall time, records/s, and where the time went, summed over workers:
model compute (inside graph runs), serialization (JSON records and results), and the rest
(worker start-up with model loading, scheduling, the writer) as orchestration. The scaling ratio
is records/s with 2 workers over 1. Every run starts from an empty output (nothing resumed).

    python benchmarks/batch_scaling.py --data ../shared/data/mel/wikimel.dev.jsonl --limit 2000 \
        --report reports/batch_scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from groundgraph.agents.batch import run_batch
from groundgraph.agents.evaluation.common import environment, write_report
from groundgraph.agents.evaluation.i2cr import load_mel, mel_input


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path, help="MEL JSONL (i2cr records)")
    ap.add_argument("--limit", type=int, default=2000)
    ap.add_argument("--engines", default="local,ray")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--cold", action="store_true",
                    help="each run starts with an empty embedding cache (compute-bound, as on new data)")
    ap.add_argument("--report", type=Path, default=Path("reports/batch_scaling.json"))
    args = ap.parse_args()
    report: dict[str, Any] = {"benchmark": "batch_scaling", "graph": "i2cr", "profile": "cpu", "cold_cache": args.cold,
                              "command": " ".join(["python", *sys.argv]), "environment": environment(),
                              "data": str(args.data), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        inputs = Path(tmp) / "records.jsonl"
        records = load_mel(args.data, args.limit)
        inputs.write_text("".join(json.dumps({**mel_input(r), "id": r["id"]}) + "\n" for r in records))
        report["records"] = len(records)
        for engine in args.engines.split(","):
            for workers in (int(w) for w in args.workers.split(",")):
                if args.cold:  # workers (processes, Ray actors) inherit the environment
                    os.environ["GROUNDGRAPH_CACHE"] = tempfile.mkdtemp(dir=tmp)
                stats = run_batch("i2cr", inputs, Path(tmp) / f"{engine}-{workers}.jsonl", engine=engine,  # type: ignore[arg-type]
                                  workers=workers, batch_size=args.batch_size, profile="cpu")
                busy = stats.wall_s * workers
                row = {**stats.model_dump(), "orchestration_s": round(busy - stats.compute_s - stats.serialize_s, 3),
                       "share": {"compute": round(stats.compute_s / busy, 4),
                                 "serialize": round(stats.serialize_s / busy, 4),
                                 "orchestration": round(1 - (stats.compute_s + stats.serialize_s) / busy, 4)}}
                report["runs"].append(row)
                print(row, file=sys.stderr, flush=True)
                write_report(report, args.report)
    by = {(r["engine"], r["workers"]): r["records_per_s"] for r in report["runs"]}
    report["scaling_2_over_1"] = {e: round(by[(e, 2)] / by[(e, 1)], 3) for e in args.engines.split(",")
                                  if (e, 1) in by and (e, 2) in by and by[(e, 1)]}
    write_report(report, args.report)
    print(json.dumps({k: report[k] for k in ("records", "scaling_2_over_1")}))


if __name__ == "__main__":
    main()
