"""Document -> candidate entities: the light retriever of INSGENEL-R.

Two sources, fused per entity:
- ``surface``: entities with an alias that occurs in the text (the alias table's matches);
- ``dense``: the nearest entities (name + description vectors in the KB's FAISS index) to
  each chunk of the document, embedded with the KB's text embedder.
A candidate keeps both scores; the decision step reads them as features, and partial aliases
(a first name, one word of a longer name) can be restricted to entities the retriever found
by other means (``supported_ids``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from groundgraph.graphs.insgenel.matching import FULL_FAMILIES, AliasTable, Mention, Token
from groundgraph.tools.errors import InputError


class DenseSearcher(Protocol):
    """What retrieval needs of the KB: ``KnowledgeBase.dense_batch``."""

    def dense_batch(self, queries: Sequence[str], k: int = 10) -> list[list[tuple[str, float]]]: ...


@dataclass(frozen=True)
class Chunk:
    """A window of the document, in characters."""

    start: int
    end: int
    text: str


@dataclass
class Candidate:
    """An entity the document may mention, with the evidence for it."""

    entity_id: str
    dense_score: float = 0.0  # best cosine over the chunks (0 when not retrieved densely)
    dense_rank: int | None = None  # best rank over the chunks (0 = nearest)
    mentions: int = 0  # alias matches in the text
    full_mentions: int = 0  # of which by a full-name alias
    sources: set[str] = field(default_factory=set)


@dataclass
class Retrieval:
    """What the retriever found for one document."""

    candidates: dict[str, Candidate]
    mentions: list[Mention]
    chunks: list[Chunk]

    def ranked(self) -> list[Candidate]:
        """Candidates best first: full-name matches, then dense score."""
        return sorted(self.candidates.values(),
                      key=lambda c: (-(c.full_mentions > 0), -c.dense_score, c.entity_id))

    def supported_ids(self, *, dense_top: int = 10) -> set[str]:
        """Entities named in full somewhere in the text, or among the top dense hits of a chunk."""
        return {c.entity_id for c in self.candidates.values()
                if c.full_mentions > 0 or (c.dense_rank is not None and c.dense_rank < dense_top)}


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]*[A-Z0-9#@])|\n\s*")


def sentences(text: str) -> list[Chunk]:
    """Sentence-like pieces covering the text (split after . ! ? before a capital, and at newlines)."""
    out: list[Chunk] = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        piece = text[pos : m.start()]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            out.append(Chunk(pos + lead, m.start(), piece.strip()))
        pos = m.end()
    if text[pos:].strip():
        lead = len(text[pos:]) - len(text[pos:].lstrip())
        out.append(Chunk(pos + lead, len(text.rstrip()), text[pos:].strip()))
    return out


def chunk_text(text: str, *, max_words: int = 60, overlap_words: int = 10, min_words: int = 4) -> list[Chunk]:
    """Sentence windows that cover the whole text, for dense retrieval and context.

    One chunk per sentence (MiniLM reads about 256 tokens, and one sentence keeps a topic);
    a sentence under ``min_words`` joins the next one; a sentence over ``max_words`` is cut
    into overlapping word windows, so every word has context on both sides at a border.
    """
    if max_words < 1 or not 0 <= overlap_words < max_words:
        raise InputError("chunking needs max_words >= 1 and 0 <= overlap_words < max_words")
    merged: list[tuple[int, int]] = []
    for s in sentences(text):
        if merged and len(text[merged[-1][0] : merged[-1][1]].split()) < min_words:
            merged[-1] = (merged[-1][0], s.end)
        else:
            merged.append((s.start, s.end))
    chunks: list[Chunk] = []
    for start, end in merged:
        words = [(start + m.start(), start + m.end()) for m in re.finditer(r"\S+", text[start:end])]
        if len(words) <= max_words:
            chunks.append(Chunk(start, end, text[start:end]))
            continue
        i = 0
        while i < len(words):
            j = min(i + max_words, len(words))
            a, b = words[i][0], words[j - 1][1]
            chunks.append(Chunk(a, b, text[a:b]))
            if j >= len(words):
                break
            i = j - overlap_words
    return chunks


class DocumentRetriever:
    """Candidate entities for a document from the alias table and (optionally) dense search."""

    def __init__(self, table: AliasTable, dense: DenseSearcher | None = None, *, k_dense: int = 20,
                 max_words: int = 60, overlap_words: int = 10) -> None:
        self.table = table
        self.dense = dense
        self.k_dense = k_dense
        self.max_words = max_words
        self.overlap_words = overlap_words

    def retrieve(self, text: str, *, case_insensitive: _CasePredicate | None = None) -> Retrieval:
        if not text.strip():
            raise InputError("the document is empty")
        mentions = self.table.find(text, case_insensitive=case_insensitive)
        candidates: dict[str, Candidate] = {}
        for m in mentions:
            for h in m.hits:
                c = candidates.setdefault(h.entity_id, Candidate(h.entity_id))
                c.sources.add("surface")
                c.mentions += 1
                c.full_mentions += int(h.family in FULL_FAMILIES and h.exact_case)
        chunks = chunk_text(text, max_words=self.max_words, overlap_words=self.overlap_words)
        if self.dense is not None and chunks and self.k_dense > 0:
            for hits in self.dense.dense_batch([c.text for c in chunks], k=self.k_dense):
                for rank, (eid, score) in enumerate(hits):
                    c = candidates.setdefault(eid, Candidate(eid))
                    c.sources.add("dense")
                    c.dense_score = max(c.dense_score, float(score))
                    c.dense_rank = rank if c.dense_rank is None else min(c.dense_rank, rank)
        return Retrieval(candidates, mentions, chunks)


class _CasePredicate(Protocol):
    def __call__(self, tokens: Sequence[Token], /) -> bool: ...
