"""Profiles, config precedence, the toolbox and JSONL batches with resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from groundgraph.agents.jsonl import finished_ids, run_jsonl
from groundgraph.agents.settings import load_settings
from groundgraph.agents.toolbox import Toolbox
from groundgraph.tools.errors import ConfigError, InputError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in ("GROUNDGRAPH_PROFILE", "GROUNDGRAPH_CONFIG"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("GROUNDGRAPH_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)


def test_cpu_is_the_default_profile_and_uses_packaged_models() -> None:
    s = load_settings()
    assert s.profile == "cpu"
    assert s.tools["embedder"]["backend"] == "sentence_transformers"
    assert s.tools["image_text"]["backend"] == "cue_text_proxy"
    assert s.trace.db.parent.name == "home"


def test_file_then_environment_override_the_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "g.toml"
    cfg.write_text('[tools.llm]\nn_ctx = 1024\n[tools.ocr]\nbackend = "tesseract"\n[graphs.i2cr]\nbeta = 12.5\n')
    s = load_settings(config=cfg)
    assert s.tools["llm"]["n_ctx"] == 1024 and s.tools["llm"]["backend"] == "llama_cpp"
    assert s.tools["ocr"] == {"backend": "tesseract"}  # a new backend replaces the role's config
    assert s.graphs["i2cr"]["beta"] == 12.5
    monkeypatch.setenv("GROUNDGRAPH_TOOLS__LLM__N_CTX", "2048")
    assert str(load_settings(config=cfg).tools["llm"]["n_ctx"]) == "2048"


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown profile"):
        load_settings("tpu")
    bad = tmp_path / "bad.toml"
    bad.write_text("[tools\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(config=bad)
    with pytest.raises(ConfigError, match="not found"):
        load_settings(config=tmp_path / "missing.toml")
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("colour = 'blue'\n")
    with pytest.raises(ConfigError, match="colour"):
        load_settings(config=unknown)


def test_toolbox_builds_lazily_resolves_needs_and_validates_early() -> None:
    box = Toolbox({"embedder": {"backend": "hashing", "dimension": 32}, "kb": {"backend": "sqlite"},
                   "llm": {"backend": "none"}})
    assert box.loaded() == {}
    assert box["llm"] is None
    kb = box["kb"]
    assert kb.embedder is box["embedder"]  # one shared embedder
    with pytest.raises(ConfigError, match="unknown tool"):
        Toolbox({"embedder": {"backend": "nope"}})
    with pytest.raises(ConfigError, match="dimension"):
        Toolbox({"embedder": {"backend": "hashing", "dimension": "many"}})


def test_jsonl_batch_reports_bad_records_and_resumes(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"id": "a", "x": 1}\n{oops\n{"id": "b", "x": -1}\n{"x": 3}\n')
    out = tmp_path / "out.jsonl"
    calls: list[int] = []

    def one(record: dict) -> dict:
        calls.append(record["x"])
        if record["x"] < 0:
            raise InputError("x must be positive")
        return {"y": record["x"] * 2}

    counts = run_jsonl(src, out, one)
    assert counts == {"records": 4, "skipped": 0, "done": 2, "errors": 2}
    errors = [json.loads(line) for line in (tmp_path / "out.jsonl.errors.jsonl").read_text().splitlines()]
    assert {e["id"] for e in errors} == {"line-2", "b"}
    # a crash left half a line: it is dropped and its record redone; finished ones are skipped
    with out.open("a") as f:
        f.write('{"id": "b", "y"')
    assert finished_ids(out) == {"a", "line-4"}
    calls.clear()
    counts = run_jsonl(src, out, one)
    assert counts["skipped"] == 2 and calls == [-1]
    assert len(out.read_text().splitlines()) == 2


def test_kb_build_command_takes_the_index_type(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from groundgraph.agents.cli import app

    src = tmp_path / "kb.jsonl"
    src.write_text("".join(f'{{"id": "Q{i}", "name": "Entity {i}", "description": "thing {i % 7}"}}\n'
                           for i in range(50)))
    monkeypatch.setenv("GROUNDGRAPH_TOOLS__EMBEDDER__BACKEND", "hashing")
    monkeypatch.setenv("GROUNDGRAPH_TOOLS__EMBEDDER__DISK_CACHE", "false")
    monkeypatch.setenv("GROUNDGRAPH_TOOLS__KB__CACHE_DIR", str(tmp_path / "cache"))
    result = CliRunner().invoke(app, ["kb", "build", str(src), "--index-type", "hnsw"])
    assert result.exit_code == 0, result.output
    (built,) = (tmp_path / "cache").iterdir()
    assert json.loads((built / "dense" / "ids.json").read_text())["config"]["index_type"] == "hnsw"
    bad = CliRunner().invoke(app, ["kb", "build", str(src), "--index-type", "annoy"])
    assert isinstance(bad.exception, ConfigError) and "index_type" in str(bad.exception)  # main() prints it
