"""Image input shared by the visual tools: validated loading and the image's text view."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from groundgraph.tools.errors import InputError

# Decompression-bomb guard: a header may claim any size; refuse before decoding pixels.
MAX_PIXELS = 40_000_000
CUE_KINDS = ("ocr", "caption", "dense_captions", "tags", "objects")
ImageLike = Any  # a path, a PIL image or an HxWx3 uint8 array (see load_image)


class ImageView(BaseModel):
    """What a tool may know of an image: its file (when there is one) and cue texts about it.

    ``cues`` holds texts supplied with the input or gathered by earlier tools (OCR text,
    captions, tags), keyed by cue kind.
    """

    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    cues: dict[str, str] = Field(default_factory=dict)

    def text(self, kinds: tuple[str, ...] | None = None) -> str:
        """The image's text view: the non-empty cue texts of ``kinds`` (all by default)."""
        keys = kinds if kinds is not None else tuple(self.cues)
        return ". ".join(self.cues[k].strip() for k in keys if self.cues.get(k, "").strip())


def shown(path: str | os.PathLike[str]) -> str:
    """A path as messages show it: undecodable bytes (surrogates) escaped, so the message is valid UTF-8."""
    return os.fspath(path).encode("utf-8", "backslashreplace").decode("utf-8")


def check_image_path(path: str | os.PathLike[str]) -> Path:
    """Return the path if it is a readable image file within the pixel limit, else InputError."""
    p = Path(path)
    if not str(path).strip():
        raise InputError("image path is empty")
    try:
        exists, is_file = p.exists(), p.is_file()
    except OSError as exc:  # a name too long for the file system, a loop of symlinks...
        raise InputError(f"image path cannot be used: {exc.strerror or type(exc).__name__}") from None
    if not exists:
        raise InputError(f"image file not found: {shown(p)}")
    if not is_file:
        raise InputError(f"image path is not a file: {shown(p)}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                width, height = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InputError(f"image {shown(p)} claims too many pixels (limit {MAX_PIXELS})") from None
    except Exception as exc:
        raise InputError(f"not a readable image: {shown(p)} ({type(exc).__name__})") from None
    if width * height > MAX_PIXELS:
        raise InputError(f"image {shown(p)} is {width}x{height}, over the limit of {MAX_PIXELS} pixels")
    if width == 0 or height == 0:
        raise InputError(f"image {shown(p)} is empty ({width}x{height})")
    return p


def load_image(source: str | os.PathLike[str] | Image.Image | np.ndarray[Any, Any]) -> Image.Image:
    """Load an RGB PIL image from a path, a PIL image or an HxWx3 uint8 array, validating it."""
    if isinstance(source, Image.Image):
        return source.convert("RGB")
    if isinstance(source, np.ndarray):
        if source.ndim not in (2, 3) or source.size == 0:
            raise InputError(f"image array must be HxW or HxWxC, got shape {source.shape}")
        return Image.fromarray(source.astype(np.uint8)).convert("RGB")
    p = check_image_path(source)
    try:
        with Image.open(p) as im:
            im.load()
            return im.convert("RGB")
    except Exception as exc:  # truncated or corrupt data shows only while decoding
        raise InputError(f"image {shown(p)} could not be decoded ({type(exc).__name__}: {exc})") from None


def load_rgb_array(source: str | os.PathLike[str] | Image.Image | np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    return np.asarray(load_image(source))


def load_images(images: Sequence[ImageLike]) -> list[Image.Image]:
    """Validate and load a batch of images; the first bad one is an InputError naming its index."""
    if isinstance(images, (str, Path, Image.Image, np.ndarray)):
        raise InputError("expected a list of images, not a single image")
    loaded = []
    for i, image in enumerate(images):
        try:
            loaded.append(load_image(image))
        except InputError as exc:
            raise InputError(f"image {i}: {exc}") from None
        except (TypeError, AttributeError):
            raise InputError(f"image {i} is a {type(image).__name__}, not a path, PIL image or array") from None
    return loaded
