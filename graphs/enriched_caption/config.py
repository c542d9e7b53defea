"""Typed config of the enriched_caption graph (Beyond Vision, arXiv 2512.20042)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CueKind = Literal["caption", "ocr", "article_caption"]
CUE_ORDER: tuple[CueKind, ...] = ("caption", "ocr", "article_caption")


class EnrichedCaptionConfig(BaseModel):
    """Retrieval, geometric verification, passage selection and fusion settings."""

    model_config = ConfigDict(extra="forbid")

    top_k: int = Field(10, ge=1, le=100, description="corpus images retrieved by image features")
    use_geometric: bool = Field(True, description="re-rank the retrieved images by ORB + SIFT homography inliers")
    verify_top: int = Field(10, ge=1, le=100, description="retrieved images checked geometrically, in retrieval order")
    min_inliers: int = Field(
        25, ge=1, description="confidence floor: below this many inliers the embedding order is kept "
        "(measured: a wrong corpus image never reached 19 inliers on the shipped queries)")
    decisive_inliers: int | None = Field(
        100, ge=1, description="stop checking further candidates once one reaches this many inliers (None: check all)")
    min_similarity: float = Field(
        0.95, ge=-1.0, le=1.0, description="image-feature cosine at or above which the top image counts as a match "
        "without geometric evidence (a near-duplicate); the scale is the image encoder's")
    cue_order: list[CueKind] = Field(
        default_factory=lambda: list(CUE_ORDER), description="visual cues gathered; the first of caption / "
        "article_caption present is the base caption")
    ocr_min_confidence: float = Field(0.8, ge=0.0, le=1.0, description="OCR lines below this confidence are dropped")
    window_sentences: int = Field(2, ge=1, le=20, description="sentences per passage window")
    top_passages: int = Field(2, ge=0, le=20, description="best windows kept (ranked by the text embedder)")
    include_first_last: bool = Field(True, description="also keep the article's first and last sentences")
    fusion: Literal["template", "llm"] = Field(
        "template", description="template: fill the caption template from the facts (cpu default, measured); "
        "llm: the LLM rephrases the facts, guarded, falling back to the template")
    template: str = Field(
        "event", description="caption template in prompts/enriched_caption/templates.json; 'event' (the article's "
        "lead sentence) scored best on the shipped queries (CIDEr 1.90 vs 1.08 for event + visual caption)")
    max_words: int = Field(45, ge=8, le=400, description="caption length budget in words")
    llm_max_tokens: int = Field(96, ge=8, le=1024)
    guard: bool = Field(True, description="reject LLM captions that drop key facts or name things not in the sources")

    @model_validator(mode="after")
    def _check(self) -> EnrichedCaptionConfig:
        if len(set(self.cue_order)) != len(self.cue_order):
            raise ValueError("cue_order repeats a cue")
        return self
