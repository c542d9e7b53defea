"""Effective configuration: a profile (cpu, gpu) overlaid by a TOML file, then environment.

Precedence, lowest first: the profile's TOML in ``agents/profiles/``, the user's file
(``--config``, ``$GROUNDGRAPH_CONFIG``, or ``./groundgraph.toml``), then environment variables
``GROUNDGRAPH_<FIELD>`` with ``__`` for nesting (``GROUNDGRAPH_TOOLS__LLM__BACKEND=openai``).
"""

from __future__ import annotations

import copy
import os
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import platformdirs
from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from groundgraph.tools.errors import ConfigError

PROFILES = ("cpu", "gpu")


def data_dir() -> Path:
    return Path(os.environ.get("GROUNDGRAPH_HOME") or platformdirs.user_data_dir("groundgraph"))


class TraceSettings(BaseModel):
    db: Path = Field(default_factory=lambda: data_dir() / "traces.sqlite",
                     description="SQLite file holding checkpoints and the run index")
    enabled: bool = True


class Settings(BaseSettings):
    """Everything an Agent needs to know besides its input."""

    model_config = SettingsConfigDict(env_prefix="GROUNDGRAPH_", env_nested_delimiter="__", extra="forbid")

    profile: str = "cpu"
    trace: TraceSettings = Field(default_factory=TraceSettings)
    allowed_image_roots: list[Path] = Field(
        default_factory=list, description="roots that image paths from chat tools and servers must lie in")
    kb_source: Path | None = Field(None, description="entities JSONL of the knowledge base")
    tools: dict[str, dict[str, Any]] = Field(default_factory=dict, description="tool config by role")
    graphs: dict[str, dict[str, Any]] = Field(default_factory=dict, description="graph config by graph id")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)  # first wins: environment over files


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            # a new backend replaces the role's whole config instead of mixing two backends' fields
            if "backend" in v and v["backend"] != out[k].get("backend"):
                out[k] = copy.deepcopy(v)
            else:
                out[k] = _deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def profile_config(name: str) -> dict[str, Any]:
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    text = (resources.files("groundgraph.agents") / "profiles" / f"{name}.toml").read_text()
    return tomllib.loads(text)


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def config_file(explicit: str | Path | None = None) -> Path | None:
    if explicit:
        return Path(explicit)
    env = os.environ.get("GROUNDGRAPH_CONFIG")
    if env:
        return Path(env)
    local = Path("groundgraph.toml")
    return local if local.is_file() else None


def load_settings(profile: str | None = None, config: str | Path | None = None,
                  **overrides: Any) -> Settings:
    """The effective settings: profile, then config file, then environment, then ``overrides``."""
    path = config_file(config)
    user = _read_toml(path) if path else {}
    name = profile or os.environ.get("GROUNDGRAPH_PROFILE") or user.get("profile") or "cpu"
    merged = _deep_merge(profile_config(name), user)
    merged = _deep_merge(merged, overrides)
    merged["profile"] = name
    try:
        settings = Settings(**merged)  # environment variables are merged over these, deeply
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration{f' in {path}' if path else ''}: {problems}") from None
    return settings
