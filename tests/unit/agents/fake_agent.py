"""An i2cr Agent on fake tools with its trace store in a temporary directory (for agents tests)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "graphs"))  # i2cr_fakes lives beside the graph tests

from i2cr_fakes import CANDIDATES, CUES, make_ctx  # noqa: E402

from groundgraph.agents.agent import Agent  # noqa: E402
from groundgraph.agents.registry import graph_spec  # noqa: E402
from groundgraph.agents.settings import load_settings  # noqa: E402
from groundgraph.agents.toolbox import Toolbox  # noqa: E402

# the toolbox only has to name the roles i2cr needs; the fake context does the work
FAKE_TOOLS = {"embedder": {"backend": "hashing"}, "image_text": {"backend": "cue_text_proxy"}}
RECORD = {"mention": "Carroll Baker", "context": "Carroll Baker in the swing scene", "candidates": CANDIDATES,
          "visual_cues": CUES}


class FakeKB:
    """Every lookup returns the three fake candidates (for inputs without candidates)."""

    name = "kb.fake"

    def lookup(self, mention: str, k: int, context: str = "") -> list[Any]:
        return [SimpleNamespace(entity=SimpleNamespace(id=c["id"], display_name=c["name"],
                                                       description=c["description"])) for c in CANDIDATES[:k]]


def fake_agent(db: Path, order: list[str] | None = None, inter: list[float | None] | None = None,
               allowed_image_roots: list[str] | None = None, **config: Any) -> Agent:
    """Scorer prefers ``order``; the image-text scorer returns ``inter`` per call (alpha off by default)."""
    settings = load_settings("cpu", trace={"db": str(db)}, allowed_image_roots=allowed_image_roots or [])
    ctx = make_ctx(order or ["Q2", "Q1"], inter if inter is not None else [0.0, 50.0], **{"alpha": -1.0, **config})
    ctx.kb = FakeKB()
    return Agent(graph_spec("i2cr"), settings, toolbox=Toolbox(FAKE_TOOLS), context=ctx)


__all__ = ["CANDIDATES", "CUES", "FAKE_TOOLS", "RECORD", "FakeKB", "fake_agent"]
