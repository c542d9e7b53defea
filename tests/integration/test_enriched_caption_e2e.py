"""enriched_caption end to end on the shipped news corpus with real OpenCV features, the packaged MiniLM
embedder and RapidOCR: matches, a query in no article, bad images, stored traces, and the open_clip encoder
on a tiny randomly initialised CLIP."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from groundgraph.agents.agent import Agent
from groundgraph.agents.runs import RunStore
from groundgraph.agents.settings import load_settings
from groundgraph.graphs.enriched_caption import SPEC
from groundgraph.tools.article_corpus import ArticleCorpus
from groundgraph.tools.embedder import SentenceTransformerEmbedder
from groundgraph.tools.errors import InputError
from groundgraph.tools.geometric import OpenCVGeometricVerifier
from groundgraph.tools.image_features import OpenClipImageEncoder, OpenCVGlobalEncoder
from groundgraph.tools.ocr import RapidOCR

pytestmark = pytest.mark.integration

AGENTS_DATA = Path(str(resources.files("groundgraph.agents") / "data"))
NEWS = AGENTS_DATA / "news"


class Box(dict):  # type: ignore[type-arg]
    """Tools by role, built here directly (the profile's toolbox builds the same from config)."""

    @property
    def configs(self) -> dict[str, dict[str, Any]]:
        return {r: {"backend": t.backend} for r, t in self.items() if t is not None}


@pytest.fixture(scope="module")
def tools(tmp_path_factory: pytest.TempPathFactory) -> Box:
    cache = tmp_path_factory.mktemp("corpus_cache")
    corpus = ArticleCorpus(source="package:groundgraph.agents/data/news", cache_dir=str(cache),
                           image_features=OpenCVGlobalEncoder())
    return Box(corpus=corpus, embedder=SentenceTransformerEmbedder(), geometric=OpenCVGeometricVerifier(),
               ocr=RapidOCR())


@pytest.fixture(scope="module")
def agent(tools: Box, tmp_path_factory: pytest.TempPathFactory) -> Agent:
    store = RunStore(tmp_path_factory.mktemp("traces") / "traces.sqlite")
    return Agent(SPEC, load_settings("cpu"), toolbox=tools, store=store)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def queries(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("queries")
    out = {}
    for name, box, scale, quality in (("rocket", (80, 40, 560, 400), 0.6, 35), ("grace_hopper", (40, 60, 470, 560), 0.5,
                                                                                 30),
                                      ("summer_palace", (0, 0, 400, 300), 1.3, 50)):
        with Image.open(NEWS / "images" / f"{name}.jpg") as im:
            crop = im.convert("RGB").crop(box)
            crop = crop.resize((round(crop.width * scale), round(crop.height * scale)))
        out[name] = d / f"{name}.jpg"
        crop.save(out[name], quality=quality)
    return out


@pytest.mark.parametrize(("name", "article", "year"), [
    ("rocket", "spacex-dscovr-2015", "2015"), ("grace_hopper", "navy-hopper-1986", "1986"),
    ("summer_palace", "unesco-summer-palace-1998", "1998"),
])
def test_a_crop_of_a_corpus_photo_is_captioned_from_its_article(agent: Agent, queries: dict[str, Path], name: str,
                                                                 article: str, year: str) -> None:
    result = agent.invoke({"image": str(queries[name]), "id": name})
    assert result.matched and result.match_by == "inliers"
    assert result.article is not None and result.article.id == article
    assert result.retrieved[0].image_id == name and (result.retrieved[0].inliers or 0) >= 25
    assert year in result.caption and result.fusion == "template"
    assert result.facts is not None and year in result.facts.when
    assert result.visual_source == f"the caption of corpus image {name}"
    covered = {i for p in result.passages for i in range(*p.sentences)}
    assert "window" in {p.kind for p in result.passages} and 0 in covered  # the lead is always among them


def test_the_trace_shows_retrieved_images_inliers_and_passages(agent: Agent, queries: dict[str, Path]) -> None:
    result = agent.invoke({"image": str(queries["rocket"])})
    events = {e.node: e for e in agent.trace(result.run_id)}
    assert list(events) == ["retrieve", "verify", "fetch_visual_cue", "select", "fuse"]
    retrieved = events["retrieve"].model_extra["retrieved"]  # type: ignore[index]
    assert retrieved[0]["image_id"] and isinstance(retrieved[0]["score"], float)
    assert events["verify"].scores["inliers"]["passed"] is True
    assert events["select"].model_extra["passages"]  # type: ignore[index]
    assert events["fuse"].model_extra["caption"] == result.caption  # type: ignore[index]
    assert all(c["latency_ms"] >= 0 for e in events.values() for c in e.tool_calls)


def test_an_image_in_no_article_says_so_and_captions_from_its_text(agent: Agent) -> None:
    result = agent.invoke({"image": str(AGENTS_DATA / "sample_sign.png")})
    assert not result.matched and result.article is None and result.match_by == "none"
    assert result.fusion == "no_match"
    assert "GRAND" in result.caption.upper() and "CENTRAL" in result.caption.upper()
    assert "OCR" in result.visual_source
    verify = next(e for e in agent.trace(result.run_id) if e.node == "verify")
    assert verify.decision == "no match"


def test_corrupt_and_huge_images_are_refused_and_a_batch_goes_on(agent: Agent, queries: dict[str, Path],
                                                                 tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes((NEWS / "images" / "rocket.jpg").read_bytes()[:200])
    huge = tmp_path / "huge.png"
    Image.new("1", (9000, 5000)).save(huge)
    for bad in (corrupt, huge, tmp_path / "missing.jpg"):
        with pytest.raises(InputError):
            agent.invoke({"image": str(bad)})
    items = agent.batch([{"id": "bad", "image": str(huge)}, {"id": "good", "image": str(queries["rocket"])}])
    assert [(i.id, i.ok) for i in items] == [("bad", False), ("good", True)]
    assert items[0].error_type == "InputError"


def test_template_and_llm_fusion_with_the_packaged_chat_model(tools: Box, queries: dict[str, Path]) -> None:
    from groundgraph.tools.llm import LlamaCppLLM

    llm_tools = Box({**tools, "llm": LlamaCppLLM()})
    settings = load_settings("cpu", graphs={"enriched_caption": {"fusion": "llm"}})
    agent = Agent(SPEC, settings, toolbox=llm_tools, trace=False)  # type: ignore[arg-type]
    result = agent.invoke({"image": str(queries["grace_hopper"])})
    assert result.llm_calls == 1 and result.fusion in ("llm", "template_after_guard")
    if result.fusion == "llm":  # the guard let it through: the year and the name survived
        assert "1986" in result.caption and "Hopper" in result.caption
    else:
        assert result.guard_problems and "1986" in result.caption


def test_registered_plugin_loads_through_load_agent() -> None:
    from groundgraph.agents.registry import available_graphs

    if "enriched_caption" not in available_graphs():
        pytest.skip("enriched_caption is not registered as a groundgraph.graphs entry point yet")
    from groundgraph.agents.registry import graph_spec

    assert graph_spec("enriched_caption") is SPEC


ARCH = "gg-tiny-clip-ec"
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}


def test_open_clip_image_encoder_builds_and_searches_a_corpus(tmp_path: Path) -> None:
    import open_clip
    import torch

    config = tmp_path / f"{ARCH}.json"
    config.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(config)
    torch.manual_seed(0)
    checkpoint = tmp_path / "tiny.pt"
    torch.save(open_clip.create_model(ARCH).state_dict(), checkpoint)
    encoder = OpenClipImageEncoder(model_name=ARCH, model_config_file=str(config), checkpoint=str(checkpoint))
    assert encoder.dim == 32 and encoder.space == f"open_clip:{ARCH}:{checkpoint}"
    corpus = ArticleCorpus(source=str(NEWS), cache_dir=str(tmp_path / "cache"), image_features=encoder)
    corpus.build()
    assert len(corpus) == 17
    hit = corpus.search(str(NEWS / "images" / "coffee.jpg"), k=3)[0]
    assert hit.image_id == "coffee" and hit.score == pytest.approx(1.0, abs=1e-4)  # random weights, same pixels
    a, b = encoder.encode([str(NEWS / "images" / "coffee.jpg")] * 2)
    assert float(a @ b) == pytest.approx(1.0, abs=1e-5)
