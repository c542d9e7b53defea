"""Input, output and JSON-native state of the roc graph.

An input is a sentence (``tokens``, or raw ``text``) and two entities. Each entity gives its ``pos``
``[start, end)`` (token indexes with ``tokens``, character offsets with ``text``), or only its ``name``,
which is then looked up in the sentence (the first occurrence; for the tail, the first that is not the
head). Everything is checked here, so a bad span is an InputError before any model runs.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from groundgraph.graphs.roc.encoding import EntityType, make_instance
from groundgraph.tools.errors import InputError
from groundgraph.tools.images import check_image_path

# roughly MNRE's tokens: clitics apart ("Cosby 's"), @handles, #tags and "Jean-Luc" whole, punctuation alone
_TOKEN = re.compile(r"['’](?:s|re|ve|ll|d|m|t)\b|[@#]?\w+(?:[-.&]\w+)*|[^\w\s]", re.IGNORECASE)


class EntityArg(BaseModel):
    """One entity of the pair."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(None, description="the entity as written; looked up in the sentence without pos")
    pos: list[int] | None = Field(None, description="[start, end): token indexes (tokens) or char offsets (text)")
    type: EntityType | None = Field(None, description="per, org, loc or misc; predicted when absent and needed")

    @model_validator(mode="after")
    def _name_or_pos(self) -> EntityArg:
        if self.pos is None and not (self.name and self.name.strip()):
            raise PydanticCustomError("roc_input", "give the entity's name or its pos [start, end)")
        return self


class RocInput(BaseModel):
    """A sentence and an entity pair whose relation is asked for."""

    model_config = ConfigDict(extra="ignore")

    tokens: list[str] | None = Field(None, description="the tokenised sentence (MNRE style)")
    text: str | None = Field(None, max_length=20000, description="the raw sentence, when there are no tokens")
    head: EntityArg
    tail: EntityArg
    image: str | None = Field(None, description="path of the post's image")
    id: str | None = Field(None, description="the record's id, kept in the output")

    @field_validator("image")
    @classmethod
    def _image_readable(cls, v: str | None) -> str | None:
        return None if v is None or v == "" else str(check_image_path(v))

    @model_validator(mode="after")
    def _resolve(self) -> RocInput:
        try:
            return self._resolve_spans()
        except InputError as exc:  # reported as "invalid roc input: <what is wrong>", without pydantic's prefix
            raise PydanticCustomError("roc_input", str(exc)) from None

    def _resolve_spans(self) -> RocInput:
        if (self.tokens is None) == (self.text is None or not self.text.strip()):
            raise InputError("give either tokens or text (not both, not neither)")
        if self.text is not None and self.tokens is None:
            self.tokens, head, tail = tokenize_with_spans(self.text, self.head, self.tail)
            self.head, self.tail = head, tail
        else:
            assert self.tokens is not None
            for ent, other in ((self.head, None), (self.tail, self.head)):
                if ent.pos is None:
                    ent.pos = find_tokens(self.tokens, str(ent.name), avoid=other.pos if other else None)
        # the same checks as training data: spans in range, head != tail
        assert self.head.pos is not None and self.tail.pos is not None
        inst = make_instance(self.tokens, self.head.pos, self.tail.pos, head_name=self.head.name,
                             tail_name=self.tail.name)
        self.head.name, self.tail.name = inst.head.name, inst.tail.name  # a name left out: the span's text
        return self


def find_tokens(tokens: Sequence[str], name: str, avoid: Sequence[int] | None = None) -> list[int]:
    """[start, end) of ``name`` as consecutive tokens (spaces ignored); InputError if it is not there."""
    target = re.sub(r"\s+", "", name).lower()
    found: list[list[int]] = []
    for start in range(len(tokens)):
        joined = ""
        for end in range(start, len(tokens)):
            joined += tokens[end].lower()
            if joined == target:
                found.append([start, end + 1])
            if len(joined) >= len(target):
                break
    if not target or not found:
        raise InputError(f"{name!r} does not occur in the sentence")
    return next((f for f in found if list(avoid or []) != f), found[0])


def _char_span(text: str, ent: EntityArg, avoid: tuple[int, int] | None) -> tuple[int, int]:
    if ent.pos is not None:
        if len(ent.pos) != 2 or not 0 <= ent.pos[0] < ent.pos[1] <= len(text):
            raise InputError(f"character span {ent.pos} is out of range for a text of {len(text)} characters")
        return ent.pos[0], ent.pos[1]
    name = str(ent.name).strip()
    spans = [(m.start(), m.start() + len(name)) for m in re.finditer(re.escape(name), text)]
    if not spans:
        raise InputError(f"{name!r} does not occur in the text")
    return next((s for s in spans if s != avoid), spans[0])


def tokenize_with_spans(text: str, head: EntityArg, tail: EntityArg) -> tuple[list[str], EntityArg, EntityArg]:
    """Tokens of ``text`` and both entities with token spans; token boundaries are forced at the entities'
    character boundaries, so an entity is always a whole number of tokens."""
    h = _char_span(text, head, None)
    t = _char_span(text, tail, h)
    cuts = sorted({0, len(text), *h, *t})
    tokens: list[str] = []
    starts: dict[int, int] = {}
    for a, b in zip(cuts, cuts[1:], strict=False):
        starts[a] = len(tokens)
        tokens.extend(_TOKEN.findall(text[a:b]))
    starts[len(text)] = len(tokens)

    def to_tokens(ent: EntityArg, span: tuple[int, int]) -> EntityArg:
        start, end = starts[span[0]], starts[span[1]]
        if start == end:
            raise InputError(f"the entity at characters {list(span)} is only whitespace")
        return ent.model_copy(update={"pos": [start, end], "name": ent.name or " ".join(tokens[start:end])})

    return tokens, to_tokens(head, h), to_tokens(tail, t)


class RelationScore(BaseModel):
    relation: str
    score: float = Field(description="similarity to the relation's description (cosine, fused with the image "
                         "when image_weight > 0)")
    description: str = ""


class GateScore(BaseModel):
    gate: Literal["threshold", "margin"]
    value: float | None
    threshold: float
    passed: bool | None


class EntityOut(BaseModel):
    name: str
    pos: list[int]
    type: EntityType | None = None
    type_source: Literal["input", "predicted", "unused"] = "unused"


class RocResult(BaseModel):
    """The relation between head and tail, with the retrieval evidence behind it."""

    run_id: str
    id: str | None = None
    relation: str = Field(description="a label of the relation set, or 'None'")
    score: float = Field(description="the chosen label's similarity (for 'None': the None description's)")
    decided_by: Literal["retrieval", "none_rule"] = Field(
        description="retrieval: the best relation passed the None rule; none_rule: it did not")
    reason: str
    top_k: list[RelationScore] = Field(description="the best relations other than None, best first")
    none_score: float | None = Field(None, description="similarity to the None description")
    scores: dict[str, float] = Field(description="every label's similarity")
    gates: list[GateScore]
    marked_text: str = Field(description="what the encoder read")
    head: EntityOut
    tail: EntityOut
    encoder: str = Field(description="which encoder ran: a trained directory or the zero-shot embedder")
    targets: Literal["descriptions", "label_names"]
    image_used: bool
    image_note: str = ""


class RocState(TypedDict, total=False):
    tokens: list[str]
    head: dict[str, Any]
    tail: dict[str, Any]
    image: str | None
    record_id: str | None
    marked_text: str
    pair_vector: list[float]
    image_scores: dict[str, float] | None
    image_note: str
    scores: dict[str, float]
    decision: dict[str, Any] | None
    gates: list[dict[str, Any]]
    result: dict[str, Any] | None
    trace: Annotated[list[dict[str, Any]], operator.add]
