"""The toolbox: a profile's tools by role, built lazily from config, shared by every run."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from groundgraph.tools.base import Tool
from groundgraph.tools.errors import ConfigError
from groundgraph.tools.registry import tool_class

NONE_BACKENDS = ("none", "", None)


class Toolbox(Mapping[str, Any]):
    """Maps a role ("embedder", "llm", ...) to a Tool; a role set to backend "none" maps to None.

    Tools are created on first access, and their models load on first use, so building a
    toolbox costs nothing. A tool's ``needs`` (other roles) are resolved from the same toolbox.
    """

    def __init__(self, configs: Mapping[str, Mapping[str, Any]], kb_source: str | None = None) -> None:
        self.configs = {role: dict(cfg) for role, cfg in configs.items()}
        if kb_source and "kb" in self.configs and not self.configs["kb"].get("source"):
            self.configs["kb"]["source"] = str(kb_source)
        self._tools: dict[str, Tool[Any] | None] = {}
        self._lock = threading.RLock()
        for role, cfg in self.configs.items():  # fail early on unknown backends and bad fields
            if cfg.get("backend") not in NONE_BACKENDS:
                cls = tool_class(f"{role}.{cfg['backend']}")
                cls.make_config(cfg)

    def __getitem__(self, role: str) -> Any:
        with self._lock:
            if role not in self._tools:
                self._tools[role] = self._create(role, ())
            return self._tools[role]

    def get(self, role: str, default: Any = None) -> Any:  # type: ignore[override]
        return self[role] if role in self.configs else default

    def _create(self, role: str, chain: tuple[str, ...]) -> Tool[Any] | None:
        if role in chain:
            raise ConfigError(f"tools depend on each other in a cycle: {' -> '.join((*chain, role))}")
        cfg = self.configs.get(role)
        if cfg is None:
            raise KeyError(role)
        if cfg.get("backend") in NONE_BACKENDS:
            return None
        cls = tool_class(f"{role}.{cfg['backend']}")
        deps = {}
        for need in cls.needs:
            if need in self._tools:
                deps[need] = self._tools[need]
            elif need in self.configs:
                deps[need] = self._tools[need] = self._create(need, (*chain, role))
            else:
                deps[need] = None
        return cls(cfg, **deps)

    def __iter__(self) -> Iterable[str]:  # type: ignore[override]
        return iter(self.configs)

    def __len__(self) -> int:
        return len(self.configs)

    def loaded(self) -> dict[str, bool]:
        return {role: bool(t is not None and t.loaded) for role, t in self._tools.items()}
