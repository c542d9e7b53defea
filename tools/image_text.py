"""Image-text scorer: how well a text describes an image, on CLIP's 100 x cosine scale.

Backends: open_clip (real CLIP weights from a local checkpoint or an explicitly configured
pretrained tag) and ``cue_text_proxy`` for the embedded default, where no CLIP weights exist:
it compares the image's *text view* (OCR text and cue texts) with the candidate text through
the text embedder. It is a proxy and is named so in config, traces and docs.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator

from groundgraph.tools.base import Tool, ToolConfig, call_model, check_device, require_cuda
from groundgraph.tools.embedder import TextEmbedder
from groundgraph.tools.errors import ConfigError, InputError, ToolUnavailableError
from groundgraph.tools.images import ImageView, check_image_path, load_image
from groundgraph.tools.ocr import OCR, lines_to_text


@runtime_checkable
class ImageTextScorer(Protocol):
    name: str
    #: what the scores measure, e.g. "clip_100cos" or "proxy_text_100cos"; thresholds are per scale
    scale: str

    def score(self, image: ImageView, texts: Sequence[str]) -> list[float | None]:
        """Score each text against the image; None when the image gives nothing to compare."""
        ...


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise InputError("score() takes a list of texts, not a single string")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise InputError(f"text {i} is {type(t).__name__}, not str")
    return out


class _Lru:
    """A small thread-safe LRU map (image features, OCR text): records revisit the same image."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Any, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: Any, value: Any) -> None:
        if not self.size:
            return
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)


def _file_key(path: Path) -> tuple[str, int, int]:
    st = path.stat()  # a rewritten file gets a new key
    return str(path.resolve()), st.st_mtime_ns, st.st_size


class _Scorer(Tool[Any]):
    kind = "image_text"
    scale: str = ""

    def score(self, image: ImageView, texts: Sequence[str]) -> list[float | None]:
        raise NotImplementedError

    def as_langchain_tool(self) -> Any:
        from langchain_core.tools import StructuredTool

        class Args(BaseModel):
            image_path: str = Field(description="path of the image")
            texts: list[str] = Field(description="texts to score against the image")

        def score_image_text(image_path: str, texts: list[str]) -> dict[str, Any]:
            scores = self.score(ImageView(path=image_path), texts)
            return {
                "scale": self.scale,
                "scores": [
                    {"text": t, "score": None if s is None else round(s, 2)} for t, s in zip(texts, scores, strict=True)
                ],
            }

        return StructuredTool.from_function(
            score_image_text,
            name="score_image_text",
            description=f"Score how well each text describes an image (scale {self.scale}: "
            "100 x cosine; "
            "higher is better; null when the image gives nothing to compare).",
            args_schema=Args,
        )


# --- open_clip -----------------------------------------------------------------------------
class OpenClipConfig(ToolConfig):
    model_name: str = Field(
        "ViT-B-32",
        description="an open_clip architecture, or 'local-dir:/path' / 'hf-hub:org/repo'",
    )
    checkpoint: str | None = Field(None, description="local state-dict file with the weights of model_name")
    pretrained: str | None = Field(
        None,
        description="an open_clip pretrained tag (downloaded on first use); only used when set here explicitly",
    )
    model_config_file: str | None = Field(
        None,
        description="JSON architecture to register with open_clip; its file name (stem) must equal model_name",
    )
    precision: Literal["fp32", "fp16", "bf16"] = "fp32"
    text_batch_size: int = Field(64, ge=1)
    image_cache_size: int = Field(256, ge=0, description="image feature vectors kept in memory")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return check_device(v)

    @model_validator(mode="after")
    def _one_weight_source(self) -> OpenClipConfig:
        if self.checkpoint and self.pretrained:
            raise ValueError("set checkpoint or pretrained, not both")
        if self.model_name.startswith(("local-dir:", "hf-hub:")) and (self.checkpoint or self.pretrained):
            raise ValueError(
                f"{self.model_name.split(':')[0]}: model_name carries its own weights; "
                "leave checkpoint and pretrained unset"
            )
        if self.model_config_file and Path(self.model_config_file).stem != self.model_name:
            raise ValueError(
                f"model_config_file {self.model_config_file!r} registers the architecture "
                f"{Path(self.model_config_file).stem!r}, not model_name {self.model_name!r}"
            )
        return self


class OpenClipScorer(_Scorer):
    """CLIP through open_clip: 100 x cosine of the normalised image and text embeddings."""

    backend = "open_clip"
    Config = OpenClipConfig
    scale = "clip_100cos"

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self._image_cache = _Lru(self.config.image_cache_size)

    def _weights(self) -> str | None:
        """The ``pretrained`` argument for open_clip; refuses to pick weights on its own."""
        cfg = self.config
        if cfg.model_name.startswith("local-dir:"):
            folder = Path(cfg.model_name.removeprefix("local-dir:"))
            if not any(any(folder.glob(pat)) for pat in ("*.safetensors", "*.bin", "*.pth")):
                raise ToolUnavailableError(f"image_text.open_clip: no weights file in {folder}")
            return None
        if cfg.model_name.startswith("hf-hub:"):
            return None
        if cfg.checkpoint:
            if not Path(cfg.checkpoint).is_file():
                raise ConfigError(f"image_text.open_clip checkpoint not found: {cfg.checkpoint}")
            return cfg.checkpoint
        if cfg.pretrained:
            return cfg.pretrained
        raise ToolUnavailableError(
            "image_text.open_clip has no weights configured: set checkpoint (a local state-dict "
            "file) or pretrained (an open_clip tag, downloaded on first use), or use "
            "image_text.cue_text_proxy"
        )

    def _load(self) -> Any:
        pretrained = self._weights()
        arch_file = self.config.model_config_file
        if arch_file and not Path(arch_file).is_file():
            raise ConfigError(f"image_text.open_clip model_config_file not found: {arch_file}")
        require_cuda(self.device, self.name)
        import open_clip

        if arch_file:
            open_clip.add_model_config(arch_file)  # a process-wide registry, keyed by file stem
        model, _, preprocess = open_clip.create_model_and_transforms(
            self.config.model_name,
            pretrained=pretrained,
            device=self.device,
            precision=self.config.precision,
        )
        model.eval()
        return model, preprocess, open_clip.get_tokenizer(self.config.model_name)

    def _image_features(self, path: str) -> np.ndarray[Any, Any]:
        key = _file_key(Path(path))
        found = self._image_cache.get(key)
        if found is not None:
            return found
        pixels = load_image(path)
        model, preprocess, _ = self.model()

        def encode() -> np.ndarray[Any, Any]:
            import torch

            batch = preprocess(pixels).unsqueeze(0).to(self.device)
            with torch.inference_mode():
                feats = model.encode_image(batch, normalize=True)
            return feats[0].float().cpu().numpy()

        vec = call_model(self, encode, "encode the image")
        self._image_cache.put(key, vec)
        return vec

    def _text_features(self, texts: list[str]) -> np.ndarray[Any, Any]:
        model, _, tokenizer = self.model()

        def encode() -> np.ndarray[Any, Any]:
            import torch

            out = []
            step = self.config.text_batch_size
            with torch.inference_mode():
                for i in range(0, len(texts), step):
                    tokens = tokenizer(texts[i : i + step]).to(self.device)
                    out.append(model.encode_text(tokens, normalize=True).float().cpu().numpy())
            return np.concatenate(out, axis=0)

        return call_model(self, encode, "encode texts")

    def score(self, image: ImageView, texts: Sequence[str]) -> list[float | None]:
        """100 x cosine of image and text embeddings; None for all when the image has no file."""
        items = _check_texts(texts)
        if image.path is not None:
            check_image_path(image.path)  # bad input is an error before any model loads
        if not items or image.path is None:
            return [None] * len(items)
        idx = [i for i, t in enumerate(items) if t.strip()]  # a blank text says nothing to score
        scores: list[float | None] = [None] * len(items)
        if idx:
            img = self._image_features(image.path)
            sims = self._text_features([items[i] for i in idx]) @ img
            for i, s in zip(idx, sims, strict=True):
                scores[i] = 100.0 * float(s)
        return scores


# --- cue_text_proxy ------------------------------------------------------------------------
class CueTextProxyConfig(ToolConfig):
    cue_kinds: list[str] | None = Field(
        None,
        description="cue kinds that form the image's text view (default: every cue the image has)",
    )
    ocr_min_confidence: float = Field(0.0, ge=0.0, le=1.0, description="OCR lines below this are left out")
    ocr_cache_size: int = Field(1024, ge=0, description="images whose OCR text is kept in memory")

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return check_device(v)


class CueTextProxyScorer(_Scorer):
    """A stand-in for CLIP where no image-text weights exist: 100 x cosine, in the text embedder's
    space, between the image's text view (its cue texts, plus OCR text) and each text.

    Its scale differs from CLIP's, so thresholds tuned for one do not carry over to the other.
    """

    backend = "cue_text_proxy"
    Config = CueTextProxyConfig
    scale = "proxy_text_100cos"
    needs = ("embedder", "ocr")

    def __init__(
        self,
        config: Any = None,
        embedder: TextEmbedder | None = None,
        ocr: OCR | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__(config, **overrides)
        self.embedder = embedder
        self.ocr = ocr
        self._ocr_cache = _Lru(self.config.ocr_cache_size)

    def _load(self) -> Any:
        if self.embedder is None:
            raise ConfigError("image_text.cue_text_proxy needs a text embedder (none was given)")
        return True

    def _ocr_text(self, path: str) -> str:
        assert self.ocr is not None
        key = _file_key(Path(path))
        found = self._ocr_cache.get(key)
        if found is None:
            found = lines_to_text(self.ocr.read([path])[0], self.config.ocr_min_confidence)
            self._ocr_cache.put(key, found)
        return str(found)

    def text_view(self, image: ImageView) -> str:
        """The image as text: its cue texts, plus OCR text when it has a file and no OCR cue."""
        kinds = tuple(self.config.cue_kinds) if self.config.cue_kinds is not None else None
        if image.path is not None:
            check_image_path(image.path)
        parts = [image.text(kinds)]
        wants_ocr = kinds is None or "ocr" in kinds
        if self.ocr is not None and wants_ocr and image.path and not image.cues.get("ocr", "").strip():
            parts.append(self._ocr_text(image.path))
        return ". ".join(p for p in parts if p.strip())

    def score(self, image: ImageView, texts: Sequence[str]) -> list[float | None]:
        """100 x cosine of the text view's and each text's embeddings; None if the view is empty."""
        items = _check_texts(texts)
        if image.path is not None:
            load_image(image.path)  # a set path must be a readable image, even if OCR is off
        if not items:
            return []
        self.model()  # fails on a missing embedder before any OCR runs
        view = self.text_view(image)
        if not view:
            return [None] * len(items)
        assert self.embedder is not None
        idx = [i for i, t in enumerate(items) if t.strip()]
        scores: list[float | None] = [None] * len(items)
        if idx:
            vecs = self.embedder.embed([view, *(items[i] for i in idx)])
            for i, s in zip(idx, vecs[1:] @ vecs[0], strict=True):
                scores[i] = 100.0 * float(s)
        return scores
