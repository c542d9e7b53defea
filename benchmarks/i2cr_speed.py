"""i2cr speed on 2 cores: mentions/s, per-mention latency, peak memory, and LangGraph overhead.

Overhead is the ratio of the compiled graph's time to the same node functions and gates run
in a plain Python loop (``graphs.i2cr.graph.run_plain``), over the same records, after a
warm-up pass that fills the models' caches for both. With ``--with-trace`` the graph also
runs with the SQLite checkpointer (every step persisted), reported separately.

    python benchmarks/i2cr_speed.py --data ../shared/data/mel/wikimel.dev.jsonl --limit 300 \
        --report reports/i2cr_speed.json
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from groundgraph.agents.agent import Agent, load_agent
from groundgraph.agents.evaluation.common import environment, latency_summary, write_report
from groundgraph.agents.evaluation.i2cr import load_mel, mel_input
from groundgraph.agents.settings import TraceSettings
from groundgraph.graphs.i2cr.graph import initial_state, run_plain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, type=Path)
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3, help="timed passes per runner (best pass is kept)")
    ap.add_argument("--with-trace", action="store_true", help="also time the graph with the SQLite checkpointer")
    ap.add_argument("--report", type=Path, default=Path("reports/i2cr_speed.json"))
    args = ap.parse_args()

    t0 = time.perf_counter()
    agent = load_agent("i2cr", "cpu", trace=False)
    records = load_mel(args.data, args.limit)
    inputs = [agent.validate(mel_input(r)) for r in records]
    ctx = agent.context
    for inp in inputs:  # warm-up: loads the models and fills the embedding caches for every runner
        run_plain(initial_state(inp, agent.config), ctx)
    warm = time.perf_counter() - t0

    def timed(run_one) -> tuple[float, list[float]]:
        best: tuple[float, list[float]] | None = None
        for _ in range(args.repeats):
            lat = []
            start = time.perf_counter()
            for inp in inputs:
                s = time.perf_counter()
                run_one(inp)
                lat.append(time.perf_counter() - s)
            total = time.perf_counter() - start
            if best is None or total < best[0]:
                best = (total, lat)
        assert best is not None
        return best

    plain_total, plain_lat = timed(lambda inp: run_plain(initial_state(inp, agent.config), ctx))
    graph_total, graph_lat = timed(lambda inp: agent.invoke(inp))
    result = {
        "benchmark": "i2cr_speed",
        "command": " ".join([sys.executable.split("/")[-1], *sys.argv]),
        "environment": environment(),
        "data": str(args.data),
        "records": len(inputs),
        "warmup_seconds_incl_model_load": round(warm, 2),
        "graph": {"mentions_per_s": round(len(inputs) / graph_total, 2), **latency_summary(graph_lat)},
        "plain_loop": {"mentions_per_s": round(len(inputs) / plain_total, 2), **latency_summary(plain_lat)},
        "langgraph_overhead_ratio": round(graph_total / plain_total, 4),
    }
    if args.with_trace:
        with tempfile.TemporaryDirectory() as tmp:
            settings = agent.settings.model_copy(update={"trace": TraceSettings(db=Path(tmp) / "t.sqlite")})
            # the same models and caches as the untraced runs: only the checkpointer differs
            traced = Agent(agent.spec, settings, toolbox=agent.toolbox, trace=True, context=ctx)
            total, lat = timed(lambda inp: traced.invoke(inp))
        result["graph_with_sqlite_trace"] = {"mentions_per_s": round(len(inputs) / total, 2), **latency_summary(lat),
                                             "ratio_to_plain": round(total / plain_total, 4)}
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    write_report(result, args.report)
    print(result)


if __name__ == "__main__":
    main()
