"""Image encoders: the OpenCV global descriptors on the shipped news photographs, configs and refusals."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from groundgraph.tools.errors import ConfigError, InputError, ToolUnavailableError
from groundgraph.tools.image_features import (
    ImageEncoder,
    OpenClipImageEncoder,
    OpenCVGlobalEncoder,
    check_same_space,
)

NEWS = Path(str(resources.files("groundgraph.agents") / "data" / "news" / "images"))
PHOTOS = sorted(NEWS.glob("*.jpg"))


@pytest.fixture(scope="module")
def encoder() -> OpenCVGlobalEncoder:
    return OpenCVGlobalEncoder()


@pytest.fixture(scope="module")
def corpus_vectors(encoder: OpenCVGlobalEncoder) -> np.ndarray:
    return encoder.encode([str(p) for p in PHOTOS])


def test_satisfies_the_protocol_and_names_its_space(encoder: OpenCVGlobalEncoder) -> None:
    assert isinstance(encoder, ImageEncoder)
    assert encoder.name == "image_features.opencv"
    assert encoder.space.startswith("opencv:") and "hsv_hist" in encoder.space
    assert OpenCVGlobalEncoder(descriptors=["gist"]).space != encoder.space


def test_vectors_are_unit_rows_of_the_declared_dimension(encoder: OpenCVGlobalEncoder,
                                                         corpus_vectors: np.ndarray) -> None:
    assert corpus_vectors.shape == (len(PHOTOS), encoder.dim) and corpus_vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(corpus_vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(encoder.encode([str(PHOTOS[0])]), corpus_vectors[:1])  # deterministic


@pytest.mark.parametrize("descriptor", ["hsv_hist", "gray_hist", "hog", "gist", "tiny"])
def test_every_descriptor_has_its_dimension(descriptor: str) -> None:
    enc = OpenCVGlobalEncoder(descriptors=[descriptor])
    v = enc.encode([str(PHOTOS[0])])
    assert v.shape == (1, enc.dim) and abs(float(np.linalg.norm(v)) - 1) < 1e-5


def test_a_recompressed_crop_finds_its_source_photograph(encoder: OpenCVGlobalEncoder, corpus_vectors: np.ndarray,
                                                         tmp_path: Path) -> None:
    for i, photo in enumerate(PHOTOS):
        with Image.open(photo) as im:
            w, h = im.size
            query = im.convert("RGB").crop((w // 10, h // 8, w * 8 // 10, h * 9 // 10)).resize((w // 2, h // 2))
        path = tmp_path / f"q{i}.jpg"
        query.save(path, quality=40)
        sims = corpus_vectors @ encoder.encode([str(path)])[0]
        assert i in np.argsort(-sims)[:3], photo.name  # the first stage needs recall; geometry fixes the order


def test_arrays_and_pil_images_are_accepted(encoder: OpenCVGlobalEncoder) -> None:
    with Image.open(PHOTOS[0]) as im:
        rgb = im.convert("RGB")
        a, b = encoder.encode([rgb, np.asarray(rgb)])
    assert np.allclose(a, b)


def test_no_images_no_vectors(encoder: OpenCVGlobalEncoder) -> None:
    assert encoder.encode([]).shape == (0, encoder.dim)


def test_bad_inputs_are_input_errors(encoder: OpenCVGlobalEncoder, tmp_path: Path) -> None:
    (tmp_path / "bad.jpg").write_text("not an image")
    with pytest.raises(InputError, match="image 0"):
        encoder.encode([str(tmp_path / "bad.jpg")])
    with pytest.raises(InputError, match="not a single image"):
        encoder.encode(str(PHOTOS[0]))  # type: ignore[arg-type]


@pytest.mark.parametrize(("config", "match"), [
    ({"descriptors": []}, "empty"),
    ({"descriptors": ["hog", "hog"]}, "repeat"),
    ({"descriptors": ["hog"], "weights": [1.0, 2.0]}, "2 weights for 1"),
    ({"descriptors": ["sift"]}, "descriptors"),
    ({"device": "cuda"}, "CPU only"),
])
def test_bad_configs_are_config_errors(config: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        OpenCVGlobalEncoder(config)


def test_weights_change_the_vectors() -> None:
    path = [str(PHOTOS[0])]
    even = OpenCVGlobalEncoder(descriptors=["hsv_hist", "hog"]).encode(path)
    skew = OpenCVGlobalEncoder(descriptors=["hsv_hist", "hog"], weights=[1.0, 3.0]).encode(path)
    assert not np.allclose(even, skew)


def test_spaces_must_match() -> None:
    enc = OpenCVGlobalEncoder()
    check_same_space(enc, enc.space)
    with pytest.raises(ConfigError, match="rebuild the index"):
        check_same_space(enc, "open_clip:ViT-B-32:openai")


def test_langchain_tool_compares_images(encoder: OpenCVGlobalEncoder) -> None:
    tool = encoder.as_langchain_tool()
    out = tool.invoke({"image_path": str(PHOTOS[0]), "other_paths": [str(PHOTOS[0]), str(PHOTOS[1])]})
    assert out[0]["cosine"] == pytest.approx(1.0, abs=1e-4) and out[1]["cosine"] < 1.0


def test_open_clip_without_weights_is_unavailable_and_says_what_to_set() -> None:
    enc = OpenClipImageEncoder()
    assert enc.space == "open_clip:ViT-B-32:"
    with pytest.raises(ToolUnavailableError, match="checkpoint"):
        enc.encode([str(PHOTOS[0])])


def test_open_clip_config_keeps_the_scorers_rules() -> None:
    with pytest.raises(ConfigError, match="not both"):
        OpenClipImageEncoder(checkpoint="a.pt", pretrained="openai")
