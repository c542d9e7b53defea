"""Vector index over unit vectors (inner product = cosine), ids mapped to knowledge-base ids.

FAISS on CPU here; on ``device='cuda'`` the index is moved to the GPU when faiss-gpu is
installed. Saved as a FAISS file plus a JSON id list: nothing is pickled.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import Field

from groundgraph.tools.base import Tool, ToolConfig
from groundgraph.tools.errors import ConfigError, InputError, ToolUnavailableError

INDEX_FILE = "index.faiss"
IDS_FILE = "ids.json"


@runtime_checkable
class VectorIndex(Protocol):
    def add(self, ids: Sequence[str], vectors: np.ndarray[Any, Any]) -> None: ...

    def search(self, vectors: np.ndarray[Any, Any], k: int) -> list[list[tuple[str, float]]]: ...

    def save(self, directory: str | Path) -> None: ...

    def __len__(self) -> int: ...


class FaissConfig(ToolConfig):
    dim: int = Field(384, ge=1)
    index_type: Literal["flat", "ivf", "hnsw"] = "flat"
    nlist: int = Field(1024, ge=1, description="IVF cells (index_type='ivf')")
    nprobe: int = Field(32, ge=1, description="IVF cells visited per query")
    hnsw_m: int = Field(32, ge=4, description="HNSW neighbours per node")
    ef_search: int = Field(128, ge=1, description="HNSW search breadth")


def ivf_cells(n: int) -> int:
    """IVF cells for ``n`` vectors: the usual 4 sqrt(n), with at least 39 training vectors per cell."""
    return max(1, min(int(4 * n**0.5), n // 39))


class FaissIndex(Tool[FaissConfig]):
    """Exact (flat) or approximate (IVF, HNSW) inner-product search with string ids."""

    kind = "vector_index"
    backend = "faiss"
    Config = FaissConfig

    def __init__(self, config: Any = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.ids: list[str] = []
        self._write_lock = threading.Lock()

    def _load(self) -> Any:
        import faiss

        c = self.config
        index: Any
        if c.index_type == "flat":
            index = faiss.IndexFlatIP(c.dim)
        elif c.index_type == "ivf":
            index = faiss.IndexIVFFlat(faiss.IndexFlatIP(c.dim), c.dim, c.nlist, faiss.METRIC_INNER_PRODUCT)
            index.nprobe = c.nprobe
        else:
            index = faiss.IndexHNSWFlat(c.dim, c.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = c.ef_search
        return self._to_device(index)

    def _to_device(self, index: Any) -> Any:
        if not self.config.device.startswith("cuda"):
            return index
        import faiss

        if not hasattr(faiss, "StandardGpuResources"):
            raise ToolUnavailableError("device is cuda but the installed faiss has no GPU support (faiss-gpu)")
        gpu = int(self.config.device.split(":")[1]) if ":" in self.config.device else 0
        return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), gpu, index)

    def __len__(self) -> int:
        return len(self.ids)

    def _check(self, vectors: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        v = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        if v.ndim != 2 or v.shape[1] != self.config.dim:
            raise InputError(f"vectors must have shape (n, {self.config.dim}), got {v.shape}")
        return v

    @property
    def needs_training(self) -> bool:
        return not self.model().is_trained

    def train(self, vectors: np.ndarray[Any, Any]) -> None:
        """Train an IVF index's coarse quantiser on a sample (no-op for flat and HNSW)."""
        v = self._check(vectors)
        index = self.model()
        if not index.is_trained:
            if len(v) < self.config.nlist:
                raise InputError(f"IVF needs at least nlist={self.config.nlist} training vectors, got {len(v)}")
            index.train(v)

    def add(self, ids: Sequence[str], vectors: np.ndarray[Any, Any]) -> None:
        v = self._check(vectors)
        if len(ids) != len(v):
            raise InputError(f"{len(ids)} ids for {len(v)} vectors")
        with self._write_lock:
            if self.needs_training:
                self.train(v)
            self.model().add(v)
            self.ids.extend(str(i) for i in ids)

    def search(self, vectors: np.ndarray[Any, Any], k: int) -> list[list[tuple[str, float]]]:
        v = self._check(np.atleast_2d(vectors))
        if k < 1:
            raise InputError("k must be >= 1")
        if not self.ids:
            return [[] for _ in range(len(v))]
        scores, rows = self.model().search(v, min(k, len(self.ids)))
        return [
            [(self.ids[r], float(s)) for r, s in zip(row_ids, row_scores, strict=True) if r >= 0]
            for row_ids, row_scores in zip(rows, scores, strict=True)
        ]

    def save(self, directory: str | Path) -> None:
        import faiss

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        index = self.model()
        if hasattr(faiss, "index_gpu_to_cpu") and self.config.device.startswith("cuda"):
            index = faiss.index_gpu_to_cpu(index)
        faiss.write_index(index, str(d / (INDEX_FILE + ".tmp")))
        (d / (IDS_FILE + ".tmp")).write_text(json.dumps({"config": self.config.model_dump(), "ids": self.ids}))
        (d / (INDEX_FILE + ".tmp")).replace(d / INDEX_FILE)
        (d / (IDS_FILE + ".tmp")).replace(d / IDS_FILE)

    @classmethod
    def load_from(cls, directory: str | Path, device: str = "cpu") -> FaissIndex:
        import faiss

        d = Path(directory)
        if not (d / INDEX_FILE).is_file() or not (d / IDS_FILE).is_file():
            raise InputError(f"no saved index in {d} (expected {INDEX_FILE} and {IDS_FILE})")
        try:
            meta = json.loads((d / IDS_FILE).read_text())
            config = {**meta["config"], "device": device}
            index = faiss.read_index(str(d / INDEX_FILE))
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise InputError(f"saved index in {d} is unreadable: {exc}") from None
        self = cls(config)
        if index.ntotal != len(meta["ids"]) or index.d != self.config.dim:
            raise ConfigError(f"saved index in {d} is inconsistent: {index.ntotal} vectors, {len(meta['ids'])} ids")
        self._model = self._to_device(index)
        self.ids = [str(i) for i in meta["ids"]]
        return self
