"""Test images: rendered text, a blank page and files that only look like images."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

FONT_PATHS = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
)
#: the words rendered by ``render_text_image`` by default, one line each
TEXT_LINES = ("HELLO WORLD", "OPEN SOURCE 2024")


def load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in FONT_PATHS:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def render_text_image(path: Path, lines: tuple[str, ...] = TEXT_LINES, size: int = 48) -> Path:
    """Black text on white, one line per entry, in a big font; saved as PNG."""
    font = load_font(size)
    height = 60 + int(size * 2) * len(lines)
    image = Image.new("RGB", (40 + int(size * 0.8) * max(len(line) for line in lines), height), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((30, 30 + i * int(size * 2)), line, font=font, fill="black")
    image.save(path)
    return path


def blank_image(path: Path, size: tuple[int, int] = (320, 120)) -> Path:
    Image.new("RGB", size, "white").save(path)
    return path


def bad_image_files(directory: Path) -> dict[str, Path]:
    """Paths that must be refused as images: missing, empty, text, random bytes, truncated."""
    directory.mkdir(parents=True, exist_ok=True)
    out = {"missing": directory / "no_such_image.png"}
    out["empty"] = directory / "empty.png"
    out["empty"].write_bytes(b"")
    out["textfile"] = directory / "notes.jpg"
    out["textfile"].write_text("this is not an image\n")
    out["garbage"] = directory / "garbage.png"
    out["garbage"].write_bytes(bytes(range(256)) * 8)
    buf = io.BytesIO()
    Image.new("RGB", (200, 200), "red").save(buf, format="JPEG")
    out["truncated"] = directory / "truncated.jpg"
    out["truncated"].write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    out["directory"] = directory / "a_dir.png"
    out["directory"].mkdir(exist_ok=True)
    return out
