"""Run-time dependencies of the i2cr graph (LangGraph ``context_schema``): model handles, config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from groundgraph.graphs.base import Tools
from groundgraph.graphs.i2cr.config import I2CRConfig
from groundgraph.tools.errors import ConfigError


@dataclass
class I2CRContext:
    config: I2CRConfig
    scorer: Any  # CandidateScorer: select (TES)
    embedder: Any  # TextEmbedder: verify_intra (ICR)
    image_text: Any  # ImageTextScorer: verify_inter (IAV)
    cues: Any = None  # CueSource: fetch_visual_cue for caption / dense captions / tags
    ocr: Any = None  # OCR: fetch_visual_cue for "ocr" when the input has an image and no OCR text
    kb: Any = None  # KnowledgeBase: candidates when the input has none


def make_context(tools: Tools, config: I2CRConfig) -> I2CRContext:
    """Build the context from tools by role, checking that thresholds match the scorer's scale."""
    for role in ("embedder", "image_text"):
        if tools.get(role) is None:
            raise ConfigError(f"i2cr needs a {role!r} tool; the profile configures none")
    from groundgraph.graphs.i2cr.scoring import CandidateScorer

    image_text = tools["image_text"]
    if config.use_inter and getattr(image_text, "scale", None) != config.beta_scale:
        raise ConfigError(
            f"i2cr beta is on the {config.beta_scale!r} scale but the image_text tool "
            f"{getattr(image_text, 'name', image_text)!r} scores on {getattr(image_text, 'scale', None)!r}; "
            "calibrate beta for it (`groundgraph calibrate i2cr`) or set graphs.i2cr.beta_scale")
    return I2CRContext(
        config=config,
        scorer=CandidateScorer(tools["embedder"], tools.get("llm"), config.scoring),
        embedder=tools["embedder"],
        image_text=image_text,
        cues=tools.get("cues"),
        ocr=tools.get("ocr"),
        kb=tools.get("kb"),
    )
