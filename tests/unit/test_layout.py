"""The house rules that keep the layout simple: packaging covers every package, imports point one way."""

from __future__ import annotations

import ast
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOP = {"agents": "groundgraph.agents", "tools": "groundgraph.tools", "graphs": "groundgraph.graphs",
       "prompts": "groundgraph.prompts"}
#: a layer may import only the layers listed for it
ALLOWED = {"tools": {"tools"}, "graphs": {"graphs", "tools", "prompts"},
           "agents": {"agents", "graphs", "tools", "prompts"}}


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_python_package_is_listed_for_installation() -> None:
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = set()
    for top, name in TOP.items():
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            found.add(".".join((name, *rel)))
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_imports_point_one_way(layer: str) -> None:
    offenders = []
    for path in (ROOT / layer).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                parts = name.split(".")
                if parts[0] == "groundgraph" and len(parts) > 1 and parts[1] not in ALLOWED[layer]:
                    offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_every_registered_plugin_loads() -> None:
    for group in ("groundgraph.tools", "groundgraph.graphs"):
        eps = list(entry_points(group=group))
        assert eps, f"nothing registered under {group}"
        for ep in eps:
            assert ep.load() is not None, ep.name
