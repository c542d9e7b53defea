"""Image-text scorers: the cue-text proxy with the hashing embedder, open_clip's config and refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conformance.image_text_spec import ImageTextConformance
from conformance.images import bad_image_files, blank_image, render_text_image

from groundgraph.tools.embedder import HashingEmbedder
from groundgraph.tools.errors import ConfigError, InputError, ToolUnavailableError
from groundgraph.tools.image_text import CueTextProxyScorer, OpenClipScorer
from groundgraph.tools.images import ImageView
from groundgraph.tools.ocr import OcrLine

BOX = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]


class CountingOCR:
    """Returns fixed lines and counts how often it was asked."""

    name = "ocr.counting"

    def __init__(self, lines: list[tuple[str, float]]) -> None:
        self.lines = lines
        self.calls = 0

    def read(self, images: Any) -> list[list[OcrLine]]:
        self.calls += 1
        return [[OcrLine(text=t, box=BOX, confidence=c) for t, c in self.lines] for _ in images]


class TestCueTextProxyConformance(ImageTextConformance):
    @pytest.fixture
    def scorer(self) -> CueTextProxyScorer:
        return CueTextProxyScorer(embedder=HashingEmbedder())

    @pytest.fixture
    def scorable_image(self) -> ImageView:
        return ImageView(cues={"caption": "a red stop sign at a street corner", "tags": "sign, street"})


class TestCueTextProxyWithOcrConformance(ImageTextConformance):
    @pytest.fixture
    def scorer(self) -> CueTextProxyScorer:
        return CueTextProxyScorer(embedder=HashingEmbedder(), ocr=CountingOCR([("STOP", 0.95)]))

    @pytest.fixture
    def scorable_image(self, tmp_path: Path) -> ImageView:
        return ImageView(path=str(render_text_image(tmp_path / "sign.png", ("STOP",))))


# --- cue_text_proxy ----------------------------------------------------------------------------
def test_proxy_ranks_the_text_that_matches_the_cues_first() -> None:
    scorer = CueTextProxyScorer(embedder=HashingEmbedder())
    image = ImageView(cues={"caption": "a tiger resting in tall grass", "tags": "animal, tiger, grass"})
    tiger, car, cake = scorer.score(image, ["the tiger, a big cat", "a red sports car", "a chocolate cake"])
    assert tiger is not None and car is not None and cake is not None
    assert tiger > max(car, cake)


def test_proxy_score_is_100_times_the_embedders_cosine() -> None:
    embedder = HashingEmbedder()
    scorer = CueTextProxyScorer(embedder=embedder)
    image = ImageView(cues={"caption": "a tiger", "tags": "animal"})
    vecs = embedder.embed([image.text(), "a tiger in the grass"])
    [score] = scorer.score(image, ["a tiger in the grass"])
    assert score == pytest.approx(100 * float(vecs[0] @ vecs[1]), abs=1e-4)
    assert scorer.scale == "proxy_text_100cos"


def test_proxy_text_view_is_empty_without_cues_or_ocr(tmp_path: Path) -> None:
    scorer = CueTextProxyScorer(embedder=HashingEmbedder())
    image = ImageView(path=str(blank_image(tmp_path / "b.png")), cues={"ocr": "  "})
    assert scorer.text_view(image) == ""
    assert scorer.score(image, ["anything"]) == [None]


def test_proxy_adds_ocr_text_when_the_image_has_a_file_and_no_ocr_cue(tmp_path: Path) -> None:
    ocr = CountingOCR([("STOP", 0.95), ("smudge", 0.1)])
    scorer = CueTextProxyScorer(embedder=HashingEmbedder(), ocr=ocr, ocr_min_confidence=0.5)
    path = str(render_text_image(tmp_path / "sign.png", ("STOP",)))
    assert scorer.text_view(ImageView(path=path, cues={"caption": "a red sign"})) == "a red sign. STOP"
    # an OCR cue that came with the input is used instead of running OCR
    assert scorer.text_view(ImageView(path=path, cues={"ocr": "STOP AHEAD"})) == "STOP AHEAD"
    assert ocr.calls == 1


def test_proxy_runs_ocr_once_per_image_file(tmp_path: Path) -> None:
    ocr = CountingOCR([("STOP", 0.95)])
    scorer = CueTextProxyScorer(embedder=HashingEmbedder(), ocr=ocr)
    image = ImageView(path=str(render_text_image(tmp_path / "sign.png", ("STOP",))))
    first = scorer.score(image, ["stop sign"])
    second = scorer.score(image, ["stop sign", "a banana"])
    assert ocr.calls == 1 and first[0] == pytest.approx(second[0])


def test_proxy_cue_kinds_choose_the_text_view(tmp_path: Path) -> None:
    ocr = CountingOCR([("STOP", 0.95)])
    scorer = CueTextProxyScorer(embedder=HashingEmbedder(), ocr=ocr, cue_kinds=["tags"])
    path = str(render_text_image(tmp_path / "sign.png", ("STOP",)))
    assert scorer.text_view(ImageView(path=path, cues={"caption": "a red sign", "tags": "sign"})) == "sign"
    assert ocr.calls == 0  # 'ocr' is not among the configured kinds


def test_proxy_without_embedder_is_config_error() -> None:
    with pytest.raises(ConfigError, match="needs a text embedder"):
        CueTextProxyScorer().score(ImageView(cues={"caption": "x"}), ["y"])


def test_proxy_bad_image_fails_before_ocr(tmp_path: Path) -> None:
    ocr = CountingOCR([("STOP", 0.95)])
    scorer = CueTextProxyScorer(embedder=HashingEmbedder(), ocr=ocr)
    with pytest.raises(InputError):
        scorer.score(ImageView(path=str(bad_image_files(tmp_path)["truncated"])), ["x"])
    assert ocr.calls == 0


def test_proxy_declares_its_needs() -> None:
    assert CueTextProxyScorer.needs == ("embedder", "ocr")
    assert CueTextProxyScorer.backend == "cue_text_proxy"


# --- open_clip, without weights ----------------------------------------------------------------
def test_open_clip_without_weights_is_unavailable_and_says_what_to_set() -> None:
    scorer = OpenClipScorer()
    with pytest.raises(ToolUnavailableError, match="checkpoint .* or pretrained"):
        scorer.load()
    assert scorer.config.pretrained is None  # never a default that downloads


def test_open_clip_scores_none_for_an_image_without_file_and_loads_nothing() -> None:
    scorer = OpenClipScorer()
    assert scorer.score(ImageView(cues={"caption": "a cat"}), ["a cat", "a dog"]) == [None, None]
    assert not scorer.loaded


def test_open_clip_bad_image_is_input_error_before_loading(tmp_path: Path) -> None:
    scorer = OpenClipScorer(checkpoint=str(tmp_path / "w.pt"))
    for path in bad_image_files(tmp_path / "bad").values():
        with pytest.raises(InputError):
            scorer.score(ImageView(path=str(path)), ["a cat"])
    assert not scorer.loaded


def test_open_clip_missing_checkpoint_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="checkpoint not found"):
        OpenClipScorer(checkpoint=str(tmp_path / "missing.pt")).load()


def test_open_clip_local_dir_without_weights_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": {}}))
    with pytest.raises(ToolUnavailableError, match="no weights file"):
        OpenClipScorer(model_name=f"local-dir:{tmp_path}").load()


@pytest.mark.parametrize(
    "config, match",
    [
        ({"checkpoint": "a.pt", "pretrained": "openai"}, "not both"),
        ({"model_name": "local-dir:/x", "checkpoint": "a.pt"}, "carries its own weights"),
        ({"model_name": "hf-hub:org/m", "pretrained": "openai"}, "carries its own weights"),
        ({"model_name": "ViT-B-32", "model_config_file": "/cfg/tiny.json"}, "registers the architecture 'tiny'"),
        ({"device": "tpu"}, "device"),
        ({"precision": "int4"}, "precision"),
        ({"text_batch_size": 0}, "text_batch_size"),
        ({"no_such_field": True}, "no_such_field"),
    ],
)
def test_open_clip_bad_configs_are_config_errors(config: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        OpenClipScorer(config)


def test_open_clip_missing_architecture_file_is_config_error(tmp_path: Path) -> None:
    (tmp_path / "w.pt").write_bytes(b"")
    scorer = OpenClipScorer(
        model_name="tiny", model_config_file=str(tmp_path / "tiny.json"), checkpoint=str(tmp_path / "w.pt")
    )
    with pytest.raises(ConfigError, match="model_config_file not found"):
        scorer.load()
