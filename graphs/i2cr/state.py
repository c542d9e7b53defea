"""Input, output and JSON-native state of the i2cr graph."""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, field_validator

from groundgraph.tools.images import check_image_path


class Candidate(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    description: str = ""


class I2CRInput(BaseModel):
    """One mention to link. ``candidates`` may be omitted: they are then retrieved from the KB."""

    model_config = ConfigDict(extra="ignore")

    mention: str = Field(min_length=1, max_length=1000, description="the mention text")
    context: str = Field("", max_length=20000, description="text around the mention (a caption, a sentence)")
    image: str | None = Field(None, description="path of the mention's image")
    candidates: list[Candidate] | None = Field(None, description="entities to choose from")
    visual_cues: dict[str, str] = Field(default_factory=dict, description="precomputed cue texts by kind")
    id: str | None = Field(None, description="the record's id, kept in the output")

    @field_validator("mention")
    @classmethod
    def _mention_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("mention is blank")
        return v.strip()

    @field_validator("image")
    @classmethod
    def _image_readable(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        return str(check_image_path(v))

    @field_validator("candidates")
    @classmethod
    def _candidates_not_empty(cls, v: list[Candidate] | None) -> list[Candidate] | None:
        if v is not None and not v:
            raise ValueError("candidate list is empty; omit it to retrieve candidates from the knowledge base")
        if v is not None and len({c.id for c in v}) != len(v):
            raise ValueError("candidate ids repeat")
        return v

    @field_validator("visual_cues", mode="before")
    @classmethod
    def _cues_as_text(cls, v: Any) -> Any:
        if isinstance(v, dict):  # MEL records carry lists for some cue kinds
            return {str(k): "; ".join(map(str, x)) if isinstance(x, list) else ("" if x is None else str(x))
                    for k, x in v.items()}
        return v


class EntityOut(BaseModel):
    id: str
    name: str
    description: str = ""


class GateScore(BaseModel):
    gate: Literal["intra", "inter"]
    round: int
    entity_id: str
    value: float | None
    threshold: float
    passed: bool | None
    scale: str


class I2CRResult(BaseModel):
    """The linked entity and how it was reached."""

    run_id: str
    id: str | None = None
    entity: EntityOut | None
    accepted_by: Literal["inter_modal", "unverifiable_accept", "gate_off", "fallback", "no_candidate"]
    rounds: int
    gates: list[GateScore]
    cues_used: list[str]
    llm_calls: int = 0


class I2CRState(TypedDict, total=False):
    mention: str
    context: str
    image: str | None
    record_id: str | None
    candidates: list[dict[str, Any]]
    cues_available: dict[str, str]
    cues: dict[str, str]
    cue_queue: list[str]
    round: int
    rejected: list[str]
    reselections: int
    selection: dict[str, Any] | None
    choices: list[dict[str, Any]]
    accepted_by: str | None
    gates: Annotated[list[dict[str, Any]], operator.add]
    llm_calls: int
    result: dict[str, Any] | None
    trace: Annotated[list[dict[str, Any]], operator.add]
