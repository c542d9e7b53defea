"""Typed config of the i2cr graph, with the paper's defaults."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from groundgraph.graphs.i2cr.scoring import ScorerWeights

CUE_ORDER = ("ocr", "caption", "dense_captions", "tags")


class I2CRConfig(BaseModel):
    """Gates, loop bounds and ablation switches of I2CR (arXiv 2508.02243)."""

    model_config = ConfigDict(extra="forbid")

    alpha: float = Field(0.3, description="ICR: min cosine(context, entity description) to keep the entity")
    beta: float = Field(31.0, description="IAV: min image-text score to accept (paper: 31 on CLIP's 100 x cosine)")
    beta_scale: str = Field("clip_100cos", description="the score scale beta is on; must match the image_text tool")
    max_rounds: int = Field(5, ge=1, le=20, description="select/verify rounds, the first one text only")
    cue_order: list[str] = Field(default_factory=lambda: list(CUE_ORDER), description="visual cues, one per round")
    all_cues_at_once: bool = Field(False, description="ablation: give select every cue in round 1 (paper's 'all info')")
    use_intra: bool = Field(True, description="ablation switch for the ICR gate")
    use_inter: bool = Field(True, description="ablation switch for the IAV gate")
    max_reselections: int = Field(3, ge=0, description="ICR rejections allowed per run before accepting to IAV")
    fallback: Literal["text_only", "last_round"] = Field(
        "text_only", description="answer when no round passes IAV: the round-1 choice (paper) or the last one")
    unverifiable: Literal["accept"] = Field(
        "accept", description="rule when the image gives nothing to score (no image, no cues): accept the choice")
    top_k: int = Field(10, ge=1, le=100, description="candidates retrieved from the KB when the input has none")
    scoring: ScorerWeights = Field(default_factory=ScorerWeights, description="select's candidate scorer")

    @model_validator(mode="after")
    def _check(self) -> I2CRConfig:
        if len(set(self.cue_order)) != len(self.cue_order):
            raise ValueError("cue_order repeats a cue")
        return self
