"""Fakes for i2cr unit tests: a scripted candidate scorer and image-text scorer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from groundgraph.graphs.i2cr.config import I2CRConfig
from groundgraph.graphs.i2cr.context import I2CRContext
from groundgraph.tools.embedder import HashingEmbedder


@dataclass
class Ranking:
    scores: list[float | None]
    best: int
    llm_called: bool = False
    why: str = "fake"
    features: dict[str, dict[str, float]] = field(default_factory=dict)


class PreferenceScorer:
    """Ranks candidates by a fixed preference order of ids; counts calls."""

    def __init__(self, order: list[str]) -> None:
        self.order = order
        self.calls: list[dict[str, Any]] = []
        self.name = "fake.scorer"

    def rank(self, *, mention: str, context: str, cues: dict[str, str], candidates: list[dict[str, Any]],
             excluded: set[str]) -> Ranking:
        self.calls.append({"cues": dict(cues), "excluded": set(excluded)})
        scores: list[float | None] = []
        for c in candidates:
            if c["id"] in excluded:
                scores.append(None)
            else:
                scores.append(float(len(self.order) - self.order.index(c["id"])) if c["id"] in self.order else 0.0)
        best = max((i for i, s in enumerate(scores) if s is not None), key=lambda i: scores[i])  # type: ignore[arg-type,return-value]
        return Ranking(scores=scores, best=best)


class ScriptedImageText:
    """Returns scripted scores per round of calls (last one repeats); None means unverifiable."""

    name = "image_text.fake"

    def __init__(self, scores: list[float | None], scale: str = "clip_100cos") -> None:
        self.scores = scores
        self.scale = scale
        self.calls = 0

    def score(self, image: Any, texts: list[str]) -> list[float | None]:
        s = self.scores[min(self.calls, len(self.scores) - 1)]
        self.calls += 1
        return [s for _ in texts]


class ConstantEmbedder(HashingEmbedder):
    """Hashing embedder; tests set alpha relative to the real cosine it gives."""


def make_ctx(order: list[str], inter: list[float | None], **config: Any) -> I2CRContext:
    return I2CRContext(config=I2CRConfig(**config), scorer=PreferenceScorer(order), embedder=HashingEmbedder(),
                       image_text=ScriptedImageText(inter))


CANDIDATES = [
    {"id": "Q1", "name": "Carroll Baker", "description": "American actress"},
    {"id": "Q2", "name": "Roy Carroll", "description": "Northern Irish footballer"},
    {"id": "Q3", "name": "Edward Dickinson Baker", "description": "American politician"},
]
CUES = {"ocr": "", "caption": "a woman smiling", "dense_captions": "a woman; a swing", "tags": "person; actress"}
