"""Evaluation of enriched_caption: image retrieval (AP, R@1, R@10 over articles), match decisions, captions
(CIDEr against reference captions, CLIPScore when a CLIP backend is configured) and latency per query.

Queries are crops, rescales and JPEG re-compressions of corpus images (the OpenEvents setting), plus images
that are in no article (the graph must say so). A query file row is either ready to run::

    {"id": ..., "image": "path.jpg", "article_id": ... or null, "references": [...]}

or a recipe rendered deterministically at eval time (the shipped ``agents/data/news/queries.jsonl``)::

    {"id": ..., "source": "images/rocket.jpg", "ops": [{"op": "crop", "box": [0.1, 0.2, 0.7, 0.8]},
     {"op": "scale", "factor": 0.6}, {"op": "jpeg", "quality": 35}], "article_id": ..., "references": [...]}

``source`` is relative to the query file, absolute, or ``package:<pkg>/<path>``.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from groundgraph.agents.agent import Agent
from groundgraph.agents.evaluation.common import environment, latency_summary
from groundgraph.agents.jsonl import read_records
from groundgraph.graphs.enriched_caption import nodes
from groundgraph.tools.article_corpus import resolve_file
from groundgraph.tools.errors import GroundgraphError, InputError, ToolUnavailableError

#: fusion variant -> graph config overrides, applied to the fuse node only (retrieval is shared)
FUSIONS: dict[str, dict[str, Any]] = {
    "template": {"fusion": "template"},
    "template:event_visual": {"fusion": "template", "template": "event_visual"},
    "template:visual_event": {"fusion": "template", "template": "visual_event"},
    "template:event_why": {"fusion": "template", "template": "event_why"},
    "template:visual_when_where": {"fusion": "template", "template": "visual_when_where"},
    "llm": {"fusion": "llm", "guard": True},
    "llm_unguarded": {"fusion": "llm", "guard": False},
}

#: the shipped query recipes: the OpenEvents setting (crops, rescales, re-compressions)
VARIANTS = ("crop80", "crop60", "crop45", "scale050", "scale160", "jpeg20", "combo")
#: images in no shipped article: the project's rendered sign, and skimage photographs that are not copied
NO_MATCH_SOURCES = ("package:groundgraph.agents/data/sample_sign.png", "package:skimage/data/moon.png",
                    "package:skimage/data/page.png", "package:skimage/data/motorcycle_left.png",
                    "package:skimage/data/text.png", "package:skimage/data/color.png")


# --- query recipes --------------------------------------------------------------------------
def _crop_box(rng: random.Random, frac: float) -> list[float]:
    x0, y0 = rng.uniform(0, 1 - frac), rng.uniform(0, 1 - frac)
    return [round(x0, 4), round(y0, 4), round(x0 + frac, 4), round(y0 + frac, 4)]


def variant_ops(variant: str, rng: random.Random) -> list[dict[str, Any]]:
    """The transforms of one query variant; random crop positions come from ``rng`` (seeded by the caller)."""
    table: dict[str, Callable[[], list[dict[str, Any]]]] = {
        "crop80": lambda: [{"op": "crop", "box": _crop_box(rng, 0.8)}],
        "crop60": lambda: [{"op": "crop", "box": _crop_box(rng, 0.6)}],
        "crop45": lambda: [{"op": "crop", "box": _crop_box(rng, 0.45)}],
        "scale050": lambda: [{"op": "scale", "factor": 0.5}],
        "scale160": lambda: [{"op": "scale", "factor": 1.6}],
        "jpeg20": lambda: [{"op": "jpeg", "quality": 20}],
        "combo": lambda: [{"op": "crop", "box": _crop_box(rng, 0.7)}, {"op": "scale", "factor": 0.6},
                          {"op": "jpeg", "quality": 35}],
    }
    if variant not in table:
        raise InputError(f"unknown query variant {variant!r}; choose from {', '.join(table)}")
    return table[variant]()


def query_specs(references: Path, corpus_file: Path, seed: int = 0, variants: Iterable[str] = VARIANTS,
                no_match: Iterable[str] = NO_MATCH_SOURCES) -> list[dict[str, Any]]:
    """Deterministic query recipes for every referenced corpus image, plus no-match queries."""
    files = {}
    for _, row, err in read_records(corpus_file):
        if err is None:
            for im in row.get("images", []):
                files[im["id"]] = im["file"]
    specs = []
    for n, (_, row, err) in enumerate(read_records(references)):
        if err:
            raise InputError(f"{references}: {err}")
        for v in variants:
            rng = random.Random(f"{seed}:{n}:{v}")
            specs.append({"id": f"{row['image_id']}-{v}", "variant": v, "source": files[row["image_id"]],
                          "ops": variant_ops(v, rng), "article_id": row["article_id"], "image_id": row["image_id"],
                          "references": row["references"]})
    for ref in no_match:
        specs.append({"id": f"nomatch-{Path(ref).stem}", "variant": "no_match", "source": ref, "ops": [],
                      "article_id": None, "image_id": None, "references": []})
    return specs


def apply_ops(image: Any, ops: list[dict[str, Any]]) -> Any:
    """Apply crop / scale / jpeg / gray operations to a PIL image, deterministically."""
    import io

    from PIL import Image

    im = image.convert("RGB")
    for op in ops:
        kind = op.get("op")
        if kind == "crop":
            x0, y0, x1, y1 = op["box"]
            w, h = im.size
            im = im.crop((round(x0 * w), round(y0 * h), round(x1 * w), round(y1 * h)))
        elif kind == "scale":
            f = float(op["factor"])
            im = im.resize((max(8, round(im.width * f)), max(8, round(im.height * f))), Image.Resampling.BILINEAR)
        elif kind == "jpeg":
            buf = io.BytesIO()
            im.save(buf, format="JPEG", quality=int(op["quality"]))
            im = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
        elif kind == "gray":
            im = im.convert("L").convert("RGB")
        else:
            raise InputError(f"unknown query op {kind!r}")
    return im


def default_query_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("groundgraph")) / "queries"


def load_queries(path: Path, render_dir: Path | None = None, limit: int | None = None) -> tuple[list[dict[str, Any]],
                                                                                               list[str]]:
    """Query records with an ``image`` path (recipes rendered into ``render_dir``), and the recipes skipped
    because their source is unavailable (e.g. a package that is not installed)."""
    from PIL import Image

    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    out_dir = render_dir or default_query_dir()
    for lineno, row, err in read_records(path):
        if err or not isinstance(row, dict) or not ("image" in row or "source" in row):
            raise InputError(f"{path}:{lineno} is not a query record ({err or 'needs image or source'})")
        if "image" not in row:
            try:
                src = resolve_file(row["source"], path.parent)
                if not src.is_file():
                    raise InputError(f"{src} not found")
            except InputError as exc:
                skipped.append(f"{row.get('id')}: {exc}")
                continue
            key = hashlib.sha256(json.dumps([row["source"], row.get("ops", []), src.stat().st_size],
                                            sort_keys=True).encode()).hexdigest()[:12]
            target = out_dir / f"{row['id']}-{key}.jpg"
            if not target.is_file():
                out_dir.mkdir(parents=True, exist_ok=True)
                with Image.open(src) as im:
                    apply_ops(im, row.get("ops", [])).save(target, quality=95)
            row = {**row, "image": str(target)}
        rows.append(row)
        if limit and len(rows) >= limit:
            break
    return rows, skipped


# --- metrics --------------------------------------------------------------------------------
def article_rank(retrieved: list[dict[str, Any]], article_id: str) -> int | None:
    """1-based rank of the gold article in the retrieved list (articles deduplicated), None if absent."""
    seen: list[str] = []
    for r in retrieved:
        if r["article_id"] not in seen:
            seen.append(r["article_id"])
    return seen.index(article_id) + 1 if article_id in seen else None


def retrieval_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """AP (one relevant article per query: 1/rank), R@1 and R@10 over queries with a gold article."""
    gold = [r for r in rows if r["article_id"]]
    if not gold:
        return {"queries": 0}
    ranks = [r["rank"] for r in gold]
    emb = [r["retrieval_rank"] for r in gold]
    return {
        "queries": len(gold),
        "AP": round(sum(1 / k for k in ranks if k) / len(gold), 4),
        "R@1": round(sum(k == 1 for k in ranks) / len(gold), 4),
        "R@10": round(sum(k is not None and k <= 10 for k in ranks) / len(gold), 4),
        "R@1_before_verify": round(sum(k == 1 for k in emb) / len(gold), 4),
    }


def match_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How often the graph accepted the right article, accepted a wrong one, or said 'no match'."""
    gold = [r for r in rows if r["article_id"]]
    none = [r for r in rows if not r["article_id"]]
    out: dict[str, Any] = {}
    if gold:
        out["matched_right"] = round(sum(r["matched_article"] == r["article_id"] for r in gold) / len(gold), 4)
        out["matched_wrong"] = round(sum(bool(r["matched_article"]) and r["matched_article"] != r["article_id"]
                                         for r in gold) / len(gold), 4)
        out["said_no_match"] = round(sum(r["matched_article"] is None for r in gold) / len(gold), 4)
        out["match_by"] = {k: sum(r["match_by"] == k for r in gold) for k in ("inliers", "similarity", "none")}
    if none:
        out["no_match_queries"] = len(none)
        out["no_match_said_so"] = round(sum(r["matched_article"] is None for r in none) / len(none), 4)
    return out


def _simple_tokenize(captions: dict[str, list[str]]) -> dict[str, list[str]]:
    return {k: [" ".join(re.findall(r"[a-z0-9]+", c.lower())) for c in v] for k, v in captions.items()}


def cider(candidates: Mapping[str, str], references: Mapping[str, list[str]]) -> dict[str, Any]:
    """Corpus CIDEr-D (pycocoevalcap) of the candidates against their references, with PTB tokenisation
    (Java); without Java a lowercase word tokeniser is used and the report says so."""
    try:
        from pycocoevalcap.cider.cider import Cider
    except ImportError:
        raise ToolUnavailableError("CIDEr needs pycocoevalcap: pip install pycocoevalcap==1.2") from None
    ids = [k for k in candidates if references.get(k)]
    if not ids:
        return {"CIDEr": None, "captions": 0}
    gts = {k: list(references[k]) for k in ids}
    res = {k: [candidates[k]] for k in ids}
    if shutil.which("java"):
        from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

        tok = PTBTokenizer()
        gts_t = tok.tokenize({k: [{"caption": c} for c in v] for k, v in gts.items()})
        res_t = tok.tokenize({k: [{"caption": c} for c in v] for k, v in res.items()})
        tokenizer = "ptb (pycocoevalcap, java)"
    else:
        gts_t, res_t, tokenizer = _simple_tokenize(gts), _simple_tokenize(res), "lowercase words (no java found)"
    score, per = Cider().compute_score(gts_t, res_t)
    return {"CIDEr": round(float(score), 4), "captions": len(ids), "tokenizer": tokenizer,
            "per_caption": {k: round(float(s), 4) for k, s in zip(ids, per, strict=True)}}


def clip_score(image_text: Any, pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """CLIPScore (Hessel et al. 2021): 2.5 x max(cosine(image, caption), 0), averaged; needs a CLIP scorer."""
    if image_text is None or getattr(image_text, "scale", None) != "clip_100cos":
        return {"CLIPScore": None, "why": "no CLIP image_text backend configured (scale clip_100cos)"}
    from groundgraph.tools.images import ImageView

    scores = []
    for image, caption in pairs:
        s = image_text.score(ImageView(path=image), [caption])[0]
        if s is not None:
            scores.append(2.5 * max(s / 100.0, 0.0))
    return {"CLIPScore": round(sum(scores) / len(scores), 4) if scores else None, "captions": len(scores),
            "backend": image_text.name}


# --- running --------------------------------------------------------------------------------
def run_state(agent: Agent, record: Mapping[str, Any]) -> tuple[dict[str, Any], float]:
    """Run the graph on one query; return its final state (for re-fusing) and the seconds it took."""
    model = agent.validate({k: record[k] for k in ("image", "id", "visual_cues") if k in record})
    state = agent.spec.initial_state(model, agent.config)
    cfg = {"configurable": {"thread_id": uuid.uuid4().hex}, "recursion_limit": agent.spec.recursion_limit(agent.config)}
    t0 = time.perf_counter()
    final = agent.graph.invoke(state, config=cfg, context=agent.context)
    return dict(final), time.perf_counter() - t0


def refuse(agent: Agent, state: Mapping[str, Any], overrides: Mapping[str, Any]) -> tuple[dict[str, Any], float]:
    """The graph's own fuse node again on a finished run's state, with other fusion settings."""
    from langgraph.runtime import Runtime

    ctx = replace(agent.context, config=agent.config.model_copy(update=dict(overrides)))
    t0 = time.perf_counter()
    out = nodes.fuse(state, Runtime(context=ctx))  # type: ignore[arg-type]
    return out["result"], time.perf_counter() - t0


def evaluate(agent: Agent, queries: list[dict[str, Any]], fusions: Iterable[str] = ("template",), *,
             progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Run every query once through the graph, then each fusion variant's fuse node on the same state."""
    names = list(fusions)
    for name in names:
        if name not in FUSIONS:
            raise InputError(f"unknown fusion variant {name!r}; choose from {', '.join(FUSIONS)}")
    wants_llm = any(FUSIONS[n]["fusion"] == "llm" for n in names)
    if wants_llm and agent.toolbox.get("llm") is None:
        raise InputError("an llm fusion variant was asked for, but the profile configures no llm tool")
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    captions: dict[str, dict[str, str]] = {n: {} for n in names}
    fuse_seconds: dict[str, list[float]] = {n: [] for n in names}
    fusion_kinds: dict[str, dict[str, int]] = {n: {} for n in names}
    start = time.perf_counter()
    for i, q in enumerate(queries, 1):
        try:
            state, seconds = run_state(agent, q)
        except GroundgraphError as exc:
            errors.append({"id": q.get("id"), "error": f"{type(exc).__name__}: {exc}"})
            if progress:
                progress(i, len(queries))
            continue
        out = agent.spec.read_output(state, "eval").model_dump(mode="json")
        gold = q.get("article_id")
        rows.append({"id": q["id"], "variant": q.get("variant"), "article_id": gold, "seconds": seconds,
                     "rank": article_rank(out["retrieved"], gold) if gold else None,
                     "retrieval_rank": article_rank(sorted(out["retrieved"], key=lambda r: r["retrieval_rank"]), gold)
                     if gold else None,
                     "matched_article": out["article"]["id"] if out["article"] else None, "match_by": out["match_by"],
                     "caption": out["caption"], "visual_source": out["visual_source"],
                     "tool_ms": _tool_ms(state.get("trace", []))})
        for n in names:
            result, fs = refuse(agent, state, FUSIONS[n])
            captions[n][q["id"]] = result["caption"]
            fuse_seconds[n].append(fs)
            fusion_kinds[n][result["fusion"]] = fusion_kinds[n].get(result["fusion"], 0) + 1
        if progress:
            progress(i, len(queries))
    wall = time.perf_counter() - start
    refs = {q["id"]: q.get("references") or [] for q in queries}
    by_variant: dict[str, Any] = {}
    for v in sorted({r["variant"] for r in rows if r["article_id"]}):
        by_variant[v] = retrieval_metrics([r for r in rows if r["variant"] == v])
    caption_report = {}
    for n in names:
        c = cider(captions[n], refs)
        caption_report[n] = {"CIDEr": c["CIDEr"], "captions": c["captions"], "tokenizer": c.get("tokenizer"),
                             "fusion_outcomes": fusion_kinds[n], "fuse_latency": latency_summary(fuse_seconds[n]),
                             "examples": {k: captions[n][k] for k in list(captions[n])[:3]}}
    image_text = agent.toolbox.get("image_text")
    first = names[0] if names else None
    return {
        "queries": len(queries), "errors": len(errors), "error_examples": errors[:5],
        "retrieval": retrieval_metrics(rows), "retrieval_by_variant": by_variant, "matching": match_metrics(rows),
        "captions": caption_report,
        "clip_score": clip_score(image_text, [(q["image"], captions[first][q["id"]]) for q in queries
                                              if first and q["id"] in captions[first] and q.get("article_id")]),
        "latency": latency_summary([r["seconds"] for r in rows]), "wall_seconds": round(wall, 2),
        "tool_latency_by_node": {n: latency_summary([r["tool_ms"][n] / 1000 for r in rows if n in r["tool_ms"]])
                                 for n in sorted({n for r in rows for n in r["tool_ms"]})},
        "rows": rows,
    }


def _tool_ms(trace: list[dict[str, Any]]) -> dict[str, float]:
    """Milliseconds spent in tool calls, per node, from a run's trace events."""
    out: dict[str, float] = {}
    for e in trace:
        out[e["node"]] = out.get(e["node"], 0.0) + sum(c.get("latency_ms", 0.0) for c in e.get("tool_calls", []))
    return out


def report(agent: Agent, queries: list[dict[str, Any]], *, corpus: str, queries_path: str,
           fusions: Iterable[str] = ("template",), skipped: list[str] | None = None,
           progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    out = {"graph": "enriched_caption", "corpus": corpus, "queries_file": queries_path,
           "profile": agent.settings.profile, "environment": environment(),
           "tools": {r: c.get("backend") for r, c in agent.toolbox.configs.items()},
           "config": agent.config.model_dump(mode="json"), "skipped_queries": skipped or [],
           "versions": _versions()}
    out.update(evaluate(agent, queries, fusions, progress=progress))
    return out


def _versions() -> dict[str, str | None]:
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for pkg in ("pycocoevalcap", "opencv-python-headless", "faiss-cpu", "sentence-transformers", "llama-cpp-python"):
        try:
            found[pkg] = version(pkg)
        except PackageNotFoundError:
            found[pkg] = None
    return found
