"""Agents of every graph on fake or light tools (the graphs' unit-test fakes), for the robustness suite.

Tools that take an image decode it the way the real ones do (``load_image``), so a truncated or corrupt
file that passes the input model's header check still shows, inside a node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fake_agent import FAKE_TOOLS, FakeKB
from i2cr_fakes import make_ctx as i2cr_ctx
from robust_helpers import LoadingImageText

from groundgraph.agents.agent import Agent
from groundgraph.agents.registry import graph_spec
from groundgraph.agents.runs import RunStore
from groundgraph.agents.settings import Settings, load_settings
from groundgraph.agents.toolbox import Toolbox
from groundgraph.tools.images import load_image


def settings_for(db: Path, roots: list[str] | None = None) -> Settings:
    return load_settings("cpu", trace={"db": str(db)}, allowed_image_roots=roots or [])


def i2cr_agent(db: Path, *, roots: list[str] | None = None, trace: bool = False, store: RunStore | None = None,
               inter: float = 0.0, order: list[str] | None = None, **config: Any) -> Agent:
    """i2cr on the unit tests' fakes: a preference scorer, an image-text scorer that decodes the image and
    scores ``inter`` (0: no round passes, so every cue round runs), the fake KB for inputs without candidates."""
    ctx = i2cr_ctx(order or ["Q2", "Q1"], [inter], **{"alpha": -1.0, **config})
    ctx.image_text = LoadingImageText(inter)
    ctx.kb = FakeKB()
    return Agent(graph_spec("i2cr"), settings_for(db, roots), toolbox=Toolbox(FAKE_TOOLS), context=ctx,
                 trace=trace or store is not None, store=store)


def roc_agent(tmp: Path, *, roots: list[str] | None = None, trace: bool = False, **config: Any) -> Agent:
    """roc on the unit tests' keyword encoder; the image is fused (image_weight 0.5) by a decoding scorer."""
    from roc_fakes import make_ctx as roc_ctx

    ctx = roc_ctx(tmp, tools={"image_text": LoadingImageText(20.0)}, **{"image_weight": 0.5, **config})
    return Agent(graph_spec("roc"), settings_for(tmp / "roc.sqlite", roots),
                 toolbox=Toolbox({"embedder": {"backend": "hashing"}}), context=ctx, trace=trace)


def caption_agent(tmp: Path, *, roots: list[str] | None = None, trace: bool = False, llm: Any = None,
                  **config: Any) -> Agent:
    """enriched_caption on the unit tests' two-article corpus; the corpus decodes the query image first."""
    from test_enriched_caption_graph import FakeCorpus
    from test_enriched_caption_graph import make_ctx as caption_ctx

    class DecodingCorpus(FakeCorpus):
        def search(self, image: Any, k: int) -> Any:
            load_image(image)
            return super().search(image, k)

    ctx = caption_ctx(inliers={"rocket": 80}, llm=llm, **config)
    ctx.corpus = DecodingCorpus({"rocket": 0.8, "cat": 0.9})
    toolbox = Toolbox({"embedder": {"backend": "hashing"}, "corpus": {"backend": "faiss"}})
    return Agent(graph_spec("enriched_caption"), settings_for(tmp / "caption.sqlite", roots), toolbox=toolbox,
                 context=ctx, trace=trace)


def insgenel_agent(tmp: Path, *, trace: bool = False, llm: Any = None, **config: Any) -> Agent:
    """insgenel on the real KB (SQLite + FAISS) over the unit tests' small entity file with the hashing embedder."""
    from insgenel_fakes import FakeLLM
    from insgenel_fakes import make_ctx as insgenel_ctx

    ctx = insgenel_ctx(tmp / "insgenel", llm if llm is not None else FakeLLM(), **{"threshold": 0.0, **config})
    toolbox = Toolbox({"embedder": {"backend": "hashing"}, "kb": {"backend": "sqlite"}})
    return Agent(graph_spec("insgenel"), settings_for(tmp / "insgenel.sqlite"), toolbox=toolbox, context=ctx,
                 trace=trace)
