"""Candidate scorer of the i2cr ``select`` node (TES): which candidate a mention names.

Each candidate gets a few generic features (name similarity, sentence-embedding cosines of the
context and the visual cues gathered so far against its description, and agreement between the
cues/context and the structured facts of its description: sex, life years); a linear model turns
them into a score and a softmax over the candidates into probabilities (a conditional logit with
about a dozen weights, fitted on WikiMEL dev: see ``ScorerWeights``).

An optional LLM (the ``LLM`` protocol's ``choose``, a calibrated likelihood on the cpu profile)
re-scores the top candidates, but only when the cheap scores leave the choice open (the gap
between the two best is small) and only when its weight is non-zero. The LLM only ever scores
the candidates it is given, so nothing in a cue or description can make it return anything else.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rapidfuzz import fuzz

from groundgraph.prompts import load_prompt
from groundgraph.tools.embedder import TextEmbedder
from groundgraph.tools.errors import ConfigError, GroundgraphError, InputError, ToolError
from groundgraph.tools.llm import LLM

#: the paper's cue order; cues of other kinds follow in the order given
CUE_ORDER = ("ocr", "caption", "dense_captions", "tags")

FEATURE_NAMES: tuple[str, ...] = (
    "name_token_set",
    "name_exact",
    "name_coverage",
    "surname_match",
    "mention_name_cosine",
    "context_cosine",
    "evidence_cosine",
    "sex_agreement",
    "year_in_adult_life",
    "year_before_birth",
    "year_after_death",
    "old_image_early_birth",
    "description_fields",
)

SELECT_PROMPT = "i2cr/select.txt"
CALIBRATION_PROMPT = "i2cr/select_calibration.txt"

# Untrusted texts enter the LLM prompt on one line each, cut to these lengths.
_MAX_CUE_CHARS = 300
_MAX_CONTEXT_CHARS = 500
_MAX_MENTION_CHARS = 100


# --- weights --------------------------------------------------------------------------------
class ScorerWeights(BaseModel):
    """Weights of the candidate scorer: score = sum(weight * feature) (+ llm * LLM score).

    Defaults were fitted on WikiMEL dev (2,000 records, every cue stage stacked, L2 3e-3) by
    ``fit_weights`` (``benchmarks/i2cr_fit.py`` reproduces the fit and cross-validates it); a
    profile may set others, or ``load`` them from a file.
    """

    model_config = ConfigDict(extra="forbid")

    name_token_set: float = Field(default=4.99, description="rapidfuzz token_set_ratio(mention, name) / 100")
    name_exact: float = Field(default=2.32, description="1 when the mention is the entity's full title")
    name_coverage: float = Field(default=1.19, description="share of the title's words found in the mention")
    surname_match: float = Field(default=1.38, description="1 when the mention's last word matches the name's")
    mention_name_cosine: float = Field(default=2.05, description="cosine(mention, entity name)")
    context_cosine: float = Field(default=5.36, description="cosine(context, description): the ICR view")
    evidence_cosine: float = Field(default=8.01, description="cosine(context + gathered cues, description)")
    sex_agreement: float = Field(default=0.87, description="+1/-1 when cues say man/woman and the entity agrees/not")
    year_in_adult_life: float = Field(default=1.82, description="share of context years within the adult life")
    year_before_birth: float = Field(default=-1.42, description="share of context years before birth")
    year_after_death: float = Field(default=-1.18, description="share of context years after death")
    old_image_early_birth: float = Field(default=0.96, description="old-looking image x earlier birth year")
    description_fields: float = Field(default=1.79, description="log(1 + filled 'Key: value' fields): a fame prior")

    llm: float = Field(default=0.0, ge=0.0,
                       description="weight of the LLM's calibrated log-likelihood; 0 never calls it")
    llm_gap: float = Field(default=1.0, ge=0.0, description="call the LLM only when best score - second best < this")
    llm_top_k: int = Field(default=4, ge=2, le=20, description="how many of the best candidates the LLM re-scores")
    llm_prompt: Literal["likelihood", "instruction"] = Field(
        default="likelihood", description="'likelihood': a base LM scores candidate labels after a completion prompt "
        "(calibrated); 'instruction': an instruction-tuned selector (the LoRA one of `groundgraph train selector`) "
        "chooses among candidate names with the prompt it was trained on")

    def feature_weights(self) -> np.ndarray[Any, Any]:
        """The feature weights in ``FEATURE_NAMES`` order."""
        return np.array([getattr(self, n) for n in FEATURE_NAMES], dtype=np.float64)

    @classmethod
    def load(cls, path: str | Path) -> ScorerWeights:
        """Weights from a JSON object file (keys are field names; missing ones keep defaults)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read scorer weights {path}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"scorer weights {path} are not valid JSON: {exc}") from None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"invalid scorer weights in {path}: {exc}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")


# --- text helpers ---------------------------------------------------------------------------
_WORD = re.compile(r"[^\W_]+")


@lru_cache(maxsize=100_000)
def normalize(text: str) -> str:
    """Lower case, accents and punctuation dropped, words separated by one space."""
    text = unicodedata.normalize("NFKD", text.replace("_", " "))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return " ".join(_WORD.findall(text))


def title_base(name: str) -> str:
    """A Wikipedia-style title without its qualifier: 'Iron_Man_(2008_film)' -> 'Iron Man'."""
    return re.sub(r"\s*\(.*?\)\s*", " ", name.replace("_", " ")).strip() or name


def _words_match(a: str, b: str) -> bool:
    if a == b:
        return True
    if len(a) == 1 or len(b) == 1:  # an initial: "J" matches "John"
        return a[0] == b[0]
    return len(a) >= 4 and len(b) >= 4 and fuzz.ratio(a, b) >= 85  # spelling variants


def _coverage(words: Sequence[str], others: Sequence[str]) -> float:
    if not words:
        return 0.0
    return sum(any(_words_match(w, o) for o in others) for w in words) / len(words)


def name_features(mention: str, name: str) -> dict[str, float]:
    """Surface similarity of the mention and a candidate's name (its title, for Wikipedia ids)."""
    m, base, full = normalize(mention), normalize(title_base(name)), normalize(name)
    mw, bw = m.split(), base.split()
    return {
        "name_token_set": fuzz.token_set_ratio(m, base) / 100,
        # the full title: a qualified title ('Munich (district)') is not an exact match of 'Munich'
        "name_exact": float(bool(m) and m == full),
        "name_coverage": _coverage(full.split(), mw),
        "surname_match": float(bool(mw and bw) and len(mw[-1]) > 1 and _words_match(mw[-1], bw[-1])),
    }


# --- structured facts -----------------------------------------------------------------------
_MALE = frozenset({"man", "men", "boy", "boys", "gentleman", "male", "king", "father", "son",
                   "husband", "brother", "businessman", "sportsman", "beard", "moustache", "mustache"})
_FEMALE = frozenset({"woman", "women", "girl", "girls", "lady", "female", "queen", "mother",
                     "daughter", "wife", "sister", "actress", "businesswoman"})
_OLD_IMAGE = re.compile(r"\b(black and white|sketch|drawing|painting|engraving|monochrome|vintage|"
                        r"retro style|illustration)\b", re.IGNORECASE)
_SEX = re.compile(r"\bSex:\s*(male|female)\b", re.IGNORECASE)
_BIRTH = re.compile(r"\bBirth:\s*(-?\d{1,4})\b")
_DEATH = re.compile(r"\bDeath:\s*(-?\d{1,4})\b")
_FIELD = re.compile(r"\b[A-Z][a-z]+(?: [a-z]+)?: [^.]+")
_OCCUPATION = re.compile(r"\bOccupation:\s*([^.]*)")
_YEAR = re.compile(r"(?<![\d-])(1[0-9]{3}|20[0-4][0-9])(?!\d)")


def sex_evidence(text: str) -> int:
    """+1 when a text speaks of a man only, -1 of a woman only, 0 of neither or both."""
    words = set(normalize(text).split())
    return int(bool(words & _MALE)) - int(bool(words & _FEMALE))


def years_in(text: str) -> list[int]:
    """Four-digit years (1000-2049) named in a text."""
    return [int(y) for y in _YEAR.findall(text)]


@dataclass(frozen=True)
class EntityFacts:
    """What a description states about a person (WikiMEL's 'Name: .. Sex: .. Birth: ..' form)."""

    sex: int  # +1 male, -1 female, 0 unknown
    birth: int | None
    death: int | None
    fields: int  # filled 'Key: value' fields
    occupation: str

    @classmethod
    def from_description(cls, description: str) -> EntityFacts:
        birth, death = _BIRTH.search(description), _DEATH.search(description)
        sex = _SEX.search(description)
        if sex:
            sex_value = 1 if sex.group(1).lower() == "male" else -1
        else:  # a free-text abstract: its pronouns say it
            words = normalize(description).split()
            he = sum(w in ("he", "his", "him") for w in words)
            she = sum(w in ("she", "her", "hers") for w in words)
            sex_value = (he > she) - (she > he)
        occupation = _OCCUPATION.search(description)
        return cls(sex=sex_value, birth=int(birth.group(1)) if birth else None,
                   death=int(death.group(1)) if death else None,
                   fields=len(_FIELD.findall(description)),
                   occupation=occupation.group(1).strip() if occupation else "")


def year_features(years: Sequence[int], facts: EntityFacts) -> dict[str, float]:
    """Shares of the context's years before birth, in the adult life (15 to death, or to 95
    without a death year) and after death; all 0 without years or a birth year."""
    out = {"year_in_adult_life": 0.0, "year_before_birth": 0.0, "year_after_death": 0.0}
    if not years or facts.birth is None:
        return out
    end = facts.death if facts.death is not None else facts.birth + 95
    for y in years:
        if y < facts.birth:
            out["year_before_birth"] += 1
        elif facts.death is not None and y > facts.death:
            out["year_after_death"] += 1
        elif facts.birth + 15 <= y <= end:
            out["year_in_adult_life"] += 1
    return {k: v / len(years) for k, v in out.items()}


@dataclass(frozen=True)
class Evidence:
    """What the mention's side offers: its text, the cues gathered so far, and facts read off them."""

    mention: str
    context: str  # the mention itself when the input has no context
    cue_text: str  # gathered cues joined in cue order ('' before any cue)
    image_sex: int  # sex_evidence of the non-OCR cues
    old_image: bool  # cues describe a painting, sketch, black-and-white photo...
    years: tuple[int, ...]  # years named in the context

    @classmethod
    def build(cls, mention: str, context: str, cues: Mapping[str, str]) -> Evidence:
        ordered = [k for k in CUE_ORDER if k in cues] + [k for k in cues if k not in CUE_ORDER]
        texts = {k: _one_line(cues[k]) for k in ordered if isinstance(cues[k], str) and cues[k].strip()}
        visual = " ".join(t for k, t in texts.items() if k != "ocr")
        ctx = context if context.strip() else mention  # verify_intra embeds the same text: one cache entry
        return cls(mention=mention.strip(), context=ctx, cue_text=". ".join(texts.values()),
                   image_sex=sex_evidence(visual), old_image=bool(_OLD_IMAGE.search(visual)),
                   years=tuple(years_in(ctx)))

    @property
    def evidence_text(self) -> str:
        """The context with the cues appended: what the candidate's description should match."""
        return f"{self.context}. {self.cue_text}" if self.cue_text else self.context


def candidate_features(evidence: Evidence, name: str, description: str, *, context_cosine: float,
                       evidence_cosine: float, mention_name_cosine: float) -> dict[str, float]:
    """All features of one candidate, in ``FEATURE_NAMES`` order (cosines computed by the caller)."""
    facts = EntityFacts.from_description(description)
    era = 0.0
    if evidence.old_image and facts.birth is not None:
        era = min(1.0, max(-1.0, (1900 - facts.birth) / 100))
    out = {
        **name_features(evidence.mention, name),
        "mention_name_cosine": mention_name_cosine,
        "context_cosine": context_cosine,
        "evidence_cosine": evidence_cosine,
        "sex_agreement": float(evidence.image_sex * facts.sex),
        **year_features(evidence.years, facts),
        "old_image_early_birth": era,
        "description_fields": math.log1p(facts.fields),
    }
    return {k: float(out[k]) for k in FEATURE_NAMES}


# --- the scorer -----------------------------------------------------------------------------
class Ranking(BaseModel):
    """The scorer's answer for one select round; lists are aligned with the input candidates."""

    best: int | None = Field(description="index of the chosen candidate; None when all are excluded")
    scores: list[float | None] = Field(description="final score per candidate; None for excluded ones")
    probabilities: list[float] = Field(description="softmax of the scores over the non-excluded candidates")
    features: dict[str, dict[str, float]] = Field(description="feature values by candidate id")
    gap: float | None = Field(description="cheap score of the best minus the second best candidate")
    llm_called: bool
    llm_scores: dict[str, float] = Field(default_factory=dict, description="LLM score by candidate id")
    why: str = Field(description="why this candidate, and why the LLM was or was not asked")


def _one_line(text: str, limit: int | None = None) -> str:
    line = " ".join(text.split())
    return line if limit is None or len(line) <= limit else line[: limit - 1].rstrip() + "…"


def render_prompt(template: str, values: Mapping[str, str]) -> str:
    """Fill a template's ``{name}`` fields; a line whose fields are all empty is left out."""
    lines = []
    for line in template.splitlines():
        fields = re.findall(r"\{(\w+)\}", line)
        if fields and not any(values.get(f) for f in fields):
            continue
        try:
            lines.append(line.format_map(values))
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"prompt template line {line!r} cannot be filled: {exc}") from None
    return "\n".join(lines).rstrip()


def candidate_label(name: str, description: str, max_words: int = 12) -> str:
    """How the LLM sees a candidate: its title and a short summary of its description."""
    facts = EntityFacts.from_description(description)
    if description.startswith("Name:"):
        parts = [", ".join(facts.occupation.split(", ")[:3])] if facts.occupation else []
        if facts.birth is not None:
            parts.append(f"born {facts.birth}")
        summary = ", ".join(parts)
    else:
        first = re.split(r"(?<=[.!?])\s", description.strip(), maxsplit=1)[0]
        summary = " ".join(first.split()[:max_words])
    base = _one_line(title_base(name))
    return f"{base} ({_one_line(summary)})" if summary else base


def _check_candidates(candidates: Sequence[Mapping[str, Any]]) -> list[tuple[str, str, str]]:
    if not candidates:
        raise InputError("the candidate list is empty: give candidates or configure a knowledge base")
    out, seen = [], set()
    for i, c in enumerate(candidates):
        cid, name = c.get("id"), c.get("name")
        if not isinstance(cid, str) or not cid:
            raise InputError(f"candidate {i} has no id")
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"candidate {cid!r} has no name")
        if cid in seen:
            raise InputError(f"candidate id {cid!r} appears twice")
        seen.add(cid)
        desc = c.get("description") or ""
        if not isinstance(desc, str):
            raise InputError(f"candidate {cid!r} has a description that is not text")
        out.append((cid, name, desc.strip()))
    return out


def entity_texts(candidates: Sequence[Mapping[str, Any]]) -> list[str]:
    """The candidate texts ``rank`` embeds: every description (the name when it has none), then
    every title without its qualifier. Embedding these once up front (a knowledge base's
    entities, in large batches) leaves ``rank`` only the mention's own few texts to embed."""
    items = _check_candidates(candidates)
    return [d or n for _, n, d in items] + [title_base(n) for _, n, _ in items]


def _softmax(scores: np.ndarray[Any, Any], mask: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    out = np.zeros_like(scores)
    if mask.any():
        s = scores[mask] - scores[mask].max()
        e = np.exp(s)
        out[mask] = e / e.sum()
    return out


class CandidateScorer:
    """Ranks candidate entities for a mention; see the module docstring.

    ``embedder`` gives the cosines (one ``embed`` call per ``rank``; it caches repeated texts).
    ``llm`` is optional; it is asked only when ``weights.llm > 0`` and the two best cheap
    scores are closer than ``weights.llm_gap``.
    """

    name = "i2cr.candidate_scorer"

    def __init__(self, embedder: TextEmbedder, llm: LLM | None = None,
                 weights: ScorerWeights | None = None) -> None:
        self.embedder = embedder
        self.llm = llm
        self.weights = weights or ScorerWeights()

    def featurize(self, mention: str, context: str, cues: Mapping[str, str],
                  candidates: Sequence[Mapping[str, Any]]) -> list[dict[str, float]]:
        """Feature values of every candidate (input order); what ``rank`` and calibration use."""
        if not isinstance(mention, str) or not mention.strip():
            raise InputError("the mention is empty")
        items = _check_candidates(candidates)
        evidence = Evidence.build(mention, context or "", cues or {})
        vecs = self.embedder.embed([evidence.context, evidence.evidence_text, evidence.mention,
                                    *entity_texts(candidates)])
        ctx_v, ev_v, men_v = vecs[0], vecs[1], vecs[2]
        desc_v, name_v = vecs[3 : 3 + len(items)], vecs[3 + len(items) :]
        return [
            candidate_features(evidence, n, d, context_cosine=float(desc_v[i] @ ctx_v),
                               evidence_cosine=float(desc_v[i] @ ev_v),
                               mention_name_cosine=float(name_v[i] @ men_v))
            for i, (_, n, d) in enumerate(items)
        ]

    def rank(self, *, mention: str, context: str, cues: Mapping[str, str],
             candidates: Sequence[Mapping[str, Any]], excluded: Collection[str] = ()) -> Ranking:
        """Score every candidate; excluded ids are never chosen (their score is None)."""
        feats = self.featurize(mention, context, cues, candidates)
        ids = [c["id"] for c in candidates]
        mask = np.array([cid not in excluded for cid in ids])
        x = np.array([[f[n] for n in FEATURE_NAMES] for f in feats], dtype=np.float64)
        cheap = x @ self.weights.feature_weights()
        features = {cid: {k: round(v, 4) for k, v in f.items()} for cid, f in zip(ids, feats, strict=True)}
        if not mask.any():
            return Ranking(best=None, scores=[None] * len(ids), probabilities=[0.0] * len(ids),
                           features=features, gap=None, llm_called=False,
                           why="every candidate is excluded (rejected earlier in this run)")
        pool = np.flatnonzero(mask)
        order = pool[np.argsort(-cheap[pool], kind="stable")]
        gap = float(cheap[order[0]] - cheap[order[1]]) if len(order) > 1 else None
        final = cheap.copy()
        llm_scores: dict[str, float] = {}
        ask, reason = self._should_ask_llm(gap)
        called = False
        if ask:
            top = order[: self.weights.llm_top_k]
            try:
                got = self._llm_scores(mention, context, cues, [candidates[i] for i in top])
            except GroundgraphError as exc:  # a failing LLM leaves the cheap choice standing
                reason = f"the LLM failed ({exc}); the cheap scores decide"
            else:
                called = True
                floor = min(got)  # candidates the LLM did not see count as its worst
                for i, s in zip(top, got, strict=True):
                    final[i] += self.weights.llm * (s - floor)
                    llm_scores[ids[i]] = round(s, 4)
        best = int(pool[np.argmax(final[pool])])
        probs = _softmax(final, mask)
        why = (f"highest score {final[best]:.2f} (p={probs[best]:.2f}) of {len(pool)} candidates "
               f"from name, context/cue-embedding and fact features; {reason}")
        return Ranking(best=best, scores=[float(final[i]) if mask[i] else None for i in range(len(ids))],
                       probabilities=[float(p) for p in probs], features=features, gap=gap,
                       llm_called=called, llm_scores=llm_scores, why=why)

    def _should_ask_llm(self, gap: float | None) -> tuple[bool, str]:
        w = self.weights
        if self.llm is None:
            return False, "no LLM configured"
        if w.llm == 0:
            return False, "the LLM's weight is 0, so it is not asked"
        if gap is None:
            return False, "one candidate left: nothing for the LLM to decide"
        if gap >= w.llm_gap:
            return False, f"score gap {gap:.2f} >= {w.llm_gap}: the cheap signals decide, the LLM is not asked"
        return True, f"score gap {gap:.2f} < {w.llm_gap}: the LLM re-scored the top candidates"

    def _llm_scores(self, mention: str, context: str, cues: Mapping[str, str],
                    candidates: Sequence[Mapping[str, Any]]) -> list[float]:
        assert self.llm is not None
        if self.weights.llm_prompt == "instruction" and len({c["name"] for c in candidates}) == len(candidates):
            from groundgraph.graphs.i2cr.selector_data import selection_prompt

            prompt, calibration = selection_prompt(mention, context, cues, candidates), None
            options = [c["name"] for c in candidates]
        else:
            prompt, calibration = select_prompts(mention, context, cues)
            options = [candidate_label(c["name"], c.get("description") or "") for c in candidates]
        choice = self.llm.choose(prompt, options, calibration_prompt=calibration)
        if len(choice.scores) != len(options):
            raise ToolError(f"{self.llm.name} returned {len(choice.scores)} scores for {len(options)} options")
        return [float(s) for s in choice.scores]


def select_prompts(mention: str, context: str, cues: Mapping[str, str]) -> tuple[str, str]:
    """The LLM prompt and its context-free calibration prompt (templates under prompts/i2cr/).

    Cue and context texts are data: each is put on one line and cut to a bounded length.
    """
    m = _one_line(mention, _MAX_MENTION_CHARS)
    values = {k: _one_line(cues.get(k) or "", _MAX_CUE_CHARS) for k in CUE_ORDER}
    values["other_cues"] = "; ".join(_one_line(v, _MAX_CUE_CHARS) for k, v in cues.items()
                                     if k not in CUE_ORDER and isinstance(v, str) and v.strip())
    values["context"] = _one_line(context or mention, _MAX_CONTEXT_CHARS)
    values["mention"] = m
    return (render_prompt(load_prompt(SELECT_PROMPT), values),
            render_prompt(load_prompt(CALIBRATION_PROMPT), {"mention": m}))


# --- fitting --------------------------------------------------------------------------------
def fit_weights(rows: Sequence[tuple[Sequence[Mapping[str, float]], int]], *, l2: float = 3e-3,
                base: ScorerWeights | None = None, iterations: int = 50) -> ScorerWeights:
    """Fit the feature weights by maximum likelihood of a softmax over each record's candidates.

    ``rows`` holds (features of every candidate, index of the gold one); rows whose gold index
    is negative (gold not among the candidates) teach nothing and are skipped. Newton's method
    with step halving, on standardised features with an L2 penalty (per record); the LLM settings
    are copied from ``base``.
    """
    kept = [(feats, g) for feats, g in rows if 0 <= g < len(feats)]
    if not kept:
        raise InputError("no row has its gold candidate among the candidates: nothing to fit")
    # pad to one array: records may have different candidate counts
    n, m, dim = len(kept), max(len(f) for f, _ in kept), len(FEATURE_NAMES)
    x = np.zeros((n, m, dim))
    valid = np.zeros((n, m), dtype=bool)
    for r, (feats, _) in enumerate(kept):
        x[r, : len(feats)] = [[f[k] for k in FEATURE_NAMES] for f in feats]
        valid[r, : len(feats)] = True
    gold = np.array([g for _, g in kept])
    scale = x[valid].std(axis=0) + 1e-9
    xs = x / scale

    def objective(w: np.ndarray[Any, Any]) -> float:  # penalised log-likelihood
        s = np.where(valid, xs @ w, -np.inf)
        top = s.max(axis=1)
        log_z = top + np.log(np.exp(s - top[:, None]).sum(axis=1))
        return float((s[np.arange(n), gold] - log_z).sum() - l2 * n * (w @ w))

    w = np.zeros(dim)
    current = objective(w)
    for _ in range(iterations):
        s = np.where(valid, xs @ w, -np.inf)
        p = np.exp(s - s.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        mean = np.einsum("nm,nmd->nd", p, xs)
        grad = (xs[np.arange(n), gold] - mean).sum(axis=0) - 2 * l2 * n * w
        hess = (np.einsum("nmd,nm,nme->de", xs, p, xs) - mean.T @ mean + 2 * l2 * n * np.eye(dim))
        step = np.linalg.solve(hess, grad)  # Newton ascent on the concave log-likelihood
        # a full Newton step can overshoot far from the optimum (nearly separable data): halve it
        # until the objective rises
        for _ in range(30):
            trial = objective(w + step)
            if trial >= current:
                break
            step /= 2
        else:
            break
        w, current = w + step, trial
        if np.abs(step).max() < 1e-8:
            break
    values = dict(zip(FEATURE_NAMES, (w / scale).round(4).tolist(), strict=True))
    return (base or ScorerWeights()).model_copy(update=values)
