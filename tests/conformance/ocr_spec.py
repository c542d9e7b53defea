"""What every OCR backend must do (the ``OCR`` protocol of groundgraph.tools.ocr).

Use: subclass ``OcrConformance`` in a test module as ``class TestXxx(OcrConformance)`` and give
it an ``ocr`` fixture (an unloaded or loaded backend instance). Set ``registered = False`` for
a backend that has no entry point (a test fake).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conformance.images import TEXT_LINES, bad_image_files, blank_image, render_text_image
from groundgraph.tools.errors import ConfigError, InputError
from groundgraph.tools.ocr import OCR, OcrLine, lines_to_text
from groundgraph.tools.registry import tool_class


def _words(lines: list[OcrLine]) -> set[str]:
    return {w.strip(".,;:!?").upper() for ln in lines for w in ln.text.split()}


def _expected_words() -> set[str]:
    return {w for line in TEXT_LINES for w in line.split()}


class OcrConformance:
    registered = True

    @pytest.fixture(scope="class")
    @classmethod
    def images(cls, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
        d = tmp_path_factory.mktemp("ocr_spec")
        return {
            "text": render_text_image(d / "text.png"),
            "blank": blank_image(d / "blank.png"),
            **bad_image_files(d / "bad"),
        }

    def fresh(self, ocr: Any, **overrides: Any) -> Any:
        """A new, unloaded instance with the same config."""
        return type(ocr)(ocr.config, **overrides)

    # --- identity ---------------------------------------------------------------------------
    def test_satisfies_protocol(self, ocr: Any) -> None:
        assert isinstance(ocr, OCR)
        assert ocr.kind == "ocr"
        assert ocr.name == f"ocr.{ocr.backend}"
        if self.registered:
            assert tool_class(ocr.name) is type(ocr)

    def test_unknown_config_field_is_config_error(self, ocr: Any) -> None:
        with pytest.raises(ConfigError, match="no_such_field"):
            type(ocr)({**ocr.config.model_dump(), "no_such_field": 1})

    # --- reading ----------------------------------------------------------------------------
    def test_reads_rendered_words(self, ocr: Any, images: dict[str, Path]) -> None:
        [lines] = ocr.read([images["text"]])
        missing = _expected_words() - _words(lines)
        assert not missing, f"{ocr.name} missed {missing}; read {[ln.text for ln in lines]}"

    def test_lines_are_well_formed(self, ocr: Any, images: dict[str, Path]) -> None:
        width, height = Image.open(images["text"]).size
        [lines] = ocr.read([images["text"]])
        assert lines
        for ln in lines:
            assert isinstance(ln, OcrLine)
            assert ln.text == ln.text.strip() and ln.text
            assert 0.0 <= ln.confidence <= 1.0
            assert len(ln.box) == 4 and all(len(pt) == 2 for pt in ln.box)
            xs, ys = [p[0] for p in ln.box], [p[1] for p in ln.box]
            assert all(-2 <= x <= width + 2 for x in xs) and all(-2 <= y <= height + 2 for y in ys)
            # clockwise from top-left: the first corner is left of the second and above the fourth
            assert ln.box[0][0] < ln.box[1][0] and ln.box[0][1] < ln.box[3][1]

    def test_lines_come_in_reading_order(self, ocr: Any, images: dict[str, Path]) -> None:
        [lines] = ocr.read([images["text"]])
        text = lines_to_text(lines).upper()
        first, second = TEXT_LINES[0].split()[0], TEXT_LINES[1].split()[0]
        assert text.index(first) < text.index(second)

    def test_batch_gives_one_result_per_image_in_order(self, ocr: Any, images: dict[str, Path]) -> None:
        out = ocr.read([images["text"], images["blank"], images["text"]])
        assert len(out) == 3
        assert out[1] == []  # a blank page has no text
        assert [ln.text for ln in out[0]] == [ln.text for ln in out[2]]

    def test_accepts_path_pil_image_and_array(self, ocr: Any, images: dict[str, Path]) -> None:
        path = images["text"]
        pil = Image.open(path).convert("RGB")
        out = ocr.read([str(path), path, pil, np.asarray(pil)])
        texts = [[ln.text for ln in lines] for lines in out]
        assert texts[0] == texts[1] == texts[2] == texts[3]

    def test_min_confidence_is_a_floor(self, ocr: Any, images: dict[str, Path]) -> None:
        [lines] = ocr.read([images["text"]])
        floor = min(ln.confidence for ln in lines) + 1e-6
        strict = self.fresh(ocr, min_confidence=min(1.0, floor))
        [kept] = strict.read([images["text"]])
        assert all(ln.confidence >= floor for ln in kept)
        assert len(kept) < len(lines)

    # --- bad input --------------------------------------------------------------------------
    @pytest.mark.parametrize("bad", ["missing", "empty", "textfile", "garbage", "truncated", "directory"])
    def test_bad_image_is_input_error_before_loading(self, ocr: Any, images: dict[str, Path], bad: str) -> None:
        tool = self.fresh(ocr)
        with pytest.raises(InputError, match="image 1"):
            tool.read([images["text"], images[bad]])
        assert not tool.loaded

    def test_empty_batch_reads_nothing_and_loads_nothing(self, ocr: Any) -> None:
        tool = self.fresh(ocr)
        assert tool.read([]) == []
        assert not tool.loaded

    @pytest.mark.parametrize("single", ["path", "pil"])
    def test_single_image_instead_of_list_is_input_error(self, ocr: Any, images: dict[str, Path], single: str) -> None:
        arg: Any = str(images["text"]) if single == "path" else Image.open(images["text"])
        with pytest.raises(InputError, match="list of images"):
            self.fresh(ocr).read(arg)

    def test_non_image_object_is_input_error(self, ocr: Any) -> None:
        with pytest.raises(InputError, match="image 0"):
            self.fresh(ocr).read([12345])

    # --- LangChain face ---------------------------------------------------------------------
    def test_langchain_tool_reads_text(self, ocr: Any, images: dict[str, Path]) -> None:
        tool = ocr.as_langchain_tool()
        assert tool.name == "read_text_in_image"
        assert set(tool.args) == {"image_path"}
        result = tool.invoke({"image_path": str(images["text"])})
        assert all(set(r) == {"text", "confidence"} for r in result)
        read = {w.upper() for r in result for w in r["text"].split()}
        assert _expected_words() <= read
