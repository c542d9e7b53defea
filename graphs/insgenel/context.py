"""Run-time dependencies of the insgenel graph (LangGraph ``context_schema``): the knowledge base, the
embedder, the LLM, and what is built from the KB once: the alias table and a cache of entity-name vectors.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from groundgraph.graphs.base import Tools
from groundgraph.graphs.insgenel.config import InsgenelConfig
from groundgraph.graphs.insgenel.decide import DecideConfig, SpanDecider
from groundgraph.graphs.insgenel.matching import AliasTable
from groundgraph.graphs.insgenel.retrieval import DocumentRetriever
from groundgraph.tools.errors import ConfigError
from groundgraph.tools.kb import display_name

# Alias tables by (KB directory, partial-alias setting): several agents over one KB (an eval's
# with/without-LLM rows, a server's graphs) share one table instead of each rebuilding it.
_TABLES: dict[tuple[str, int], AliasTable] = {}
_TABLES_LOCK = threading.Lock()


def alias_table_for(kb: Any, max_partial_frequency: int) -> tuple[AliasTable, float]:
    """(the alias table of ``kb``, seconds spent building it; 0.0 when it came from the cache)."""
    kb.model()  # builds or opens the KB (the first time only)
    key = (str(Path(kb.directory).resolve()) if getattr(kb, "directory", None) else f"id:{id(kb)}",
           max_partial_frequency)
    with _TABLES_LOCK:
        table = _TABLES.get(key)
        if table is not None:
            return table, 0.0
        start = time.perf_counter()
        table = AliasTable.from_kb(kb, max_partial_frequency=max_partial_frequency)
        _TABLES[key] = table
        return table, time.perf_counter() - start


@dataclass
class InsgenelContext:
    config: InsgenelConfig
    kb: Any  # KnowledgeBase: names for the alias table, FAISS dense lookup (dense_batch)
    embedder: Any  # TextEmbedder: chunk and entity-name vectors for the decision features
    llm: Any = None  # LLM: constrained choice among a span's options; None -> decided by features alone
    notes: list[str] = field(default_factory=list)
    _table: AliasTable | None = field(default=None, repr=False)
    _vectors: dict[str, np.ndarray[Any, Any]] = field(default_factory=dict, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    @property
    def llm_used(self) -> bool:
        return self.llm is not None and self.config.use_llm

    @property
    def table(self) -> AliasTable:
        """The KB's alias table, built on first use (about 2 s for 17k entities) and kept."""
        with self._lock:
            if self._table is None:
                self._table, seconds = alias_table_for(self.kb, self.config.max_partial_frequency)
                self.notes.append(f"alias table: {self._table.size} aliases of {len(self._table.names)} entities"
                                  + (f", built in {seconds:.1f} s" if seconds else " (cached)"))
            return self._table

    def entity_name(self, entity_id: str) -> str:
        name = self.table.names.get(entity_id)
        if name is None:
            ent = self.kb.get(entity_id)
            name = ent.display_name if ent is not None else display_name(entity_id)
        return name

    def name_vectors(self, ids: Sequence[str]) -> np.ndarray[Any, Any]:
        """Entity-name vectors, each embedded once per context (the decision features' main cost)."""
        with self._lock:
            missing = [i for i in dict.fromkeys(ids) if i not in self._vectors]
        if missing:
            vecs = self.embedder.embed([self.entity_name(i) for i in missing])
            with self._lock:
                self._vectors.update(zip(missing, np.asarray(vecs, dtype=np.float32), strict=True))
        with self._lock:
            return np.stack([self._vectors[i] for i in ids]) if ids else np.zeros((0, self.embedder.dim), np.float32)

    def retriever(self) -> DocumentRetriever:
        return DocumentRetriever(self.table, self.kb if self.config.k > 0 else None, k_dense=self.config.k,
                                 max_words=self.config.chunk_words, overlap_words=self.config.chunk_overlap)

    def decide_config(self) -> DecideConfig:
        return self.config.decide_config(llm_available=self.llm is not None)

    def decider(self) -> SpanDecider:
        """A fresh decider per run: its call counters then count this run's calls only."""
        return SpanDecider(self.embedder, self.entity_name, llm=self.llm if self.llm_used else None,
                           config=self.decide_config(), entity_vectors=self.name_vectors)


def make_context(tools: Tools, config: InsgenelConfig) -> InsgenelContext:
    """The context from tools by role: a knowledge base and an embedder are required, an LLM is optional."""
    kb, embedder = tools.get("kb"), tools.get("embedder")
    if embedder is None:
        raise ConfigError("insgenel needs an 'embedder' tool; the profile configures none")
    if kb is None:
        raise ConfigError("insgenel needs a 'kb' tool (the knowledge base to link to); the profile configures none")
    cfg = getattr(kb, "config", None)
    if cfg is not None and not (getattr(cfg, "source", None) or getattr(kb, "directory", None)):
        raise ConfigError("insgenel needs a knowledge base: give its entities JSONL (--kb, kb_source in the "
                          "config file, or GROUNDGRAPH_KB_SOURCE)")
    llm = tools.get("llm")
    notes = [f"LLM: {getattr(llm, 'name', llm)}" if llm is not None and config.use_llm else
             "LLM: off (" + ("use_llm is false" if llm is not None else "the profile has no llm tool")
             + "): ambiguous spans are decided by the features alone"]
    return InsgenelContext(config=config, kb=kb, embedder=embedder, llm=llm, notes=notes)
