"""Image-text scorers with real models: open_clip on a tiny randomly initialised CLIP saved to a
temporary checkpoint (no CLIP weights ship in any reachable package), and the cue-text proxy with
the packaged MiniLM embedder and RapidOCR."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conformance.image_text_spec import ImageTextConformance
from conformance.images import render_text_image
from PIL import Image

from groundgraph.tools.embedder import SentenceTransformerEmbedder
from groundgraph.tools.errors import ToolUnavailableError
from groundgraph.tools.image_text import CueTextProxyScorer, OpenClipScorer
from groundgraph.tools.images import ImageView
from groundgraph.tools.ocr import RapidOCR

pytestmark = pytest.mark.integration

ARCH = "gg-tiny-clip"  # registered from a JSON file, as a user's own architecture would be
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}


def _save_random_clip(folder: Path, arch: dict[str, Any], seed: int) -> tuple[Path, Path]:
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config = folder / f"{ARCH}.json"
    config.write_text(json.dumps(arch))
    open_clip.add_model_config(config)
    torch.manual_seed(seed)
    model = open_clip.create_model(ARCH)
    checkpoint = folder / "tiny_clip.pt"
    torch.save(model.state_dict(), checkpoint)
    return config, checkpoint


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    import torch

    torch.set_num_threads(2)
    return _save_random_clip(tmp_path_factory.mktemp("tiny_clip"), TINY_CLIP, seed=0)


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clip_images")
    noise = np.random.default_rng(0).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    Image.fromarray(noise).save(d / "noise.png")
    return {"text": render_text_image(d / "text.png"), "noise": d / "noise.png"}


def _clip_scorer(tiny_clip: tuple[Path, Path]) -> OpenClipScorer:
    config, checkpoint = tiny_clip
    return OpenClipScorer(model_name=ARCH, model_config_file=str(config), checkpoint=str(checkpoint))


class TestOpenClipConformance(ImageTextConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def scorer(cls, tiny_clip: tuple[Path, Path]) -> OpenClipScorer:
        return _clip_scorer(tiny_clip).load()

    @pytest.fixture
    def scorable_image(self, images: dict[str, Path]) -> ImageView:
        return ImageView(path=str(images["text"]))


def test_open_clip_score_is_100_times_the_cosine_of_normalised_features(
    tiny_clip: tuple[Path, Path], images: dict[str, Path]
) -> None:
    import open_clip
    import torch

    texts = ["a photo of a cat", "HELLO WORLD"]
    scores = _clip_scorer(tiny_clip).score(ImageView(path=str(images["text"])), texts)

    model, _, preprocess = open_clip.create_model_and_transforms(ARCH, pretrained=str(tiny_clip[1]))
    model.eval()
    with torch.no_grad():
        img = model.encode_image(preprocess(Image.open(images["text"]).convert("RGB")).unsqueeze(0))
        txt = model.encode_text(open_clip.get_tokenizer(ARCH)(texts))
    img = img / img.norm(dim=-1, keepdim=True)
    txt = txt / txt.norm(dim=-1, keepdim=True)
    expected = (100.0 * txt @ img[0]).tolist()
    assert scores == pytest.approx(expected, abs=1e-3)


def test_open_clip_uses_the_checkpoint_not_a_fresh_random_init(
    tiny_clip: tuple[Path, Path], images: dict[str, Path]
) -> None:
    import torch

    view, texts = ImageView(path=str(images["text"])), ["a dog", "a car"]
    torch.manual_seed(123)
    first = _clip_scorer(tiny_clip).score(view, texts)
    torch.manual_seed(456)
    second = _clip_scorer(tiny_clip).score(view, texts)
    assert first == pytest.approx(second, abs=1e-5)


def test_open_clip_scores_depend_on_the_image(tiny_clip: tuple[Path, Path], images: dict[str, Path]) -> None:
    scorer = _clip_scorer(tiny_clip)
    on_text = scorer.score(ImageView(path=str(images["text"])), ["a dog"])[0]
    on_noise = scorer.score(ImageView(path=str(images["noise"])), ["a dog"])[0]
    assert on_text is not None and on_noise is not None and abs(on_text - on_noise) > 1e-3


def test_open_clip_rereads_an_image_file_that_changed(
    tiny_clip: tuple[Path, Path], images: dict[str, Path], tmp_path: Path
) -> None:
    scorer = _clip_scorer(tiny_clip)
    path = tmp_path / "changing.png"
    path.write_bytes(images["text"].read_bytes())
    before = scorer.score(ImageView(path=str(path)), ["a dog"])
    path.write_bytes(images["noise"].read_bytes())
    after = scorer.score(ImageView(path=str(path)), ["a dog"])
    assert after == pytest.approx(scorer.score(ImageView(path=str(images["noise"])), ["a dog"]), abs=1e-5)
    assert before != pytest.approx(after, abs=1e-3)


def test_open_clip_loads_a_local_dir(tiny_clip: tuple[Path, Path], images: dict[str, Path], tmp_path: Path) -> None:
    import torch

    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_CLIP}))
    torch.save(torch.load(tiny_clip[1], weights_only=True), tmp_path / "open_clip_pytorch_model.bin")
    view, texts = ImageView(path=str(images["text"])), ["a dog", "a car"]
    from_dir = OpenClipScorer(model_name=f"local-dir:{tmp_path}").score(view, texts)
    assert from_dir == pytest.approx(_clip_scorer(tiny_clip).score(view, texts), abs=1e-5)


def test_open_clip_checkpoint_of_another_architecture_is_unavailable(
    tiny_clip: tuple[Path, Path], tmp_path: Path
) -> None:
    other = {**TINY_CLIP, "embed_dim": 16}
    _, wrong = _save_random_clip(tmp_path / "other", other, seed=1)
    _save_random_clip(tmp_path / "restore", TINY_CLIP, seed=0)  # the registry is process-wide
    scorer = OpenClipScorer(model_name=ARCH, model_config_file=str(tiny_clip[0]), checkpoint=str(wrong))
    with pytest.raises(ToolUnavailableError, match="could not load its model"):
        scorer.load()


# --- the cue-text proxy with the packaged models --------------------------------------------------
@pytest.fixture(scope="module")
def sign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render_text_image(tmp_path_factory.mktemp("sign") / "sign.png", ("GRAND CENTRAL", "Terminal 1913"))


@pytest.fixture(scope="module")
def proxy() -> CueTextProxyScorer:
    return CueTextProxyScorer(embedder=SentenceTransformerEmbedder(), ocr=RapidOCR())


class TestCueTextProxyRealConformance(ImageTextConformance):
    @pytest.fixture
    def scorer(self, proxy: CueTextProxyScorer) -> CueTextProxyScorer:
        return proxy

    @pytest.fixture
    def scorable_image(self, sign: Path) -> ImageView:
        return ImageView(path=str(sign))


def test_proxy_reads_the_sign_and_ranks_the_matching_entity_first(proxy: CueTextProxyScorer, sign: Path) -> None:
    view = ImageView(path=str(sign))
    assert "GRAND" in proxy.text_view(view).upper() and "CENTRAL" in proxy.text_view(view).upper()
    station, frog = proxy.score(view, ["Grand Central Terminal, a railway station in New York", "a species of frog"])
    assert station is not None and frog is not None and station > frog + 20
