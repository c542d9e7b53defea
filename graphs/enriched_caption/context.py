"""Run-time dependencies of the enriched_caption graph (LangGraph ``context_schema``): model handles, config."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from groundgraph.graphs.base import Tools
from groundgraph.graphs.enriched_caption.config import EnrichedCaptionConfig
from groundgraph.tools.errors import ConfigError


def load_prompt(name: str) -> str:
    return (resources.files("groundgraph.prompts") / "enriched_caption" / name).read_text(encoding="utf-8")


def load_templates() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(load_prompt("templates.json"))
    return data


@dataclass
class EnrichedCaptionContext:
    config: EnrichedCaptionConfig
    corpus: Any  # ArticleCorpus: retrieve (image search) and the matched article
    embedder: Any  # TextEmbedder: select (passage windows ranked against the visual cue)
    geometric: Any = None  # GeometricVerifier: verify (ORB + SIFT + RANSAC inliers)
    ocr: Any = None  # OCR: fetch_visual_cue ("ocr")
    cues: Any = None  # CueSource: fetch_visual_cue ("caption") when a real captioner is configured
    llm: Any = None  # LLM: fuse when config.fusion == "llm"
    templates: dict[str, Any] = field(default_factory=load_templates)
    fuse_prompt: str = field(default_factory=lambda: load_prompt("fuse.txt"))


def make_context(tools: Tools, config: EnrichedCaptionConfig) -> EnrichedCaptionContext:
    """Build the context from tools by role; a missing required tool or a config the tools cannot serve fails here."""
    for role in ("corpus", "embedder"):
        if tools.get(role) is None:
            raise ConfigError(f"enriched_caption needs a {role!r} tool; the profile configures none")
    if config.fusion == "llm" and tools.get("llm") is None:
        raise ConfigError("graphs.enriched_caption.fusion is 'llm' but the profile configures no llm tool")
    ctx = EnrichedCaptionContext(config=config, corpus=tools["corpus"], embedder=tools["embedder"],
                                 geometric=tools.get("geometric"), ocr=tools.get("ocr"), cues=tools.get("cues"),
                                 llm=tools.get("llm"))
    if config.template not in ctx.templates["templates"]:
        raise ConfigError(f"unknown caption template {config.template!r}; "
                          f"choose one of {', '.join(ctx.templates['templates'])}")
    return ctx
