"""Fake tools for roc graph tests: an encoder whose similarities are scripted by keywords."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from groundgraph.graphs.roc.config import RocConfig
from groundgraph.graphs.roc.context import RocContext, make_context
from groundgraph.graphs.roc.decide import NoneRule

MEMBER, COUPLE, NONE = "/per/org/member_of", "/per/per/couple", "None"
DESCRIPTIONS = {
    MEMBER: "Person member of an organization: plays for a team.",
    COUPLE: "Persons are a couple: married or dating.",
    NONE: "No relation between the head and the tail.",
}
#: a pair text containing the keyword lands near that label (and a little near None)
KEYWORDS = {"plays for": MEMBER, "married": COUPLE}


class FakeEncoder:
    """Targets (descriptions or label names) are basis vectors; a pair text is 0.9 x its keyword's label
    + 0.3 x None, or None alone when it has no keyword."""

    name = "embedder.fake"
    device = "cpu"

    def __init__(self, targets: dict[str, str] | None = None) -> None:
        self.labels = list(DESCRIPTIONS)
        self.calls: list[list[str]] = []
        self.by_text: dict[str, int] = {}
        for table in (DESCRIPTIONS, {lab: lab.strip("/").replace("/", " ").replace("_", " ") for lab in DESCRIPTIONS},
                      targets or {}):
            self.by_text.update({text: self.labels.index(lab) for lab, text in table.items()})
        self.by_text["no relation"] = self.labels.index(NONE)

    @property
    def dim(self) -> int:
        return 8

    def embed(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            if text in self.by_text:
                out[row, self.by_text[text]] = 1.0
                continue
            hit = next((lab for kw, lab in KEYWORDS.items() if kw in text), None)
            if hit:
                out[row, self.labels.index(hit)] = 0.9
                out[row, self.labels.index(NONE)] = 0.3
            else:
                out[row, self.labels.index(NONE)] = 1.0
            out[row, 7] = 0.2  # never a label: keeps cosines below 1
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class FakeImageText:
    """Scores every target text from a table (CLIP's 100 x cosine scale by default)."""

    name = "image_text.fake"

    def __init__(self, scores: dict[str, float], scale: str = "clip_100cos") -> None:
        self.scores = scores
        self.scale = scale
        self.calls = 0

    def score(self, image: Any, texts: Sequence[str]) -> list[float | None]:
        self.calls += 1
        return [self.scores.get(t, 0.0) for t in texts]


class FakeTypes:
    """A type classifier that calls every head a person and every tail an organization."""

    name = "types.fake"

    def predict_pairs(self, embedder: Any, instances: Sequence[Any]) -> list[tuple[str, str]]:
        return [("per", "org") for _ in instances]


def descriptions_file(tmp_path: Any, data: dict[str, str] | None = None) -> str:
    import json

    path = tmp_path / "descriptions.json"
    path.write_text(json.dumps(data or DESCRIPTIONS))
    return str(path)


def make_ctx(tmp_path: Any, tools: dict[str, Any] | None = None, **config: Any) -> RocContext:
    """A context through the real ``make_context``: the fake encoder as the profile's embedder (zero-shot)."""
    cfg = RocConfig(**{"encoder": "embedder", "descriptions": descriptions_file(tmp_path),
                       "none_rule": NoneRule(threshold=0.5, margin=0.2), **config})
    return make_context({"embedder": FakeEncoder(), **(tools or {})}, cfg)
