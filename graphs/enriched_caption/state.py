"""Input, output and JSON-native state of the enriched_caption graph."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, field_validator

from groundgraph.tools.images import check_image_path


class EnrichedCaptionInput(BaseModel):
    """One image to caption from the news articles it appears in."""

    model_config = ConfigDict(extra="ignore")

    image: str = Field(description="path of the query image")
    visual_cues: dict[str, str] = Field(
        default_factory=dict, description="precomputed cue texts by kind (e.g. a base 'caption', 'ocr')")
    id: str | None = Field(None, description="the record's id, kept in the output")

    @field_validator("image")
    @classmethod
    def _image_readable(cls, v: str) -> str:
        return str(check_image_path(v))  # missing, corrupt and huge images are refused here, before any model

    @field_validator("visual_cues", mode="before")
    @classmethod
    def _cues_as_text(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): "; ".join(map(str, x)) if isinstance(x, list) else ("" if x is None else str(x))
                    for k, x in v.items()}
        return v


class RetrievedImage(BaseModel):
    image_id: str
    article_id: str
    score: float = Field(description="image-feature cosine")
    rank: int = Field(description="rank after verification (1 = best)")
    retrieval_rank: int = Field(description="rank by image features alone")
    inliers: int | None = Field(None, description="homography inliers; None when not checked")


class ArticleRef(BaseModel):
    id: str
    title: str
    date: str = ""
    place: str = ""
    url: str = ""


class Passage(BaseModel):
    text: str
    kind: Literal["window", "first", "last"]
    score: float | None = Field(None, description="cosine with the visual cue text (windows only)")
    sentences: list[int] = Field(description="[start, end) sentence indexes in the article")


class Facts(BaseModel):
    who: list[str] = []
    what: str = ""
    when: str = ""
    where: str = ""
    why: str = ""
    sources: dict[str, str] = Field(default_factory=dict, description="where each fact came from")


class EnrichedCaptionResult(BaseModel):
    """The enriched caption and everything it was built from."""

    run_id: str
    id: str | None = None
    caption: str
    matched: bool = Field(description="whether a corpus article was accepted as showing this image")
    match_by: Literal["inliers", "similarity", "none"]
    article: ArticleRef | None = None
    image_id: str | None = Field(None, description="the matched corpus image")
    retrieved: list[RetrievedImage] = []
    passages: list[Passage] = []
    facts: Facts | None = None
    visual_cue: str = Field("", description="the base visual caption used")
    visual_source: str = Field("", description="where the base caption came from: a captioner, the article image's "
                               "own caption, OCR, or none")
    fusion: Literal["template", "llm", "template_after_guard", "no_match", "nothing"]
    guard_problems: list[str] = []
    llm_calls: int = 0


class EnrichedCaptionState(TypedDict, total=False):
    image: str
    record_id: str | None
    input_cues: dict[str, str]
    hits: list[dict[str, Any]]
    match: dict[str, Any] | None
    article: dict[str, Any] | None
    cues: dict[str, str]
    cue_sources: dict[str, str]
    visual: str
    visual_source: str
    passages: list[dict[str, Any]]
    llm_calls: int
    result: dict[str, Any] | None
    trace: Annotated[list[dict[str, Any]], operator.add]
