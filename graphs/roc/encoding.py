"""ROC input encoding: an entity pair written into its sentence as text the encoder can read.

ROC (arXiv 2509.21151) encodes the pair with its positions and entity types marked. MNRE gives
spans but no types, so types are either read off a relation label (training data only: a
label such as ``/per/org/member_of`` says head=per, tail=org) or predicted per mention by
:class:`EntityTypeClassifier`, a softmax regression over sentence-embedder features.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np

from groundgraph.tools.embedder import TextEmbedder
from groundgraph.tools.errors import ConfigError, InputError

EntityType = Literal["per", "org", "loc", "misc"]
ENTITY_TYPES: tuple[EntityType, ...] = get_args(EntityType)
TYPE_WORDS: dict[EntityType, str] = {
    "per": "person",
    "org": "organization",
    "loc": "location",
    "misc": "thing",
}
NONE_LABEL = "None"

#: "brackets": ``[H] x [/H]``; "tokens": the same markers registered as single special tokens
#: (the encoder must have them, see training); "none": the bare sentence (an ablation).
MarkerStyle = Literal["brackets", "tokens", "none"]
MARKER_TOKENS = ("[H]", "[/H]", "[T]", "[/T]")


@dataclass(frozen=True)
class EntitySpan:
    """A mention: its text and token positions ``[start, end)``."""

    name: str
    start: int
    end: int


@dataclass(frozen=True)
class RelationInstance:
    """A tokenised sentence with the head and tail mentions whose relation is asked for."""

    tokens: tuple[str, ...]
    head: EntitySpan
    tail: EntitySpan

    @property
    def sentence(self) -> str:
        return " ".join(self.tokens)


def _span(tokens: Sequence[str], name: str | None, pos: Sequence[int], role: str) -> EntitySpan:
    if len(pos) != 2 or not all(isinstance(p, int) and not isinstance(p, bool) for p in pos):
        raise InputError(f"{role} pos must be two integers [start, end), got {list(pos)!r}")
    start, end = int(pos[0]), int(pos[1])
    if not 0 <= start < end <= len(tokens):
        raise InputError(f"{role} span [{start}, {end}) is out of range for a sentence of {len(tokens)} tokens")
    text = " ".join(tokens[start:end])
    return EntitySpan(name=name if name else text, start=start, end=end)


def make_instance(
    tokens: Sequence[str],
    head_pos: Sequence[int],
    tail_pos: Sequence[int],
    *,
    head_name: str | None = None,
    tail_name: str | None = None,
) -> RelationInstance:
    """Validate a sentence and its two spans; raise :class:`InputError` on anything unusable.

    Overlapping spans are allowed (MNRE has nested mentions such as "Kyah" inside
    "Kyah @boyband_nielm"); the very same span as head and tail is not: it names one entity.
    """
    if isinstance(tokens, str):
        raise InputError("tokens must be a list of strings, not one string")
    toks = tuple(tokens)
    if not toks:
        raise InputError("the sentence is empty")
    for i, t in enumerate(toks):
        if not isinstance(t, str) or not t.strip():
            raise InputError(f"token {i} must be a non-empty string")
    head = _span(toks, head_name, head_pos, "head")
    tail = _span(toks, tail_name, tail_pos, "tail")
    if (head.start, head.end) == (tail.start, tail.end):
        raise InputError(f"head and tail are the same span [{head.start}, {head.end}): {head.name!r}")
    return RelationInstance(tokens=toks, head=head, tail=tail)


def instance_from_record(record: Mapping[str, Any]) -> RelationInstance:
    """An instance from an MNRE-style record ``{"tokens", "head": {"name", "pos"}, "tail": ...}``."""
    try:
        head, tail = record["head"], record["tail"]
        return make_instance(
            record["tokens"],
            head["pos"],
            tail["pos"],
            head_name=head.get("name"),
            tail_name=tail.get("name"),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"record {record.get('id', '?')!r} lacks tokens/head/tail/pos: {exc}") from None


def types_from_label(label: str) -> tuple[EntityType, EntityType] | None:
    """Head and tail types a relation label names (``/per/org/member_of`` -> per, org)."""
    parts = label.strip("/").split("/")
    if len(parts) == 3 and parts[0] in ENTITY_TYPES and parts[1] in ENTITY_TYPES:
        return parts[0], parts[1]  # type: ignore[return-value]
    return None


def mark_text(
    instance: RelationInstance,
    head_type: EntityType | None = None,
    tail_type: EntityType | None = None,
    *,
    style: MarkerStyle = "brackets",
    pair_suffix: bool = True,
) -> str:
    """The sentence with head and tail marked, plus an optional "head ... tail ..." summary.

    With mean pooling every token weighs the same; the suffix repeats the pair (with its
    types) at the end so the vector is about this pair and not just the sentence, which
    matters because one MNRE sentence carries several pairs with different relations.
    """
    words = list(instance.tokens)
    h, t = instance.head, instance.tail
    if style != "none":
        h_open = "[H]" if head_type is None or style == "tokens" else f"[H] {TYPE_WORDS[head_type]} :"
        t_open = "[T]" if tail_type is None or style == "tokens" else f"[T] {TYPE_WORDS[tail_type]} :"
        opens: dict[int, list[tuple[int, str]]] = {}
        closes: dict[int, list[tuple[int, str]]] = {}
        for span, open_m, close_m in ((h, h_open, "[/H]"), (t, t_open, "[/T]")):
            # nested spans: the longer one opens first and closes last
            opens.setdefault(span.start, []).append((-(span.end - span.start), open_m))
            closes.setdefault(span.end, []).append((span.end - span.start, close_m))
        out: list[str] = []
        for i in range(len(words) + 1):
            out.extend(m for _, m in sorted(closes.get(i, [])))
            out.extend(m for _, m in sorted(opens.get(i, [])))
            if i < len(words):
                out.append(words[i])
        words = out
    text = " ".join(words)
    if pair_suffix:
        head_desc = h.name if head_type is None else f"{h.name} ({TYPE_WORDS[head_type]})"
        tail_desc = t.name if tail_type is None else f"{t.name} ({TYPE_WORDS[tail_type]})"
        text = f"{text} | head: {head_desc} ; tail: {tail_desc}"
    return text


class EntityTypeClassifier:
    """Coarse entity type (per/org/loc/misc) of a mention in its sentence.

    Features: the embedder's vector of the mention's name and of the sentence with the mention
    marked; a softmax regression on top. Trained on the mentions of labelled (non-None)
    training pairs, whose types the label names. Saved as JSON (no pickle).
    """

    def __init__(self, weights: np.ndarray[Any, Any], bias: np.ndarray[Any, Any]) -> None:
        if weights.ndim != 2 or weights.shape[1] != len(ENTITY_TYPES) or bias.shape != (len(ENTITY_TYPES),):
            raise ConfigError(f"type classifier weights have shape {weights.shape}, bias {bias.shape}")
        self.weights = weights.astype(np.float32)
        self.bias = bias.astype(np.float32)

    @staticmethod
    def mention_texts(instance: RelationInstance, role: Literal["head", "tail"]) -> tuple[str, str]:
        span = instance.head if role == "head" else instance.tail
        words = list(instance.tokens)
        in_context = " ".join([*words[: span.start], "[E]", *words[span.start : span.end], "[/E]", *words[span.end :]])
        return span.name, in_context

    @classmethod
    def features(
        cls, embedder: TextEmbedder, mentions: Sequence[tuple[RelationInstance, Literal["head", "tail"]]]
    ) -> np.ndarray[Any, Any]:
        pairs = [cls.mention_texts(inst, role) for inst, role in mentions]
        if not pairs:
            return np.zeros((0, 2 * embedder.dim), dtype=np.float32)
        names = embedder.embed([p[0] for p in pairs])
        contexts = embedder.embed([p[1] for p in pairs])
        return np.concatenate([names, contexts], axis=1)

    @classmethod
    def fit(
        cls,
        features: np.ndarray[Any, Any],
        types: Sequence[EntityType],
        *,
        l2: float = 1e-3,
        steps: int = 300,
        seed: int = 0,
    ) -> EntityTypeClassifier:
        """Fit by full-batch L-BFGS (a few thousand mentions: seconds on a CPU)."""
        import torch

        if len(features) != len(types) or not len(types):
            raise InputError(f"{len(features)} feature rows for {len(types)} types")
        torch.manual_seed(seed)
        x = torch.as_tensor(np.asarray(features, dtype=np.float32))
        y = torch.as_tensor([ENTITY_TYPES.index(t) for t in types])
        w = torch.zeros(x.shape[1], len(ENTITY_TYPES), requires_grad=True)
        b = torch.zeros(len(ENTITY_TYPES), requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(x @ w + b, y) + l2 * (w * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
        return cls(w.detach().numpy(), b.detach().numpy())

    def predict_proba(self, features: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        logits = np.asarray(features, dtype=np.float32) @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, features: np.ndarray[Any, Any]) -> list[EntityType]:
        return [ENTITY_TYPES[i] for i in self.predict_proba(features).argmax(axis=1)]

    def predict_pairs(
        self, embedder: TextEmbedder, instances: Sequence[RelationInstance]
    ) -> list[tuple[EntityType, EntityType]]:
        """(head type, tail type) for each instance."""
        mentions = [(inst, role) for inst in instances for role in ("head", "tail")]
        types = self.predict(self.features(embedder, mentions))  # type: ignore[arg-type]
        return [(types[2 * i], types[2 * i + 1]) for i in range(len(instances))]

    def save(self, path: str | Path) -> None:
        data = {"types": list(ENTITY_TYPES), "weights": self.weights.tolist(), "bias": self.bias.tolist()}
        Path(path).write_text(json.dumps(data))

    @classmethod
    def load(cls, path: str | Path) -> EntityTypeClassifier:
        try:
            data = json.loads(Path(path).read_text())
            if data["types"] != list(ENTITY_TYPES):
                raise ConfigError(f"type classifier {path} has types {data['types']}")
            return cls(np.asarray(data["weights"]), np.asarray(data["bias"]))
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"type classifier {path} is unreadable: {exc}") from None
