"""Per decision span: copy, choose among (mention, entity) options, or link nothing.

Every option gets features that need no generator: its alias family (a full name outranks a
first name), whether the entity is named in full elsewhere in the document ("Steve" after
"Steve Jobs"), how close the entity's name is to the mention's sentence, to the retriever's
hits and to the entities already linked without doubt (coherence), and cues of the mention
itself (lower case, inside a longer capitalised phrase). Where a span offers two entities or
more, the LLM scores the top options' names as the continuation of a prompt that holds the
context (``LLM.choose``, one call per span); its log-likelihood, relative to the best, joins
the features. Two linear steps follow: a softmax over the span's options ranks them; a
logistic regression over the best option's features (and how clearly it won) says whether it
is linked or the span means "no entity". A span with one mention naming one entity is a
*copy*: the LLM is never called for it.

The default weights live in prompts/insgenel/decide_weights.json. They are fitted on the four
ELEVANT dev files (KORE50, MSNBC, Derczynski, OKE-2015) by ``benchmarks/insgenel_fit.py``, which
rewrites that file and records in it the features left out, the regularisation and a
leave-one-dataset-out check (fit on three files, score the fourth).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from groundgraph.graphs.insgenel.matching import (
    FULL_FAMILIES,
    AliasFamily,
    AliasTable,
    DecisionSpan,
    Mention,
    Option,
    case_policy,
    decision_spans,
)
from groundgraph.graphs.insgenel.retrieval import Chunk, DocumentRetriever, Retrieval
from groundgraph.tools.embedder import TextEmbedder
from groundgraph.tools.errors import InputError
from groundgraph.tools.llm import LLM

FEATURES: tuple[str, ...] = (
    "bias", "full", "first_name", "last_name", "partial", "acronym", "lower_case_match",
    "support", "mentions_log", "ambiguity_log", "ctx_sim", "ctx_margin", "coherence",
    "dense", "sentence_start", "single_word", "lower_mention", "cap_neighbors", "short_acronym",
    "llm", "llm_top", "llm_out", "llm_p",
)
#: extra inputs of the link / no-entity classifier, about the span's best option
LINK_FEATURES: tuple[str, ...] = ("rank_p", "rank_margin", "n_entities_log", "single_entity")


def load_prompt(name: str) -> str:
    """A prompt template from prompts/insgenel/."""
    return (resources.files("groundgraph.prompts") / "insgenel" / name).read_text(encoding="utf-8")


#: where the fitted weights are kept (data, like the prompts)
WEIGHTS_FILE = "decide_weights.json"


def load_weights(name: str = WEIGHTS_FILE) -> dict[str, Any]:
    """The fitted weight sets: {"with_llm": {"rank", "link"}, "without_llm": {...}, "fit": {...}}."""
    data: dict[str, Any] = json.loads(load_prompt(name))
    return data


# Written by benchmarks/insgenel_fit.py: with the LLM's features, and without them (used when no LLM is
# given or use_llm is off). The fit leaves out "dense" (the retriever's cosine against name + description
# vectors: in this KB nearly every entity with a description is a distractor, so it would learn the KB's
# make-up, not meaning) and the partial-alias indicators (first_name, last_name, partial: they learn each
# benchmark's annotation habits, e.g. KORE50 links bare first names and the others rarely do).
_WEIGHTS = load_weights()
DEFAULT_RANK_WEIGHTS: dict[str, float] = _WEIGHTS["with_llm"]["rank"]
DEFAULT_LINK_WEIGHTS: dict[str, float] = _WEIGHTS["with_llm"]["link"]
NO_LLM_RANK_WEIGHTS: dict[str, float] = _WEIGHTS["without_llm"]["rank"]
NO_LLM_LINK_WEIGHTS: dict[str, float] = _WEIGHTS["without_llm"]["link"]
#: P(link) thresholds chosen by the fit (used when DecideConfig.threshold is None)
DEFAULT_THRESHOLD: float = float(_WEIGHTS["with_llm"].get("threshold", 0.3))
NO_LLM_THRESHOLD: float = float(_WEIGHTS["without_llm"].get("threshold", 0.3))


class DecideConfig(BaseModel):
    """Weights of the two decision steps and the gates around them.

    Step 1 ranks a span's options (softmax of ``rank_weights`` . features); step 2 decides
    whether the best one is linked or the span means no entity (logistic regression of
    ``link_weights`` over the best option's features and ``LINK_FEATURES``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    rank_weights: dict[str, float] | None = Field(
        None, description="step-1 weights; default: the fitted set for with / without an LLM")
    link_weights: dict[str, float] | None = Field(
        None, description="step-2 weights (and 'intercept'); default as for rank_weights")
    threshold: float | None = Field(
        None, ge=0.0, le=1.0, description="link a span's best option when P(link) is at least this (default: "
        "the fitted threshold of the weight set in use)")
    use_llm: bool = Field(True, description="score ambiguous spans with the LLM when one is given")
    llm_options: int = Field(8, ge=2, description="options shown to the LLM, best by the cheap features")
    llm_window: int = Field(400, ge=0, description="characters of context on each side of the mention")
    llm_skip_supported: bool = Field(
        False, description="no LLM call when an option's entity is named in full elsewhere in the text "
        "(fewer calls, some cost in F1)")
    coherence_top: int = Field(3, ge=1, description="coherence = mean cosine to this many nearest anchors")
    link_pronouns: bool = Field(
        False, description="link he/she/his/her to the last linked person (benchmarks such as "
        "OKE-2015 annotate them; most do not)")


@dataclass
class ScoredOption:
    option: Option
    features: dict[str, float]
    probability: float = 0.0


@dataclass
class Decision:
    """What was decided for one span, and how."""

    span: DecisionSpan
    method: Literal["copy", "choose", "no_entity"]
    chosen: ScoredOption | None
    options: list[ScoredOption] = field(default_factory=list)
    llm_called: bool = False


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, x))))


def _chunk_of(chunks: Sequence[Chunk], start: int) -> int:
    for i, c in enumerate(chunks):
        if c.start <= start < c.end:
            return i
    return min(range(len(chunks)), key=lambda i: abs(chunks[i].start - start)) if chunks else 0


_WORD_BEFORE = re.compile(r"([\w'’.-]+)[ \t]+$")
_WORD_AFTER = re.compile(r"^[ \t]+([\w'’.-]+)")


def capitalised_neighbours(text: str, start: int, end: int) -> int:
    """Capitalised words touching the mention (no punctuation between), not opening a sentence.

    "Vienna" in "Second Vienna Award" has two: it is likely part of a longer, other name.
    """
    n = 0
    m = _WORD_BEFORE.search(text[max(0, start - 40) : start])
    if m and m.group(1)[:1].isupper() and not m.group(1).endswith("."):
        before = text[: start - len(m.group(0))].rstrip()
        if before and before[-1] not in ".!?:\n\"“":
            n += 1
    m = _WORD_AFTER.search(text[end : end + 40])
    if m and m.group(1)[:1].isupper():
        n += 1
    return n


def cheap_score(f: Mapping[str, float]) -> float:
    """The order in which options are shown to the LLM (its top ``llm_options``)."""
    return f["ctx_sim"] + 0.5 * f["dense"] + f["full"] + f["support"]


class SpanDecider:
    """Scores the options of every decision span of one document and decides each span."""

    def __init__(self, embedder: TextEmbedder, entity_name: Callable[[str], str], *,
                 llm: LLM | None = None, config: DecideConfig | None = None,
                 entity_vectors: Callable[[Sequence[str]], np.ndarray[Any, Any]] | None = None) -> None:
        self.embedder = embedder
        self.entity_name = entity_name
        self.llm = llm
        self.config = config or DecideConfig.model_validate({})
        # a precomputed table of entity-name vectors can replace embedding names per document
        self._entity_vectors = entity_vectors
        self.llm_calls = 0
        self.llm_seconds = 0.0
        with_llm = llm is not None and self.config.use_llm
        self.rank_weights = self.config.rank_weights or (DEFAULT_RANK_WEIGHTS if with_llm else NO_LLM_RANK_WEIGHTS)
        self.link_weights = self.config.link_weights or (DEFAULT_LINK_WEIGHTS if with_llm else NO_LLM_LINK_WEIGHTS)
        fitted = DEFAULT_THRESHOLD if with_llm else NO_LLM_THRESHOLD
        self.threshold = fitted if self.config.threshold is None else self.config.threshold

    # --- features ----------------------------------------------------------------------------
    def _vectors(self, ids: Sequence[str]) -> np.ndarray[Any, Any]:
        if self._entity_vectors is not None:
            return self._entity_vectors(ids)
        # names only: a description exists for some entities and not others, and would make
        # their similarities incomparable
        return self.embedder.embed([self.entity_name(i) for i in ids])

    def features(self, text: str, spans: Sequence[DecisionSpan], all_mentions: Sequence[Mention],
                 retrieval: Retrieval) -> list[list[ScoredOption]]:
        """Feature dicts for every option of every span (the embedder is the only model used)."""
        ids = sorted({o.entity_id for s in spans for o in s.options})
        if not ids:
            return [[] for _ in spans]
        chunks = retrieval.chunks or [Chunk(0, len(text), text)]
        chunk_vecs = self.embedder.embed([c.text for c in chunks])
        vecs = self._vectors(ids)
        row = {e: i for i, e in enumerate(ids)}
        sims = vecs @ chunk_vecs.T  # entity x chunk cosine

        # full-name evidence anywhere in the text, and counts of mentions, per entity
        full_at: dict[str, set[int]] = defaultdict(set)
        count: dict[str, int] = defaultdict(int)
        for m in all_mentions:
            for h in m.hits:
                count[h.entity_id] += 1
                if h.family in FULL_FAMILIES and h.exact_case:
                    full_at[h.entity_id].add(m.start)
        # anchors: entities of copy spans named in full (no doubt about them)
        anchors = sorted({s.options[0].entity_id for s in spans
                          if s.is_copy and s.options[0].family in FULL_FAMILIES and s.options[0].exact_case})
        anchor_vecs = vecs[[row[a] for a in anchors]] if anchors else None

        out: list[list[ScoredOption]] = []
        for s in spans:
            per_mention: dict[tuple[int, int], list[Option]] = defaultdict(list)
            for o in s.options:
                per_mention[(o.start, o.end)].append(o)
            scored: list[ScoredOption] = []
            for o in s.options:
                ci = _chunk_of(chunks, o.start)
                ctx = float(sims[row[o.entity_id], ci])
                rivals = [float(sims[row[r.entity_id], ci]) for r in per_mention[(o.start, o.end)]
                          if r.entity_id != o.entity_id]
                coherence = 0.0
                if anchor_vecs is not None:
                    others = [k for k, a in enumerate(anchors) if a != o.entity_id]
                    if others:
                        cs = np.sort(anchor_vecs[others] @ vecs[row[o.entity_id]])[::-1]
                        coherence = float(cs[: self.config.coherence_top].mean())
                cand = retrieval.candidates.get(o.entity_id)
                before = text[: o.start].rstrip()
                f = {
                    "bias": 1.0,
                    "full": float(o.family in FULL_FAMILIES),
                    "first_name": float(o.family == AliasFamily.FIRST_NAME),
                    "last_name": float(o.family == AliasFamily.LAST_NAME),
                    "partial": float(o.family == AliasFamily.PARTIAL),
                    "acronym": float(o.family == AliasFamily.ACRONYM),
                    "lower_case_match": float(not o.exact_case),
                    "support": float(any(p != o.start for p in full_at.get(o.entity_id, ()))),
                    "mentions_log": math.log1p(count.get(o.entity_id, 0)),
                    "ambiguity_log": math.log(len(per_mention[(o.start, o.end)])),
                    "ctx_sim": ctx,
                    "ctx_margin": ctx - max(rivals) if rivals else 0.0,
                    "coherence": coherence,
                    "dense": cand.dense_score if cand is not None else 0.0,
                    "sentence_start": float(not before or before[-1] in ".!?:\n\"“"),
                    "single_word": float(" " not in o.mention.strip()),
                    "lower_mention": float(o.mention.lstrip("#")[:1].islower()),
                    "cap_neighbors": float(capitalised_neighbours(text, o.start, o.end)),
                    "short_acronym": float(o.family == AliasFamily.ACRONYM
                                           and sum(c.isalpha() for c in o.mention) <= 2),
                    "llm": 0.0, "llm_top": 0.0, "llm_out": 0.0, "llm_p": 0.0,
                }
                scored.append(ScoredOption(o, f))
            out.append(scored)
        return out

    def rank(self, scored: Sequence[ScoredOption]) -> list[tuple[ScoredOption, float]]:
        """Options best first, with their softmax probability within the span (step 1)."""
        w = self.rank_weights
        z = np.array([sum(w.get(k, 0.0) * v for k, v in so.features.items()) for so in scored])
        e = np.exp(z - z.max())
        p = e / e.sum()
        order = np.argsort(-z, kind="stable")
        return [(scored[i], float(p[i])) for i in order]

    def link_probability(self, ranked: Sequence[tuple[ScoredOption, float]]) -> float:
        """P(the best option is right) against "no entity" (step 2)."""
        best, p1 = ranked[0]
        p2 = ranked[1][1] if len(ranked) > 1 else 0.0
        n_entities = len({so.option.entity_id for so, _ in ranked})
        x = dict(best.features)
        x.update({"rank_p": p1, "rank_margin": p1 - p2, "n_entities_log": math.log(n_entities),
                  "single_entity": float(n_entities == 1)})
        w = self.link_weights
        return _sigmoid(w.get("intercept", 0.0) + sum(w.get(k, 0.0) * v for k, v in x.items()))

    # --- the LLM -------------------------------------------------------------------------------
    def needs_llm(self, span: DecisionSpan, scored: Sequence[ScoredOption]) -> bool:
        if self.llm is None or not self.config.use_llm or len({o.entity_id for o in span.options}) < 2:
            return False
        return not (self.config.llm_skip_supported and any(so.features["support"] for so in scored))

    def llm_prompt(self, text: str, option: Option) -> str:
        a = max(0, option.start - self.config.llm_window)
        b = min(len(text), option.end + self.config.llm_window)
        return load_prompt("choose.txt").format(context=text[a:b], mention=option.mention).rstrip("\n")

    def add_llm_features(self, text: str, scored: list[ScoredOption]) -> None:
        """One ``LLM.choose`` call: the top options' names after a prompt holding the context."""
        assert self.llm is not None
        top = sorted(scored, key=lambda so: -cheap_score(so.features))[: self.config.llm_options]
        labels = [self.entity_name(so.option.entity_id) for so in top]
        start = time.perf_counter()
        choice = self.llm.choose(self.llm_prompt(text, top[0].option), labels)
        self.llm_seconds += time.perf_counter() - start
        self.llm_calls += 1
        best = max(choice.scores)
        shares = np.exp(np.array(choice.scores) - best)
        shares /= shares.sum()
        shown = {id(so) for so in top}
        for so in scored:
            so.features["llm_out"] = 0.0 if id(so) in shown else 1.0
        for so, score, share in zip(top, choice.scores, shares, strict=True):
            so.features["llm"] = float(score - best)
            so.features["llm_top"] = float(score == best)
            so.features["llm_p"] = float(share)

    # --- deciding ------------------------------------------------------------------------------
    def decide(self, text: str, spans: Sequence[DecisionSpan], all_mentions: Sequence[Mention],
               retrieval: Retrieval) -> list[Decision]:
        decisions: list[Decision] = []
        for span, scored in zip(spans, self.features(text, spans, all_mentions, retrieval), strict=True):
            called = self.needs_llm(span, scored)
            if called:
                self.add_llm_features(text, scored)
            if not scored:
                continue
            ranked = self.rank(scored)
            for so, p in ranked:
                so.probability = p
            best = ranked[0][0]
            best.probability = self.link_probability(ranked)
            options = [so for so, _ in ranked]
            if best.probability < self.threshold:
                decisions.append(Decision(span, "no_entity", None, options, called))
            else:
                decisions.append(Decision(span, "copy" if span.is_copy else "choose", best, options, called))
        return decisions


_PRONOUN = re.compile(r"\b(he|him|his|she|her|hers|He|Him|His|She|Her|Hers)\b")


def link_pronouns(text: str, links: Mapping[tuple[int, int], str], persons: set[str] | frozenset[str],
                  *, max_distance: int = 400) -> dict[tuple[int, int], str]:
    """Personal pronouns linked to the nearest person linked before them (an optional step).

    Some benchmarks (OKE-2015) annotate coreferent pronouns, most do not; this is off unless
    asked for. Gender is not checked: the KB gives no gender for name-only entities.
    """
    ordered = sorted((span, e) for span, e in links.items() if e in persons)
    out: dict[tuple[int, int], str] = {}
    for m in _PRONOUN.finditer(text):
        before = [(span, e) for span, e in ordered if span[1] <= m.start()]
        if before and m.start() - before[-1][0][1] <= max_distance:
            out[(m.start(), m.end())] = before[-1][1]
    return out


# --- the whole core, for one document ------------------------------------------------------------
@dataclass
class Link:
    """One linked mention: character offsets into the document."""

    start: int
    end: int
    mention: str
    entity_id: str
    entity_name: str
    score: float
    method: Literal["copy", "choose", "pronoun"]

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "mention": self.mention, "entity_id": self.entity_id,
                "entity_name": self.entity_name, "score": round(self.score, 4), "method": self.method}


@dataclass
class LinkResult:
    links: list[Link]
    decisions: list[Decision]
    retrieval: Retrieval
    llm_calls: int  # generator calls made: one per ambiguous span
    naive_llm_calls: int  # one call per candidate mention, as without decision spans and copying


class DocumentLinker:
    """Retrieve, match, merge into decision spans, decide: the INSGENEL-R core for one document."""

    def __init__(self, table: AliasTable, retriever: DocumentRetriever, decider: SpanDecider) -> None:
        self.table = table
        self.retriever = retriever
        self.decider = decider

    def link(self, text: str) -> LinkResult:
        if not isinstance(text, str) or not text.strip():
            raise InputError("the document text is empty")
        retrieval = self.retriever.retrieve(text, case_insensitive=case_policy(text))
        spans = decision_spans(retrieval.mentions)
        calls_before = self.decider.llm_calls
        decisions = self.decider.decide(text, spans, retrieval.mentions, retrieval)
        name = self.decider.entity_name
        links = [Link(d.chosen.option.start, d.chosen.option.end, d.chosen.option.mention,
                      d.chosen.option.entity_id, name(d.chosen.option.entity_id), d.chosen.probability,
                      "copy" if d.method == "copy" else "choose")
                 for d in decisions if d.chosen is not None]
        if self.decider.config.link_pronouns:
            taken = {(lk.start, lk.end): lk.entity_id for lk in links}
            for (a, b), e in link_pronouns(text, taken, self.table.persons).items():
                links.append(Link(a, b, text[a:b], e, name(e), 0.5, "pronoun"))
            links.sort(key=lambda lk: lk.start)
        return LinkResult(links, decisions, retrieval, self.decider.llm_calls - calls_before,
                          len(retrieval.mentions))
