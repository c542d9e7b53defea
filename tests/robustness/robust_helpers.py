"""Shared pieces of the robustness suite: the figures it reports, outcome tallies, hostile inputs (texts,
wrong types, a zoo of broken image files) and agents of every graph on fake or light tools."""

from __future__ import annotations

import struct
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image
from pydantic import ValidationError

from groundgraph.tools.errors import GroundgraphError
from groundgraph.tools.images import load_image

REPO = Path(__file__).resolve().parents[2]
REPORT = REPO / "reports" / "robustness.json"

#: section -> figures; filled by the tests, printed and written by conftest at the end of the session
FIGURES: dict[str, dict[str, Any]] = {}

#: hypothesis settings of the fuzz tests: >= 1000 cases, reproducible (derandomized), no deadline on a loaded machine
FUZZ_EXAMPLES = 1000
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])


def record(section: str, **values: Any) -> None:
    FIGURES.setdefault(section, {}).update(values)


def figures_table(figures: dict[str, dict[str, Any]]) -> list[str]:
    rows = [(section, key, value) for section, values in figures.items() for key, value in values.items()
            if not isinstance(value, list | dict)]
    width = max([len(f"{s} / {k}") for s, k, _ in rows] + [10])
    return [f"{f'{s} / {k}':<{width}}  {v}" for s, k, v in rows]


# --- outcomes -------------------------------------------------------------------------------------------
@dataclass
class Tally:
    """Outcomes of one entry point's cases: a valid answer, a typed error, or a crash (anything else)."""

    name: str
    ok: int = 0
    typed_errors: int = 0
    crashes: list[str] = field(default_factory=list)
    error_types: dict[str, int] = field(default_factory=dict)

    @property
    def cases(self) -> int:
        return self.ok + self.typed_errors + len(self.crashes)

    def run(self, fn: Callable[[], Any], check: Callable[[Any], None] | None = None) -> str:
        """Call ``fn``: a GroundgraphError or a pydantic ValidationError with a message is a typed error; a
        result passing ``check`` is ok; any other exception (or a failed check) is a crash, kept with its input."""
        try:
            result = fn()
        except (GroundgraphError, ValidationError) as exc:
            if not str(exc).strip():
                self.crashes.append(f"{type(exc).__name__} without a message")
                return "crash"
            self.typed_errors += 1
            self.error_types[type(exc).__name__] = self.error_types.get(type(exc).__name__, 0) + 1
            return "error"
        except Exception as exc:  # noqa: BLE001 - the point: count what escapes
            where = traceback.extract_tb(exc.__traceback__)[-1]
            self.crashes.append(f"{type(exc).__name__}: {str(exc)[:300]} (at {where.filename}:{where.lineno})")
            return "crash"
        if check is not None:
            try:
                check(result)
            except AssertionError as exc:
                self.crashes.append(f"invalid answer: {exc}")
                return "crash"
        self.ok += 1
        return "ok"

    def crash(self, what: str) -> None:
        self.crashes.append(what)

    def report(self, section: str = "fuzz") -> None:
        record(section, **{f"{self.name} cases": self.cases, f"{self.name} answers": self.ok,
                           f"{self.name} typed errors": self.typed_errors,
                           f"{self.name} crashes": len(self.crashes)})
        FIGURES.setdefault(section + " (error types)", {})[self.name] = dict(self.error_types)
        if self.crashes:
            FIGURES.setdefault(section + " (crash samples)", {})[self.name] = sorted(set(self.crashes))[:20]

    def assert_clean(self, min_cases: int = FUZZ_EXAMPLES) -> None:
        self.report()
        assert not self.crashes, f"{self.name}: {len(self.crashes)} crashes, e.g. {self.crashes[:5]}"
        assert self.cases >= min_cases, f"{self.name}: only {self.cases} cases"
        assert self.ok > 0 and self.typed_errors > 0, f"{self.name}: the cases never reach both outcomes"


# --- hostile values -----------------------------------------------------------------------------------
SPECIAL_TEXTS = [
    "", " ", "\t\n", "\x00", "a\x00b", "\u202eevil\u202c", "\ufeff", "\u200b\u200b", "e\u0301\u0301\u0301",
    "\ud800", "\udcff", "Z\u0351\u0364\u0337a\u034c\u0322l\u0358g\u0347o", "\U0001f600" * 30, "ﷺ" * 50,
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "null", "None", "[]", "{}", "' OR 1=1 --", "<script>alert(1)</script>", "../../etc/passwd",
    "%s%s%n", "{mention}", "[/]", "[bold]b[/bold]", "[/red] x", "[link=file:///etc/passwd]x[/link]", "{0}", "\\",
    "\r\n" * 20, "x" * 1001, "y" * 20001, "Carroll Baker", "Alice", "Ajax",
]
HUGE_TEXT = "w " * 110_000  # over every text limit (220,000 characters)

text_values = st.one_of(st.text(max_size=40), st.sampled_from(SPECIAL_TEXTS), st.just(HUGE_TEXT))
wrong_types = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                        st.floats(allow_nan=True, allow_infinity=True), st.lists(st.integers(), max_size=3),
                        st.dictionaries(st.text(max_size=4), st.integers(), max_size=2), st.binary(max_size=8))
anything = st.one_of(text_values, wrong_types)
#: a field that is mostly text, sometimes another type
text_or_wrong = st.one_of(text_values, text_values, text_values, wrong_types)
spans = st.lists(st.integers(min_value=-3, max_value=40) | st.sampled_from([2**63, -(2**63), 10**30]),
                 min_size=0, max_size=3)


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height, with no pixel data (a decompression-bomb header)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk
                     + struct.pack(">I", zlib.crc32(chunk) & 0xFFFFFFFF))
    return path


def make_image_zoo(root: Path) -> dict[str, str]:
    """Image paths of every kind a caller may hand in: good ones and broken ones."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    noise = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    zoo: dict[str, Path] = {}
    zoo["ok.png"] = root / "ok.png"
    Image.new("RGB", (32, 24), (200, 30, 30)).save(zoo["ok.png"])
    zoo["ok.jpg"] = root / "ok.jpg"
    noise.save(zoo["ok.jpg"], quality=80)
    zoo["gray.png"] = root / "gray.png"
    Image.new("L", (16, 16), 128).save(zoo["gray.png"])
    zoo["rgba.png"] = root / "rgba.png"
    Image.new("RGBA", (16, 16), (1, 2, 3, 4)).save(zoo["rgba.png"])
    zoo["palette.gif"] = root / "palette.gif"
    Image.new("P", (16, 16), 3).save(zoo["palette.gif"])
    zoo["one_pixel.png"] = root / "one_pixel.png"
    Image.new("RGB", (1, 1)).save(zoo["one_pixel.png"])
    for name, fmt in (("truncated.png", "PNG"), ("truncated.jpg", "JPEG")):
        full = root / f"full_{name}"
        noise.save(full, fmt)
        data = full.read_bytes()
        zoo[name] = root / name
        zoo[name].write_bytes(data[: len(data) // 2])
    zoo["corrupt.png"] = root / "corrupt.png"
    zoo["corrupt.png"].write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 255, 300, dtype=np.uint8)))
    zoo["corrupt.jpg"] = root / "corrupt.jpg"
    zoo["corrupt.jpg"].write_bytes(b"\xff\xd8\xff\xe0" + bytes(rng.integers(0, 255, 300, dtype=np.uint8)))
    zoo["text.png"] = root / "text.png"
    zoo["text.png"].write_text("this is not an image")
    zoo["empty.png"] = root / "empty.png"
    zoo["empty.png"].write_bytes(b"")
    zoo["bomb.png"] = _png_header_only(root / "bomb.png", 100_000, 100_000)  # PIL's own bomb guard
    zoo["over_limit.png"] = _png_header_only(root / "over_limit.png", 7_000, 7_000)  # 49 M pixels > 40 M
    zoo["zero_width.png"] = _png_header_only(root / "zero_width.png", 0, 10)
    zoo["dir"] = root / "a_directory.png"
    zoo["dir"].mkdir(exist_ok=True)
    zoo["symlink_in.png"] = root / "symlink_in.png"
    if not zoo["symlink_in.png"].is_symlink():
        zoo["symlink_in.png"].symlink_to(zoo["ok.png"])
    zoo["symlink_loop.png"] = root / "loop.png"
    if not zoo["symlink_loop.png"].is_symlink():
        zoo["symlink_loop.png"].symlink_to(root / "loop.png")
    paths = {k: str(v) for k, v in zoo.items()}
    paths["missing"] = str(root / "missing.png")
    paths["etc_passwd"] = "/etc/passwd"
    paths["too_long"] = str(root / ("n" * 5000))
    paths["nul"] = str(root / "ok\x00.png")
    paths["tilde_user"] = "~nosuchuser_gg/x.png"
    paths["dev_zero"] = "/dev/zero"
    return paths


def image_values(zoo: dict[str, str]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), st.just(""), st.sampled_from(sorted(zoo.values())), wrong_types)


class LoadingImageText:
    """An image-text scorer that decodes the image as the real ones do (so broken files show), then scores
    a constant on CLIP's scale."""

    name = "image_text.loading_fake"
    scale = "clip_100cos"

    def __init__(self, value: float = 0.0) -> None:
        self.value = value
        self.calls = 0

    def score(self, image: Any, texts: list[str]) -> list[float | None]:
        self.calls += 1
        path = getattr(image, "path", image)
        if path:
            load_image(path)
        return [self.value for _ in texts]
