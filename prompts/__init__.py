"""Prompt templates as files: ``<graph>/<name>.txt`` (str.format placeholders) and JSON data."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from groundgraph.tools.errors import ConfigError


@cache
def load_prompt(path: str) -> str:
    """The text of a prompt file, e.g. ``load_prompt("i2cr/select_instruction.txt")``."""
    try:
        return (resources.files(__name__) / path).read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        raise ConfigError(f"prompt file not found: prompts/{path}") from None


def load_json(path: str) -> Any:
    """A JSON data file shipped with the prompts (e.g. relation descriptions)."""
    try:
        return json.loads(load_prompt(path))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"prompts/{path} is not valid JSON: {exc}") from None
