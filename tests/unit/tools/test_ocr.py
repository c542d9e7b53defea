"""OCR: shared validation and batching (through a fake backend), configs, tesseract's line grouping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conformance.images import TEXT_LINES, bad_image_files, render_text_image
from conformance.ocr_spec import OcrConformance
from PIL import Image

from groundgraph.tools.errors import ConfigError, InputError, ToolUnavailableError
from groundgraph.tools.ocr import EasyOCR, OcrLine, RapidOCR, TesseractOCR, _OcrBackend, lines_to_text
from groundgraph.tools.registry import available_tools, tool_class

REAL_BACKENDS = [EasyOCR, RapidOCR, TesseractOCR]


class FakeOCR(_OcrBackend):
    """Reads TEXT_LINES off any image that is not blank; no model."""

    backend = "fake"

    def _load(self) -> Any:
        self.load_calls = getattr(self, "load_calls", 0) + 1
        return True

    def _read_one(self, image: Image.Image) -> list[OcrLine]:
        if np.asarray(image).std() == 0:
            return []
        confidences = (0.9, 0.6)
        return [
            self._line(f" {text} ", [(10, 10 + 80 * i), (300, 10 + 80 * i), (300, 60 + 80 * i), (10, 60 + 80 * i)], c)
            for i, (text, c) in enumerate(zip(TEXT_LINES, confidences, strict=True))
        ]


class TestFakeOcrConformance(OcrConformance):
    registered = False

    @pytest.fixture
    def ocr(self) -> FakeOCR:
        return FakeOCR()


@pytest.fixture
def text_image(tmp_path: Path) -> Path:
    return render_text_image(tmp_path / "text.png")


def test_backends_are_registered_under_their_names() -> None:
    assert {"ocr.easyocr", "ocr.rapidocr", "ocr.tesseract"} <= set(available_tools())
    for cls in REAL_BACKENDS:
        assert tool_class(f"ocr.{cls.backend}") is cls


@pytest.mark.parametrize("cls", REAL_BACKENDS)
@pytest.mark.parametrize("bad", ["missing", "empty", "textfile", "garbage", "truncated", "directory"])
def test_real_backends_refuse_bad_images_before_loading(cls: type, bad: str, tmp_path: Path, text_image: Path) -> None:
    tool = cls()
    with pytest.raises(InputError, match="image 1") as err:
        tool.read([text_image, bad_image_files(tmp_path / "bad")[bad]])
    assert not tool.loaded
    assert "Traceback" not in str(err.value)


@pytest.mark.parametrize("cls", REAL_BACKENDS)
def test_real_backends_empty_batch_loads_nothing(cls: type) -> None:
    tool = cls()
    assert tool.read([]) == []
    assert not tool.loaded


@pytest.mark.parametrize("cls", REAL_BACKENDS)
@pytest.mark.parametrize(
    "config, field",
    [
        ({"no_such_field": 1}, "no_such_field"),
        ({"min_confidence": 1.5}, "min_confidence"),
        ({"min_confidence": -0.1}, "min_confidence"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_bad_configs_are_config_errors(cls: type, config: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        cls(config)


@pytest.mark.parametrize("cls", [RapidOCR, TesseractOCR])
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cpu_only_backends_refuse_other_devices(cls: type, device: str) -> None:
    with pytest.raises(ConfigError, match="CPU only"):
        cls(device=device)


@pytest.mark.parametrize("cls", [EasyOCR, TesseractOCR])
def test_languages_must_not_be_empty(cls: type) -> None:
    with pytest.raises(ConfigError, match="languages"):
        cls(languages=[])


def test_easyocr_accepts_a_cuda_device_but_refuses_to_fall_back_to_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    tool = EasyOCR(device="cuda:0")
    assert tool.device == "cuda:0"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ToolUnavailableError, match="no CUDA device"):
        tool.load()


def test_easyocr_missing_model_dir_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="model_dir"):
        EasyOCR(model_dir=str(tmp_path / "nowhere")).load()


def test_tesseract_without_binary_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    import pytesseract

    monkeypatch.setattr(pytesseract.pytesseract, "tesseract_cmd", "/nonexistent/tesseract")
    with pytest.raises(ToolUnavailableError, match="apt-get install tesseract-ocr"):
        TesseractOCR().load()


def test_min_confidence_drops_low_confidence_lines(text_image: Path) -> None:
    [all_lines] = FakeOCR().read([text_image])
    [kept] = FakeOCR(min_confidence=0.8).read([text_image])
    assert [ln.text for ln in all_lines] == list(TEXT_LINES)
    assert [ln.text for ln in kept] == [TEXT_LINES[0]]


def test_model_loads_once_for_many_reads(text_image: Path) -> None:
    tool = FakeOCR()
    tool.read([text_image])
    tool.read([text_image, text_image])
    assert tool.load_calls == 1 and tool.load_seconds is not None


def test_confidence_is_clamped_into_0_1() -> None:
    assert FakeOCR._line("x", [(0, 0), (1, 0), (1, 1), (0, 1)], 1.2).confidence == 1.0
    assert FakeOCR._line("x", [(0, 0), (1, 0), (1, 1), (0, 1)], -0.5).confidence == 0.0


def test_lines_to_text_joins_and_filters() -> None:
    box = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]
    lines = [
        OcrLine(text="STOP", box=box, confidence=0.9),
        OcrLine(text="  ", box=box, confidence=0.9),
        OcrLine(text="noise", box=box, confidence=0.1),
        OcrLine(text="Main St", box=box, confidence=0.7),
    ]
    assert lines_to_text(lines) == "STOP; noise; Main St"
    assert lines_to_text(lines, min_confidence=0.5) == "STOP; Main St"


def test_tesseract_groups_words_into_lines() -> None:
    # image_to_data output of tesseract 5.3 for a two-line page (level 5 rows are words)
    data = {
        "level": [1, 2, 3, 4, 5, 5, 4, 5, 5, 5],
        "page_num": [1] * 10,
        "block_num": [0, 1, 1, 1, 1, 1, 1, 1, 1, 1],
        "par_num": [0, 0, 1, 1, 1, 1, 1, 1, 1, 1],
        "line_num": [0, 0, 0, 1, 1, 1, 2, 2, 2, 2],
        "word_num": [0, 0, 0, 0, 1, 2, 0, 1, 2, 3],
        "left": [0, 32, 32, 34, 34, 222, 32, 32, 199, 436],
        "top": [0, 39, 39, 39, 39, 39, 139, 139, 139, 141],
        "width": [640, 531, 531, 384, 166, 196, 531, 143, 212, 127],
        "height": [240, 137, 137, 37, 37, 37, 37, 37, 37, 37],
        "conf": [-1, -1, -1, -1, 96, 94, -1, 90, 80, 70.5],
        "text": ["", "", "", "", "HELLO", "WORLD", "", "OPEN", "SOURCE", "2024"],
    }
    lines = TesseractOCR()._group_lines(data)
    assert [ln.text for ln in lines] == ["HELLO WORLD", "OPEN SOURCE 2024"]
    assert lines[0].confidence == pytest.approx(0.95)
    assert lines[1].confidence == pytest.approx((90 + 80 + 70.5) / 300)
    assert lines[0].box == [[34, 39], [418, 39], [418, 76], [34, 76]]
    assert lines[1].box == [[32, 139], [563, 139], [563, 178], [32, 178]]


def test_tesseract_skips_empty_and_unconfident_words() -> None:
    data = {
        "page_num": [1, 1, 1],
        "block_num": [1, 1, 1],
        "par_num": [1, 1, 1],
        "line_num": [1, 1, 1],
        "left": [0, 10, 20],
        "top": [0, 0, 0],
        "width": [5, 5, 5],
        "height": [5, 5, 5],
        "conf": [-1, 50, 60],
        "text": ["ghost", " ", "word"],
    }
    [line] = TesseractOCR()._group_lines(data)
    assert line.text == "word" and line.confidence == pytest.approx(0.6)
