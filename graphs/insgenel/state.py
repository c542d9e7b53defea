"""Input, output and JSON-native state of the insgenel graph, and the (de)serialisers between the core's
dataclasses (matching, retrieval, decide) and the plain dicts that state and checkpoints hold.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, field_validator

from groundgraph.graphs.insgenel.matching import AliasFamily, AliasHit, DecisionSpan, Mention
from groundgraph.graphs.insgenel.retrieval import Candidate, Chunk, Retrieval

#: the longest document accepted at once (characters); longer texts should be split by the caller
MAX_TEXT_CHARS = 200_000


class InsgenelInput(BaseModel):
    """One document whose entity mentions are to be linked to the knowledge base."""

    model_config = ConfigDict(extra="ignore")

    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, description="the document")
    id: str | None = Field(None, description="the record's id, kept in the output")

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("text is blank: give the document to link")
        return v  # not stripped: offsets of the answer index the text as given

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, v: Any) -> Any:
        return None if v is None else str(v)  # benchmark files number their documents


class LinkedSpan(BaseModel):
    """One linked mention: ``text[start:end] == mention``."""

    start: int
    end: int
    mention: str
    entity_id: str
    entity_name: str
    score: float = Field(description="P(link) of the chosen option (the link / no-entity classifier)")
    method: Literal["copy", "choose", "pronoun"] = Field(
        description="copy: one mention, one entity, no model call; choose: among several options (LLM-scored "
        "when configured); pronoun: the optional pronoun step")


class InsgenelResult(BaseModel):
    """The document's links, with the cost of getting them."""

    run_id: str
    id: str | None = None
    spans: list[LinkedSpan] = Field(description="linked mentions in text order")
    llm_calls: int = Field(description="generative-model calls made (one per ambiguous decision span)")
    naive_calls: int = Field(description="calls a naive linker would make: one per candidate mention")
    decision_spans: int = Field(description="decision spans resolved")
    copied: int = Field(description="spans decided by copying (one mention, one entity)")
    no_entity: int = Field(description="spans decided as 'no entity'")
    retrieved: list[str] = Field(description="candidate entity ids of the retriever, best first")
    llm_used: bool = Field(description="whether an LLM scored the ambiguous spans")


class InsgenelState(TypedDict, total=False):
    text: str
    record_id: str | None
    mentions: list[dict[str, Any]]
    candidates: dict[str, dict[str, Any]]
    chunks: list[dict[str, Any]]
    spans: list[dict[str, Any]]
    decisions: list[dict[str, Any]]
    llm_calls: int
    result: dict[str, Any] | None
    trace: Annotated[list[dict[str, Any]], operator.add]


# --- core objects <-> JSON-native dicts ------------------------------------------------------------
def mention_to_dict(m: Mention) -> dict[str, Any]:
    return {"start": m.start, "end": m.end, "text": m.text,
            "hits": [{"entity_id": h.entity_id, "family": str(h.family), "exact_case": h.exact_case}
                     for h in m.hits]}


def mention_from_dict(d: Mapping[str, Any]) -> Mention:
    return Mention(int(d["start"]), int(d["end"]), str(d["text"]),
                   tuple(AliasHit(h["entity_id"], AliasFamily(h["family"]), bool(h["exact_case"])) for h in d["hits"]))


def candidate_to_dict(c: Candidate) -> dict[str, Any]:
    return {"entity_id": c.entity_id, "dense_score": round(float(c.dense_score), 6), "dense_rank": c.dense_rank,
            "mentions": c.mentions, "full_mentions": c.full_mentions, "sources": sorted(c.sources)}


def candidate_from_dict(d: Mapping[str, Any]) -> Candidate:
    return Candidate(d["entity_id"], float(d["dense_score"]), d["dense_rank"], int(d["mentions"]),
                     int(d["full_mentions"]), set(d["sources"]))


def retrieval_to_state(r: Retrieval) -> dict[str, Any]:
    return {"mentions": [mention_to_dict(m) for m in r.mentions],
            "candidates": {eid: candidate_to_dict(c) for eid, c in r.candidates.items()},
            "chunks": [{"start": c.start, "end": c.end} for c in r.chunks]}


def retrieval_from_state(state: Mapping[str, Any]) -> Retrieval:
    text = state["text"]
    return Retrieval({eid: candidate_from_dict(c) for eid, c in state.get("candidates", {}).items()},
                     [mention_from_dict(m) for m in state.get("mentions", [])],
                     [Chunk(c["start"], c["end"], text[c["start"]:c["end"]]) for c in state.get("chunks", [])])


def spans_to_state(spans: Sequence[DecisionSpan], mentions: Sequence[Mention]) -> list[dict[str, Any]]:
    """A span as its extent and the indexes of its mentions in ``mentions`` (no copies of them)."""
    index = {id(m): i for i, m in enumerate(mentions)}
    return [{"start": s.start, "end": s.end, "mentions": [index[id(m)] for m in s.mentions]} for s in spans]


def spans_from_state(spans: Sequence[Mapping[str, Any]], mentions: Sequence[Mention]) -> list[DecisionSpan]:
    return [DecisionSpan(int(s["start"]), int(s["end"]), [mentions[i] for i in s["mentions"]]) for s in spans]
