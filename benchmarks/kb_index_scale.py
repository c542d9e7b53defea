"""Knowledge-base dense index at scale: exact (flat) vs approximate (IVF, HNSW) FAISS indexes.

For each index: build time (batched adds, IVF trained on a seeded sample first, as ``kb build``
does), index size, peak memory growth, and, at several settings of the index's speed/recall knob
(IVF nprobe, HNSW efSearch), search latency per query and recall@10 against the exact index.

Two collections:
- the real KB (``--kb``, 17k entities), embedded with the cpu profile's embedder (packaged MiniLM);
  queries are a seeded sample of entity names;
- a synthetic one of ``--synthetic`` entities (default 1M) whose names and descriptions this script
  generates (nothing is committed). Embedding 1M texts with MiniLM takes hours on 2 cores, so they
  are embedded with the hashing embedder (word and trigram features, 384-d): the index behaviour is
  measured on real text statistics but not on MiniLM's geometry. Queries are perturbed names
  (one word dropped or misspelt), as a user would type them.

    python benchmarks/kb_index_scale.py --kb ../shared/data/kb/entities.jsonl --synthetic 1000000 \
        --report reports/kb_index_scale.json
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from groundgraph.agents.evaluation.common import environment, write_report
from groundgraph.agents.settings import load_settings
from groundgraph.agents.toolbox import Toolbox
from groundgraph.tools.embedder import HashingEmbedder
from groundgraph.tools.kb import read_entities
from groundgraph.tools.vector_index import FaissIndex, ivf_cells

SYLLABLES = ["ka", "lo", "mer", "vin", "tas", "ro", "bel", "di", "quin", "sha", "tor", "ev", "gan", "lu", "pri",
             "zo", "han", "mi", "cal", "dre", "os", "fen", "ju", "nar", "wel", "by", "sto", "ga", "rin", "eth"]
KINDS = ["footballer", "village", "river", "painter", "album", "company", "novel", "politician", "species of beetle",
         "church", "film", "mountain", "railway station", "physicist", "band", "ship", "university", "festival"]
PLACES = ["Norway", "Brazil", "Kenya", "Japan", "Peru", "Canada", "Italy", "India", "Chile", "Poland", "Egypt",
          "Vietnam", "Ireland", "Mexico", "Ghana", "Finland", "Turkey", "Nepal", "Spain", "Australia"]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_entities(n: int, seed: int = 0) -> Iterator[tuple[str, str]]:
    """(name, description) pairs: invented two- or three-word names, a kind, a place and a year."""
    rng = random.Random(seed)

    def word() -> str:
        return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 3))).title()

    for _ in range(n):
        name = " ".join(word() for _ in range(rng.randint(2, 3)))
        yield name, f"{rng.choice(KINDS)} from {rng.choice(PLACES)}, {rng.randint(1700, 2025)}"


def perturb(name: str, rng: random.Random) -> str:
    words = name.split()
    if len(words) > 2 and rng.random() < 0.5:
        words.pop(rng.randrange(len(words)))
    else:
        i = rng.randrange(len(words))
        w = words[i]
        j = rng.randrange(len(w))
        words[i] = w[:j] + w[j + 1:] if len(w) > 3 else w
    return " ".join(words)


def embed_batches(embed: Any, texts: list[str], batch: int = 4096) -> np.ndarray[Any, Any]:
    return np.concatenate([embed(texts[i : i + batch]) for i in range(0, len(texts), batch)]).astype(np.float32)


def measure(vectors: np.ndarray[Any, Any], queries: np.ndarray[Any, Any], k: int, batch: int) -> dict[str, Any]:
    """Build each index once, then search it at several settings of its speed/recall knob."""
    n, dim = vectors.shape
    ids = [str(i) for i in range(n)]
    nlist = ivf_cells(n)
    configs = {"flat": ({}, "", [None]), "ivf": ({"nlist": nlist}, "nprobe", [8, 32, 128]),
               "hnsw": ({"hnsw_m": 32}, "ef_search", [64, 128, 512])}
    results: dict[str, Any] = {}
    exact: list[set[str]] | None = None
    exact_top1: list[str | None] = []
    for name, (extra, knob, settings) in configs.items():
        before = rss_mb()
        start = time.perf_counter()
        index = FaissIndex(dim=dim, index_type=name, **extra)
        if index.needs_training:
            sample = np.random.default_rng(0).choice(n, size=min(n, 64 * nlist), replace=False)
            index.train(vectors[np.sort(sample)])
        for i in range(0, n, batch):
            index.add(ids[i : i + batch], vectors[i : i + batch])
        build_s = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as tmp:
            index.save(tmp)
            size_mb = sum(p.stat().st_size for p in Path(tmp).iterdir()) / 2**20
        row: dict[str, Any] = {**extra, "build_s": round(build_s, 2), "index_mb": round(size_mb, 1),
                               "peak_rss_growth_mb": round(rss_mb() - before, 1), "search": []}
        for value in settings:
            if knob == "nprobe":
                index.model().nprobe = value
            elif knob == "ef_search":
                index.model().hnsw.efSearch = value
            start = time.perf_counter()
            rows = index.search(queries, k)
            search_s = time.perf_counter() - start
            hits = [{i for i, _ in r} for r in rows]
            if exact is None:
                exact = hits
                exact_top1 = [r[0][0] if r else None for r in rows]
            recall = sum(len(h & t) for h, t in zip(hits, exact, strict=True)) / sum(len(t) for t in exact)
            # what a linker needs: the exact nearest entity is among the approximate top k
            top1 = sum(t in h for t, h in zip(exact_top1, hits, strict=True)) / len(hits)
            row["search"].append({**({knob: value} if knob else {}),
                                  "ms_per_query": round(1000 * search_s / len(queries), 3),
                                  f"recall@{k}_vs_flat": round(recall, 4), f"exact_top1_in_top{k}": round(top1, 4)})
        results[name] = row
        print(name, row, file=sys.stderr, flush=True)
        del index
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kb", type=Path, help="the real KB JSONL (17k entities)")
    ap.add_argument("--synthetic", type=int, default=1_000_000, help="entities of the synthetic KB (0: skip)")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=50_000, help="vectors per add() call")
    ap.add_argument("--report", type=Path, default=Path("reports/kb_index_scale.json"))
    args = ap.parse_args()
    rng = random.Random(0)
    report: dict[str, Any] = {"benchmark": "kb_index_scale", "command": " ".join(["python", *sys.argv]),
                              "environment": environment(), "k": args.k, "collections": {}}
    if args.kb:
        entities = [e for _, e in read_entities(args.kb) if not isinstance(e, str)]
        embedder = Toolbox(load_settings("cpu").tools).get("embedder")
        start = time.perf_counter()
        vectors = embed_batches(embedder.embed, [e.text() for e in entities], batch=256)
        embed_s = time.perf_counter() - start
        sample = rng.sample(entities, min(args.queries, len(entities)))
        queries = embedder.embed([e.name.replace("_", " ") for e in sample])
        report["collections"]["real_kb"] = {
            "entities": len(entities), "embedder": embedder.name, "embed_s": round(embed_s, 1),
            "indexes": measure(vectors, queries, args.k, args.batch)}
        write_report(report, args.report)
    if args.synthetic:
        embedder = HashingEmbedder(dimension=384, cache_size=0)
        names, texts = [], []
        for name, description in synthetic_entities(args.synthetic):
            names.append(name)
            texts.append(f"{name}. {description}")
        start = time.perf_counter()
        vectors = embed_batches(embedder.embed, texts)
        embed_s = time.perf_counter() - start
        del texts
        queries = embedder.embed([perturb(names[i], rng) for i in rng.sample(range(len(names)), args.queries)])
        report["collections"]["synthetic"] = {
            "entities": args.synthetic, "embedder": "hashing (384-d)", "embed_s": round(embed_s, 1),
            "indexes": measure(vectors, queries, args.k, args.batch)}
    report["peak_rss_mb"] = round(rss_mb(), 1)
    write_report(report, args.report)
    print(report)


if __name__ == "__main__":
    main()
