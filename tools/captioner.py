"""Visual cue sources: captions, dense captions, tags for an image.

Backends: ``precomputed`` (serves cue texts that came with the input, e.g. the MEL records'
Azure cues) and ``transformers`` (a BLIP or GIT captioner from a local dir or an explicit hub
id). A source that cannot produce a cue says so in the result instead of failing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field, field_validator

from groundgraph.tools.base import Tool, ToolConfig, call_model, check_device, require_cuda
from groundgraph.tools.errors import ConfigError, InputError, ToolUnavailableError
from groundgraph.tools.images import ImageLike, ImageView, load_images


class Cue(BaseModel):
    kind: str  # "caption", "dense_captions", "tags", "ocr", ...
    text: str | None  # None when this source could not produce the cue
    source: str  # the tool that produced it
    reason: str = ""  # why text is None


@runtime_checkable
class CueSource(Protocol):
    name: str

    def describe(self, image: ImageView, kinds: Sequence[str]) -> list[Cue]:
        """One Cue per requested kind, in order."""
        ...


def _check_kinds(kinds: Sequence[str]) -> list[str]:
    if isinstance(kinds, str):
        raise InputError("describe() takes a list of cue kinds, not a single string")
    out = list(kinds)
    for i, k in enumerate(out):
        if not isinstance(k, str) or not k.strip():
            raise InputError(f"cue kind {i} must be a non-empty string, got {k!r}")
    return out


class _CueTool(Tool[Any]):
    kind = "cues"

    def describe(self, image: ImageView, kinds: Sequence[str]) -> list[Cue]:
        raise NotImplementedError

    def as_langchain_tool(self) -> Any:
        from langchain_core.tools import StructuredTool

        class Args(BaseModel):
            image_path: str = Field(description="path of the image to describe")
            kinds: list[str] = Field(["caption"], description="cue kinds: caption, dense_captions, tags, ocr, objects")

        def describe_image(image_path: str, kinds: list[str] | None = None) -> list[dict[str, Any]]:
            cues = self.describe(ImageView(path=image_path), kinds or ["caption"])
            return [c.model_dump(exclude={"source"}) for c in cues]

        return StructuredTool.from_function(
            describe_image,
            name="describe_image",
            description="Describe an image in words (caption, dense captions, tags); a cue "
            "this source cannot produce comes back with text null and the reason.",
            args_schema=Args,
        )


# --- precomputed ---------------------------------------------------------------------------
class PrecomputedConfig(ToolConfig):
    cues_file: str | None = Field(
        None,
        description="optional JSONL of {image, visual_cues: {kind: text}} (the MEL record format): "
        "cues for an image that arrives with none, looked up by its file name",
    )


class PrecomputedCues(_CueTool):
    """Serves the cue texts that came with the input (``image.cues``), or from ``cues_file``."""

    backend = "precomputed"
    Config = PrecomputedConfig

    def _load(self) -> dict[str, dict[str, str]]:
        if not self.config.cues_file:
            return {}
        path = Path(self.config.cues_file)
        if not path.is_file():
            raise ConfigError(f"cues.precomputed cues_file not found: {path}")
        table: dict[str, dict[str, str]] = {}
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    name, cues = record["image"], record.get("visual_cues") or {}
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise ConfigError(f"{path} line {lineno}: expected a JSON object with 'image'") from None
                if name:
                    table[Path(str(name)).name] = {k: v for k, v in cues.items() if isinstance(v, str)}
        return table

    def describe(self, image: ImageView, kinds: Sequence[str]) -> list[Cue]:
        wanted = _check_kinds(kinds)
        known = dict(image.cues)
        if image.path and self.config.cues_file:
            for k, v in self.model().get(Path(image.path).name, {}).items():
                known.setdefault(k, v)
        out = []
        for k in wanted:
            text = (known.get(k) or "").strip()
            if text:
                out.append(Cue(kind=k, text=text, source=self.name))
            else:
                why = "empty" if k in known else "not among the cues that came with this image"
                out.append(
                    Cue(
                        kind=k,
                        text=None,
                        source=self.name,
                        reason=f"no precomputed {k!r} cue ({why})",
                    )
                )
        return out


# --- transformers --------------------------------------------------------------------------
class TransformersCaptionerConfig(ToolConfig):
    model: str | None = Field(
        None,
        description="a local dir saved with save_pretrained (BLIP, GIT or another "
        "image-text-to-text captioner); a hub id is used only when given here explicitly. "
        "None: no captioner.",
    )
    max_new_tokens: int = Field(30, ge=1, le=512)
    num_beams: int = Field(1, ge=1, le=16)
    prompt: str | None = Field(None, description="text the caption continues, e.g. 'a picture of' (BLIP)")
    batch_size: int = Field(8, ge=1)
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return check_device(v)

    @field_validator("model")
    @classmethod
    def _model(cls, v: str | None) -> str | None:
        if v is None:
            return None
        if not v.strip():
            raise ValueError("model is empty; leave it unset for no captioner")
        looks_local = v.startswith(("/", ".", "~")) or Path(v).expanduser().exists()
        if looks_local and not Path(v).expanduser().is_dir():
            raise ValueError(f"model dir not found: {v}")
        return v


class TransformersCaptioner(_CueTool):
    """A captioner via ``transformers`` (AutoModelForImageTextToText); kind 'caption' only."""

    backend = "transformers"
    Config = TransformersCaptionerConfig
    produces = ("caption",)

    def _load(self) -> Any:
        if self.config.model is None:
            raise ToolUnavailableError(
                "cues.transformers has no captioner configured: set model to a local captioner dir "
                "(or, explicitly, a hub id)"
            )
        source = self.config.model
        folder = Path(source).expanduser()
        local = folder.is_dir()
        if local:
            source = str(folder)
            if not (folder / "config.json").is_file():
                raise ToolUnavailableError(f"cues.transformers: {folder} holds no model (no config.json)")
        require_cuda(self.device, self.name)
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        try:
            processor = AutoProcessor.from_pretrained(source, local_files_only=local)
            model = AutoModelForImageTextToText.from_pretrained(
                source, local_files_only=local, dtype=getattr(torch, self.config.dtype)
            )
        except OSError as exc:  # files missing, or a hub id that is not cached while offline
            raise ToolUnavailableError(f"cues.transformers could not load {source!r}: {exc}") from exc
        model.to(self.device).eval()
        return model, processor

    def caption(self, images: Sequence[ImageLike]) -> list[str]:
        """Caption a batch of images (paths, PIL images or arrays)."""
        loaded = load_images(images)
        if not loaded:
            return []
        model, processor = self.model()
        out: list[str] = []
        step = self.config.batch_size
        for i in range(0, len(loaded), step):
            out.extend(
                call_model(
                    self,
                    lambda b=loaded[i : i + step]: self._generate(model, processor, b),
                    "caption images",
                )
            )
        return out

    def _generate(self, model: Any, processor: Any, batch: list[Any]) -> list[str]:
        import torch

        kwargs: dict[str, Any] = {"images": batch, "return_tensors": "pt"}
        if self.config.prompt:
            kwargs["text"] = [self.config.prompt] * len(batch)
        inputs = processor(**kwargs).to(self.device)
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        with torch.inference_mode():
            ids = model.generate(
                **inputs,
                max_new_tokens=self.config.max_new_tokens,
                num_beams=self.config.num_beams,
                do_sample=False,
            )
        texts = processor.batch_decode(ids, skip_special_tokens=True)
        return [" ".join(t.split()) for t in texts]

    def describe(self, image: ImageView, kinds: Sequence[str]) -> list[Cue]:
        wanted = _check_kinds(kinds)
        caption: str | None = None
        why = ""
        if "caption" in wanted:
            if self.config.model is None:
                why = "no captioner configured (cues.transformers model is unset)"
            elif image.path is None:
                why = "no image file to caption"
            else:
                caption = self.caption([image.path])[0] or None
                why = "" if caption else "the captioner produced an empty caption"
        out = []
        for k in wanted:
            if k == "caption":
                out.append(Cue(kind=k, text=caption, source=self.name, reason=why))
            else:
                out.append(
                    Cue(
                        kind=k,
                        text=None,
                        source=self.name,
                        reason=f"{self.name} produces only {list(self.produces)}, not {k!r}",
                    )
                )
        return out
