"""``groundgraph tools check``: load each tool of a profile, run it on a shipped sample, time it."""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from groundgraph.agents.toolbox import Toolbox
from groundgraph.tools.errors import GroundgraphError
from groundgraph.tools.images import ImageView


class ToolCheck(BaseModel):
    role: str
    tool: str
    device: str
    ok: bool
    load_s: float | None = None
    call_ms: float | None = None
    peak_rss_mb: float | None = None
    result: str = ""
    error: str | None = None


def data_path(name: str) -> Path:
    return Path(str(resources.files("groundgraph.agents") / "data" / name))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _sample_call(role: str, tool: Any) -> Callable[[], str]:
    image = str(data_path("sample_sign.png"))
    view = ImageView(path=image, cues={"caption": "a sign with the words grand central terminal"})
    if role == "embedder":
        def run() -> str:
            v = tool.embed(["Grand Central Terminal", "a railway station in New York", "a species of frog"])
            return f"dim {v.shape[1]}; cos(station, terminal)={v[0] @ v[1]:.3f} > cos(frog)={v[0] @ v[2]:.3f}"
        return run
    if role == "ocr":
        return lambda: " | ".join(line.text for line in tool.read([image])[0])
    if role == "image_text":
        def run() -> str:
            s = tool.score(view, ["Grand Central Terminal, a railway station", "a species of frog"])
            return f"{tool.scale}: " + ", ".join("None" if x is None else f"{x:.1f}" for x in s)
        return run
    if role == "cues":
        return lambda: "; ".join(f"{c.kind}: {c.text or c.reason}" for c in tool.describe(view, ["caption", "tags"]))
    if role == "llm":
        def run() -> str:
            c = tool.choose("Grand Central Terminal is a railway station in the city of",
                            [" New York", " Paris", " Tokyo"], calibration_prompt="The city of")
            g = tool.generate("Name one famous railway station.", max_tokens=16)
            return f"choose -> {c.option.strip()!r} ({c.method}); generate -> {g.strip()[:60]!r}"
        return run
    if role == "kb":
        def run() -> str:
            hits = tool.lookup("Joan Collins", 3)
            return f"{len(tool)} entities; lookup('Joan Collins') -> " + ", ".join(m.entity.display_name for m in hits)
        return run
    return lambda: repr(tool)


def check_tools(toolbox: Toolbox, roles: list[str] | None = None) -> list[ToolCheck]:
    """Load and exercise each tool; a failing tool is reported, the others still run."""
    out: list[ToolCheck] = []
    for role in roles or list(toolbox.configs):
        backend = toolbox.configs[role].get("backend")
        try:
            tool = toolbox[role]
        except GroundgraphError as exc:
            out.append(ToolCheck(role=role, tool=f"{role}.{backend}", device="?", ok=False, error=str(exc)))
            continue
        if tool is None:
            out.append(ToolCheck(role=role, tool="none", device="-", ok=True, result="switched off"))
            continue
        check = ToolCheck(role=role, tool=tool.name, device=tool.device, ok=False)
        try:
            start = time.perf_counter()
            call = _sample_call(role, tool)
            tool.load()
            check.load_s = round(time.perf_counter() - start, 2)
            call()  # warm-up: first calls allocate
            start = time.perf_counter()
            check.result = call()
            check.call_ms = round((time.perf_counter() - start) * 1000, 1)
            check.ok = True
        except GroundgraphError as exc:
            check.error = f"{type(exc).__name__}: {exc}"
        check.peak_rss_mb = round(_peak_rss_mb(), 1)
        out.append(check)
    return out
