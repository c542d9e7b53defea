"""Knowledge base: entities in SQLite, fuzzy name lookup (rapidfuzz) and dense lookup (FAISS).

``KnowledgeBase.build(jsonl)`` runs once; the SQLite file, the vectors' FAISS index and the
alias table are cached in a directory keyed by the source file's content and the embedder, so
later loads take well under a second.

A KB assembled from several sources can hold one thing twice, under a Wikidata id ('Q60', named
'New York City') and under a Wikipedia title ('New_York_City'). ``merge_id_schemes`` folds such
twins into the Wikidata entity (the id scheme that entity-linking benchmarks and Wikidata-based
KBs use); the title keeps resolving to it through ``get``.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from groundgraph.tools.base import Tool, ToolConfig
from groundgraph.tools.embedder import TextEmbedder
from groundgraph.tools.errors import ConfigError, InputError
from groundgraph.tools.vector_index import FaissIndex, ivf_cells

SCHEMA_VERSION = 2  # 2: the same_as table (ids merged into a Wikidata twin)

_WIKIDATA_ID = re.compile(r"Q[1-9][0-9]*")


class Entity(BaseModel):
    """One knowledge-base entity."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    description: str = ""
    aliases: list[str] = Field(default_factory=list)
    image: str | None = None

    @property
    def display_name(self) -> str:
        return display_name(self.name)

    def text(self) -> str:
        """What the dense index embeds: the readable name and the description."""
        desc = self.description.strip()
        return f"{self.display_name}. {desc}" if desc else self.display_name


class Match(BaseModel):
    entity: Entity
    score: float
    source: str  # "fuzzy", "dense" or "fused"


def display_name(name: str) -> str:
    """A readable name from a Wikipedia-title style id: '%C3%A9' decoded, underscores as spaces."""
    return urllib.parse.unquote(name).replace("_", " ").strip()


def name_forms(name: str) -> list[str]:
    """The name and its form without a trailing '(disambiguation)', e.g. 'Iron Man (2008 film)'."""
    shown = display_name(name)
    forms = [shown]
    bare = re.sub(r"\s*\([^)]*\)\s*$", "", shown).strip()
    if bare and bare != shown:
        forms.append(bare)
    return forms


class KBConfig(ToolConfig):
    source: str | None = Field(None, description="entities JSONL, one {id, name, description, aliases?, image?} a line")
    cache_dir: str | None = Field(None, description="where built KBs are kept (default: user cache dir)")
    index_type: Literal["flat", "ivf", "hnsw"] = Field(
        "flat", description="FAISS index for dense lookup: exact (flat) or approximate (ivf, hnsw; for KBs of "
        "millions; recall against flat in benchmarks/kb_index_scale.py)")
    nlist: int | None = Field(None, ge=1, description="IVF cells (default: 4 sqrt(entities), at least 39 "
                              "training vectors per cell)")
    nprobe: int = Field(32, ge=1, description="IVF cells visited per query")
    merge_id_schemes: bool = Field(True, description="fold a Wikipedia-title entity into the one Wikidata "
                                   "entity of the same name (see merge_id_schemes)")
    embed_batch_size: int = Field(256, ge=1)


def merge_id_schemes(entities: dict[str, Entity]) -> dict[str, str]:
    """Fold each entity whose id is not a Wikidata id into the one Wikidata entity of the same
    readable name, in place: the Wikidata entity keeps its id and gains the other's description
    (when it has none), aliases and image. Names shared by two or more Wikidata entities are left
    alone (which one is meant is unknown). Returns {merged id: Wikidata id}."""
    groups: dict[str, list[Entity]] = {}
    for e in entities.values():
        groups.setdefault(e.display_name, []).append(e)
    merged: dict[str, str] = {}
    for group in groups.values():
        wikidata = [e for e in group if _WIKIDATA_ID.fullmatch(e.id)]
        if len(wikidata) != 1 or len(group) == 1:
            continue
        keep = wikidata[0]
        for other in group:
            if other is keep:
                continue
            keep.description = keep.description or other.description
            keep.aliases = list(dict.fromkeys([*keep.aliases, *other.aliases]))
            keep.image = keep.image or other.image
            merged[other.id] = keep.id
            del entities[other.id]
    return merged


def default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("groundgraph")) / "kb"


def read_entities(path: str | Path) -> Iterator[tuple[int, Entity | str]]:
    """Yield (line number, Entity) per valid line, or (line number, error message) per bad one."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"knowledge-base file not found: {p}")
    with p.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield lineno, Entity.model_validate(json.loads(line))
            except (json.JSONDecodeError, ValidationError) as exc:
                yield lineno, f"line {lineno}: {str(exc).splitlines()[0]}"


class KnowledgeBase(Tool[KBConfig]):
    """Entities with fuzzy and dense lookup. Needs a text embedder for dense lookup."""

    kind = "kb"
    backend = "sqlite"
    Config = KBConfig
    needs = ("embedder",)

    def __init__(self, config: Any = None, embedder: TextEmbedder | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.embedder = embedder
        self.directory: Path | None = None
        self.build_errors: list[str] = []
        self._local = threading.local()
        self._aliases: list[str] = []
        self._alias_ids: list[str] = []
        self._index: FaissIndex | None = None

    # --- building -------------------------------------------------------------------------
    def _key(self, source: Path) -> str:
        h = hashlib.sha256()
        with source.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(f"v{SCHEMA_VERSION}|{getattr(self.embedder, 'name', 'none')}|{self._embedder_id()}".encode())
        if self.config.index_type != "flat":  # flat keeps the keys of KBs built before the option existed
            h.update(f"|{self.config.index_type}|{self.config.nlist}".encode())
        if not self.config.merge_id_schemes:
            h.update(b"|unmerged")
        return h.hexdigest()[:16]

    def _embedder_id(self) -> str:
        cfg = getattr(self.embedder, "config", None)
        return json.dumps(cfg.model_dump(exclude={"device", "batch_size", "cache_size"}), sort_keys=True) if cfg else ""

    def build(self, source: str | Path | None = None, *, force: bool = False,
              progress: Callable[[int, int], None] | None = None) -> Path:
        """Build (or reuse) the cached KB for ``source``; returns its directory."""
        src = Path(source or self.config.source or "")
        if not str(source or self.config.source or "").strip():
            raise ConfigError("no knowledge-base source given (config kb.source or a path)")
        if not src.is_file():
            raise InputError(f"knowledge-base file not found: {src}")
        root = Path(self.config.cache_dir) if self.config.cache_dir else default_cache_dir()
        directory = root / f"{src.stem}-{self._key(src)}"
        if (directory / "done.json").is_file() and not force:
            return self.open(directory)
        directory.mkdir(parents=True, exist_ok=True)
        entities: dict[str, Entity] = {}
        errors: list[str] = []
        for _, item in read_entities(src):
            if isinstance(item, str):
                errors.append(item)
            else:
                entities[item.id] = item  # a later line with the same id wins
        if not entities:
            raise InputError(f"{src} holds no valid entity ({len(errors)} bad lines)")
        same_as = merge_id_schemes(entities) if self.config.merge_id_schemes else {}
        db_path = directory / "entities.sqlite"
        db_path.unlink(missing_ok=True)
        con = sqlite3.connect(db_path)
        with con:
            con.execute("CREATE TABLE entities (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
                        "description TEXT NOT NULL, aliases TEXT NOT NULL, image TEXT)")
            con.execute("CREATE TABLE aliases (alias TEXT NOT NULL, id TEXT NOT NULL)")
            con.execute("CREATE TABLE same_as (id TEXT PRIMARY KEY, canonical TEXT NOT NULL)")
            con.executemany("INSERT INTO same_as VALUES (?, ?)", same_as.items())
            con.executemany("INSERT INTO entities VALUES (?, ?, ?, ?, ?)",
                            [(e.id, e.name, e.description, json.dumps(e.aliases), e.image) for e in entities.values()])
            con.executemany("INSERT INTO aliases VALUES (?, ?)",
                            [(a, e.id) for e in entities.values() for a in self._surface_forms(e)])
            con.execute("CREATE INDEX aliases_alias ON aliases(alias)")
        con.close()
        start = time.perf_counter()
        if self.embedder is not None:
            ordered = list(entities.values())
            index = FaissIndex(dim=self.embedder.dim, index_type=self.config.index_type, device=self.config.device,
                               nlist=self.config.nlist or ivf_cells(len(ordered)), nprobe=self.config.nprobe)
            if index.needs_training:  # IVF: the coarse quantiser learns from a seeded sample of the whole KB
                sample = random.Random(0).sample(ordered, min(len(ordered), 64 * index.config.nlist))
                index.train(self.embedder.embed([e.text() for e in sample]))
            step = self.config.embed_batch_size
            for i in range(0, len(ordered), step):
                chunk = ordered[i : i + step]
                index.add([e.id for e in chunk], self.embedder.embed([e.text() for e in chunk]))
                if progress:
                    progress(min(i + step, len(ordered)), len(ordered))
            index.save(directory / "dense")
        (directory / "done.json").write_text(json.dumps({
            "source": str(src), "entities": len(entities), "merged_into_wikidata_twin": len(same_as),
            "bad_lines": errors[:100],
            "bad_line_count": len(errors), "embed_seconds": round(time.perf_counter() - start, 2),
            "embedder": getattr(self.embedder, "name", None),
        }))
        self.build_errors = errors
        return self.open(directory)

    @staticmethod
    def _surface_forms(e: Entity) -> list[str]:
        return list(dict.fromkeys([*name_forms(e.name), *e.aliases]))

    # --- opening ----------------------------------------------------------------------------
    def open(self, directory: str | Path) -> Path:
        d = Path(directory)
        if not (d / "done.json").is_file():
            raise InputError(f"{d} is not a built knowledge base (run `groundgraph kb build`)")
        self.directory = d
        self._local = threading.local()
        con = self._con()
        rows = con.execute("SELECT alias, id FROM aliases").fetchall()
        self._aliases = [r[0] for r in rows]
        self._alias_ids = [r[1] for r in rows]
        self._index = FaissIndex.load_from(d / "dense", device=self.config.device) if (d / "dense").is_dir() else None
        self._model = True
        return d

    def _load(self) -> Any:
        self.build()
        return True

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            if self.directory is None:
                self.model()
            assert self.directory is not None
            con = sqlite3.connect(f"file:{self.directory / 'entities.sqlite'}?mode=ro", uri=True,
                                  check_same_thread=False)
            self._local.con = con
        return con

    # --- lookups ----------------------------------------------------------------------------
    def __len__(self) -> int:
        self.model()
        return int(self._con().execute("SELECT COUNT(*) FROM entities").fetchone()[0])

    def get(self, entity_id: str) -> Entity | None:
        found = self.get_many([entity_id])
        return found[0] if found else None

    def get_many(self, ids: Sequence[str]) -> list[Entity]:
        """Entities for ``ids`` in the given order; unknown ids are skipped. An id merged into its
        Wikidata twin gives that entity."""
        self.model()
        ids = list(ids)
        if not ids:
            return []
        rows: dict[str, Entity] = {}
        canonical: dict[str, str] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            canonical.update(self._con().execute(f"SELECT id, canonical FROM same_as WHERE id IN ({marks})", chunk))
            wanted = [canonical.get(x, x) for x in chunk]
            q = f"SELECT id, name, description, aliases, image FROM entities WHERE id IN ({marks})"
            for r in self._con().execute(q, wanted):
                rows[r[0]] = Entity(id=r[0], name=r[1], description=r[2], aliases=json.loads(r[3]), image=r[4])
        return [rows[canonical.get(i, i)] for i in ids if canonical.get(i, i) in rows]

    def exact(self, surface: str) -> list[Entity]:
        """Entities whose name or alias equals ``surface`` exactly."""
        self.model()
        ids = [r[0] for r in self._con().execute("SELECT DISTINCT id FROM aliases WHERE alias = ?", (surface,))]
        return self.get_many(ids)

    def iter_surface_forms(self) -> Iterable[tuple[str, str]]:
        """Every (surface form, entity id) pair: names, their bare forms and aliases."""
        self.model()
        return zip(self._aliases, self._alias_ids, strict=True)

    def fuzzy(self, query: str, k: int = 10) -> list[Match]:
        """Entities whose names best match ``query`` (rapidfuzz WRatio, 0..1)."""
        from rapidfuzz import fuzz, process, utils

        if not query.strip():
            raise InputError("lookup query is empty")
        self.model()
        hits = process.extract(query, self._aliases, scorer=fuzz.WRatio, processor=utils.default_process,
                               limit=k * 3)
        best: dict[str, float] = {}
        for _, score, row in hits:
            eid = self._alias_ids[row]
            best[eid] = max(best.get(eid, 0.0), score / 100.0)
        top = sorted(best.items(), key=lambda kv: -kv[1])[:k]
        ents = {e.id: e for e in self.get_many([i for i, _ in top])}
        return [Match(entity=ents[i], score=s, source="fuzzy") for i, s in top if i in ents]

    def dense(self, query: str, k: int = 10) -> list[Match]:
        """Entities whose name + description embeddings are nearest to ``query`` (cosine)."""
        if not query.strip():
            raise InputError("lookup query is empty")
        self.model()
        if self._index is None or self.embedder is None:
            raise ConfigError("this knowledge base was built without an embedder; dense lookup is off")
        hits = self._index.search(self.embedder.embed([query]), k)[0]
        ents = {e.id: e for e in self.get_many([i for i, _ in hits])}
        return [Match(entity=ents[i], score=s, source="dense") for i, s in hits if i in ents]

    def dense_batch(self, queries: Sequence[str], k: int = 10) -> list[list[tuple[str, float]]]:
        """Nearest entity ids for many queries at once (one embedding batch, one FAISS call)."""
        self.model()
        if self._index is None or self.embedder is None:
            raise ConfigError("this knowledge base was built without an embedder; dense lookup is off")
        return self._index.search(self.embedder.embed(list(queries)), k)

    def lookup(self, query: str, k: int = 10, context: str = "") -> list[Match]:
        """Fuzzy and dense lookup fused by reciprocal rank (dense uses query + context)."""
        lists = [self.fuzzy(query, k)]
        if self._index is not None and self.embedder is not None:
            lists.append(self.dense(f"{query}. {context}".strip(". ") if context else query, k))
        fused: dict[str, float] = {}
        ents: dict[str, Entity] = {}
        for matches in lists:
            for rank, m in enumerate(matches):
                fused[m.entity.id] = fused.get(m.entity.id, 0.0) + 1.0 / (60 + rank)
                ents[m.entity.id] = m.entity
        top = sorted(fused.items(), key=lambda kv: -kv[1])[:k]
        return [Match(entity=ents[i], score=s, source="fused") for i, s in top]

    def as_langchain_tool(self) -> Any:
        from langchain_core.tools import StructuredTool

        class Args(BaseModel):
            query: str = Field(description="an entity name or a short description to look up")
            k: int = Field(5, ge=1, le=50, description="how many entities to return")

        def search_knowledge_base(query: str, k: int = 5) -> list[dict[str, Any]]:
            return [{"id": m.entity.id, "name": m.entity.display_name, "description": m.entity.description,
                     "score": round(m.score, 4)} for m in self.lookup(query, k)]

        return StructuredTool.from_function(
            search_knowledge_base, name="search_knowledge_base",
            description="Find knowledge-base entities by name (fuzzy) and meaning (dense).", args_schema=Args)
