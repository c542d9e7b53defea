"""The enriched_caption evaluation: query recipes, rendering, retrieval and match metrics, CIDEr."""

from __future__ import annotations

import json
import random
from importlib import resources
from pathlib import Path

import pytest
from PIL import Image

from groundgraph.agents.evaluation import enriched_caption as ec
from groundgraph.tools.errors import InputError

NEWS = Path(str(resources.files("groundgraph.agents") / "data" / "news"))


def test_recipes_are_deterministic_and_match_the_shipped_file(tmp_path: Path) -> None:
    specs = ec.query_specs(NEWS / "references.jsonl", NEWS / "articles.jsonl", seed=0)
    assert specs == ec.query_specs(NEWS / "references.jsonl", NEWS / "articles.jsonl", seed=0)
    shipped = [json.loads(line) for line in (NEWS / "queries.jsonl").read_text().splitlines()]
    assert specs == shipped
    assert len(specs) == 17 * len(ec.VARIANTS) + len(ec.NO_MATCH_SOURCES)
    assert ec.query_specs(NEWS / "references.jsonl", NEWS / "articles.jsonl", seed=1) != specs


def test_crop_boxes_stay_inside_the_image() -> None:
    rng = random.Random(3)
    for _ in range(100):
        x0, y0, x1, y1 = ec.variant_ops("crop45", rng)[0]["box"]
        assert 0 <= x0 < x1 <= 1.0001 and 0 <= y0 < y1 <= 1.0001 and abs(x1 - x0 - 0.45) < 1e-3
    with pytest.raises(InputError, match="unknown query variant"):
        ec.variant_ops("blur", rng)


def test_ops_crop_scale_and_recompress() -> None:
    im = Image.new("RGB", (200, 100), "red")
    out = ec.apply_ops(im, [{"op": "crop", "box": [0.5, 0.0, 1.0, 0.5]}, {"op": "scale", "factor": 2.0},
                            {"op": "jpeg", "quality": 20}])
    assert out.size == (200, 100) and out.mode == "RGB"
    with pytest.raises(InputError, match="unknown query op"):
        ec.apply_ops(im, [{"op": "swirl"}])


def test_recipes_render_once_and_unavailable_sources_are_skipped(tmp_path: Path) -> None:
    rows = [{"id": "q1", "source": "images/rocket.jpg", "ops": [{"op": "scale", "factor": 0.5}], "article_id": "a"},
            {"id": "q2", "source": "package:no_such_pkg_xyz/x.png", "ops": [], "article_id": None},
            {"id": "q3", "image": "/ready/made.jpg", "article_id": None}]
    qfile = NEWS / "queries.jsonl"  # sources resolve against the query file's folder: write beside a copy
    local = tmp_path / "news"
    (local / "images").mkdir(parents=True)
    (local / "images" / "rocket.jpg").write_bytes((qfile.parent / "images" / "rocket.jpg").read_bytes())
    (local / "q.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    got, skipped = ec.load_queries(local / "q.jsonl", tmp_path / "render")
    assert [r["id"] for r in got] == ["q1", "q3"] and skipped[0].startswith("q2:")
    rendered = Path(got[0]["image"])
    assert Image.open(rendered).size == (320, 214)
    stamp = rendered.stat().st_mtime_ns
    ec.load_queries(local / "q.jsonl", tmp_path / "render")
    assert rendered.stat().st_mtime_ns == stamp
    (local / "bad.jsonl").write_text('{"id": "x"}\n')
    with pytest.raises(InputError, match="not a query record"):
        ec.load_queries(local / "bad.jsonl", tmp_path / "render")


def test_article_rank_deduplicates_articles() -> None:
    retrieved = [{"article_id": "a"}, {"article_id": "a"}, {"article_id": "b"}]
    assert ec.article_rank(retrieved, "b") == 2 and ec.article_rank(retrieved, "z") is None


def test_retrieval_and_match_metrics() -> None:
    rows = [
        {"article_id": "a", "rank": 1, "retrieval_rank": 2, "matched_article": "a", "match_by": "inliers"},
        {"article_id": "b", "rank": 4, "retrieval_rank": 4, "matched_article": None, "match_by": "none"},
        {"article_id": "c", "rank": None, "retrieval_rank": None, "matched_article": "x", "match_by": "similarity"},
        {"article_id": None, "rank": None, "retrieval_rank": None, "matched_article": None, "match_by": "none"},
    ]
    r = ec.retrieval_metrics(rows)
    assert r == {"queries": 3, "AP": round((1 + 0.25) / 3, 4), "R@1": round(1 / 3, 4), "R@10": round(2 / 3, 4),
                 "R@1_before_verify": 0.0}
    m = ec.match_metrics(rows)
    assert (m["matched_right"], m["matched_wrong"], m["said_no_match"]) == (round(1 / 3, 4),) * 3
    assert m["no_match_said_so"] == 1.0


def test_cider_rewards_the_caption_closer_to_the_references() -> None:
    refs = {"1": ["a rocket lifts off from cape canaveral in 2015", "the falcon 9 rocket launch in 2015"],
            "2": ["a tabby cat named chelsea was adopted", "chelsea the cat finds a home"]}
    good = ec.cider({"1": "a falcon 9 rocket lifts off from cape canaveral in 2015", "2": "chelsea the cat adopted"},
                    refs)
    bad = ec.cider({"1": "a bowl of soup on a table", "2": "a bowl of soup on a table"}, refs)
    assert good["CIDEr"] > bad["CIDEr"] >= 0 and good["captions"] == 2
    assert set(good["per_caption"]) == {"1", "2"}


def test_clip_score_needs_a_clip_backend() -> None:
    assert ec.clip_score(None, [("x.jpg", "a caption")])["CLIPScore"] is None
