"""Tools for insgenel graph tests without models: the real KnowledgeBase (SQLite + FAISS) over a small
entity file with the hashing embedder, and an LLM that prefers one option by name."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from groundgraph.graphs.insgenel.config import InsgenelConfig
from groundgraph.graphs.insgenel.context import InsgenelContext, make_context
from groundgraph.tools.llm import Choice, pick

PERSON = "Name: {n}. Sex: male. Occupation: {o}."
ENTITIES = [
    {"id": "Q19837", "name": "Steve Jobs", "description": PERSON.format(n="Steve Jobs", o="entrepreneur")},
    {"id": "Q181162", "name": "Steve Ballmer", "description": PERSON.format(n="Steve Ballmer", o="businessman")},
    {"id": "Q483382", "name": "Steve Wozniak", "description": PERSON.format(n="Steve Wozniak", o="engineer")},
    {"id": "Q312", "name": "Apple_Inc.", "description": ""},
    {"id": "Q2283", "name": "Microsoft", "description": ""},
    {"id": "Q41506", "name": "Stanford_University", "description": ""},
    {"id": "Q60", "name": "New_York_City", "description": ""},
    {"id": "Q1384", "name": "New_York", "description": ""},
    {"id": "Q9684", "name": "The_New_York_Times", "description": ""},
    {"id": "Q11259", "name": "Times_Square", "description": ""},
    {"id": "Q90", "name": "Paris", "description": ""},
    {"id": "Q1409655", "name": "Robert_Nardelli", "description": PERSON.format(n="Robert Nardelli", o="executive")},
]


def kb_file(tmp_path: Path) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "kb.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in ENTITIES), encoding="utf-8")
    return path


class FakeLLM:
    """Prefers the option named ``favourite`` (else the first); records every call."""

    name = "llm.fake"

    def __init__(self, favourite: str = "Steve Jobs") -> None:
        self.favourite = favourite
        self.calls: list[tuple[str, list[str]]] = []

    def choose(self, prompt: str, options: Sequence[str], *, calibration_prompt: str | None = None) -> Choice:
        self.calls.append((prompt, list(options)))
        return pick(options, [0.0 if o == self.favourite else -8.0 for o in options], "fake")

    def generate(self, prompt: str, **kwargs: Any) -> str:
        raise AssertionError("insgenel never generates free text")


def make_kb(tmp_path: Path) -> Any:
    from groundgraph.tools.embedder import HashingEmbedder
    from groundgraph.tools.kb import KnowledgeBase

    kb = KnowledgeBase(source=str(kb_file(tmp_path)), cache_dir=str(tmp_path / "kb-cache"),
                       embedder=HashingEmbedder())
    kb.build()
    return kb


def make_ctx(tmp_path: Path, llm: Any = None, **config: Any) -> InsgenelContext:
    """A context through the real ``make_context``: real KB, hashing embedder, optional fake LLM."""
    kb = make_kb(tmp_path)
    return make_context({"kb": kb, "embedder": kb.embedder, "llm": llm}, InsgenelConfig(**config))
