"""Untrusted paths stay inside the allowed image roots, and nothing is unpickled.

- >= 1000 generated paths (``..``, ``.``, symlinks leading out, absolute paths elsewhere, ``~``, NULs,
  names too long) through ``resolve_image_path`` (what chat tools, the MCP server and the langgraph dev
  server use): an accepted path is always an existing file whose real location is inside a root.
- Pickle: no module of agents/, tools/, graphs/ imports a pickle-family loader or calls torch.load without
  weights_only=True or np.load with allow_pickle; a built knowledge base (SQLite + FAISS + JSON) reopens
  and answers with every pickle entry point disabled; a pickle payload planted in a KB's index files is
  refused with a typed error and never runs.
"""

from __future__ import annotations

import ast
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from robust_helpers import FUZZ, REPO, Tally, record

from groundgraph.agents.paths import resolve_image_path
from groundgraph.tools.errors import InputError, PathNotAllowedError

pytestmark = pytest.mark.robustness


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("paths")
    root, other_root, outside = base / "images", base / "more", base / "outside"
    for d in (root / "sub", other_root, outside / "deep"):
        d.mkdir(parents=True)
    for f in (root / "ok.png", root / "sub" / "in_sub.png", other_root / "other.png", outside / "secret.png",
              outside / "deep" / "x.png"):
        Image.new("RGB", (8, 8)).save(f, "PNG")
    (root / "link_out.png").symlink_to(outside / "secret.png")
    (root / "link_out_dir").symlink_to(outside, target_is_directory=True)
    (root / "link_in.png").symlink_to(root / "ok.png")
    (root / "sub" / "up").symlink_to(base, target_is_directory=True)
    (root / "loop").symlink_to(root / "loop")
    (base / "root_link").symlink_to(root, target_is_directory=True)  # a root given through a symlink
    return {"base": base, "root": root, "other_root": other_root, "outside": outside}


SEGMENTS = ["..", ".", "", "ok.png", "sub", "in_sub.png", "link_out.png", "link_out_dir", "link_in.png", "up",
            "loop", "images", "outside", "secret.png", "deep", "x.png", "more", "other.png", "~", "~root",
            "n" * 300, "ok.png\x00", "%2e%2e", "..\\..", "\udcff", *["ok.png", "sub", "in_sub.png", "other.png",
                                                                           "link_in.png"] * 3]


def test_generated_paths_never_leave_the_roots(tree: dict[str, Path]) -> None:
    roots = [str(tree["base"] / "root_link"), str(tree["other_root"])]
    real_roots = [tree["root"].resolve(), tree["other_root"].resolve()]
    tally = Tally("image paths")
    outcomes = {"accepted": 0, "outside refused": 0, "other refusals": 0}
    prefixes = st.sampled_from(["", "/", str(tree["base"]) + "/", str(tree["root"]) + "/", str(tree["outside"]) + "/",
                                "~/", "./"])

    def check(path: Path) -> None:
        real = Path(os.path.realpath(path))
        assert any(real == r or real.is_relative_to(r) for r in real_roots), f"{path} is outside the roots"
        assert real.is_file(), f"{path} is not a file"

    @FUZZ
    @given(prefix=prefixes, parts=st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=4))
    def case(prefix: str, parts: list[str]) -> None:
        raw = prefix + "/".join(parts)
        try:
            result = resolve_image_path(raw, roots)
        except (PathNotAllowedError, InputError) as exc:
            outcomes["outside refused" if isinstance(exc, PathNotAllowedError) else "other refusals"] += 1
            tally.typed_errors += 1
            tally.error_types[type(exc).__name__] = tally.error_types.get(type(exc).__name__, 0) + 1
            return
        except Exception as exc:  # noqa: BLE001 - counted as a crash
            tally.crash(f"{raw!r}: {type(exc).__name__}: {exc}")
            return
        try:
            check(result)
        except AssertionError as exc:
            tally.crash(f"ESCAPE {raw!r} -> {result}: {exc}")
            return
        outcomes["accepted"] += 1
        tally.ok += 1

    case()
    escapes = sum(c.startswith("ESCAPE") for c in tally.crashes)
    record("paths", **{f"generated paths {k}": v for k, v in outcomes.items()}, **{"path escapes": escapes})
    tally.assert_clean()


@pytest.mark.parametrize("raw", ["../outside/secret.png", "link_out.png", "link_out_dir/secret.png",
                                 "sub/up/outside/secret.png", "sub/../../outside/secret.png", "/etc/passwd",
                                 "{outside}/secret.png", "{root}/../outside/secret.png"])
def test_known_escapes_are_refused_without_revealing_existence(tree: dict[str, Path], raw: str) -> None:
    raw = raw.format(outside=tree["outside"], root=tree["root"])
    with pytest.raises(PathNotAllowedError) as refused:
        resolve_image_path(raw, [str(tree["root"])])
    assert "not found" not in str(refused.value)  # the same message whether the file exists or not


def test_server_graph_resolves_images_inside_the_roots_only(tree: dict[str, Path]) -> None:
    """The langgraph dev server's wrapper refuses an image path outside the roots before the graph runs."""
    from fake_agent import CANDIDATES
    from robust_agents import i2cr_agent

    from groundgraph.agents.server_graphs import server_graph

    agent = i2cr_agent(tree["base"] / "server.sqlite", roots=[str(tree["root"])])
    graph = server_graph("i2cr", agent=agent)
    context = graph.builder.context_schema()  # what the server builds for each run
    with pytest.raises(PathNotAllowedError):
        graph.invoke({"mention": "Carroll Baker", "candidates": CANDIDATES,
                      "image": str(tree["outside"] / "secret.png")}, context=context)
    with pytest.raises(PathNotAllowedError):
        graph.invoke({"mention": "Carroll Baker", "candidates": CANDIDATES, "image": "link_out.png"}, context=context)
    good = graph.invoke({"mention": "Carroll Baker", "candidates": CANDIDATES, "image": "sub/in_sub.png"},
                        context=context)
    assert good["image"] == str((tree["root"] / "sub" / "in_sub.png").resolve()) and good["result"]["entity"]


# --- no pickle ------------------------------------------------------------------------------------------
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve", "marshal"}


def _pickle_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module
                                                    else [])
            found += [f"{path}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in PICKLE_MODULES]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            target = ast.unparse(node.func)
            kwargs = {k.arg: ast.unparse(k.value) for k in node.keywords}
            if target.endswith("torch.load") and kwargs.get("weights_only") != "True":
                found.append(f"{path}:{node.lineno} torch.load without weights_only=True")
            if target.split(".")[-1] == "load" and target.split(".")[0] in ("np", "numpy") and \
                    kwargs.get("allow_pickle", "False") != "False":
                found.append(f"{path}:{node.lineno} np.load with allow_pickle")
            if target.endswith(("read_pickle", "from_pickle")):
                found.append(f"{path}:{node.lineno} {target}")
    return found


def test_no_source_module_loads_pickles() -> None:
    files = [p for d in ("agents", "tools", "graphs") for p in sorted((REPO / d).rglob("*.py"))]
    found = [hit for p in files for hit in _pickle_uses(p)]
    record("paths", **{"source files scanned for pickle loading": len(files), "pickle loaders found": len(found)})
    assert len(files) > 40
    assert not found, found


def test_the_scan_sees_pickle_loading(tmp_path: Path) -> None:
    """The scanner above is not blind: it flags each kind of pickle loading."""
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle\nimport joblib as jl\nfrom dill import loads\nimport torch, numpy as np\n"
                   "torch.load('m.pt')\nnp.load('a.npy', allow_pickle=True)\nimport pandas as pd\n"
                   "pd.read_pickle('x')\ntorch.load('ok.pt', weights_only=True)\n")
    assert len(_pickle_uses(bad)) == 6


def test_a_built_kb_reopens_without_pickle_and_a_planted_pickle_never_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from insgenel_fakes import make_kb

    from groundgraph.tools.embedder import HashingEmbedder
    from groundgraph.tools.kb import KnowledgeBase

    built = make_kb(tmp_path / "kb")
    directory = built.directory
    assert directory is not None
    files = [p for p in directory.rglob("*") if p.is_file()]
    assert files and not [p for p in files if p.read_bytes()[:1] == b"\x80"]  # no pickle protocol header

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pickle used")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, refuse)
    kb = KnowledgeBase(source=str(tmp_path / "kb" / "kb.jsonl"), cache_dir=str(tmp_path / "kb" / "kb-cache"),
                       embedder=HashingEmbedder())
    kb.open(directory)
    assert [m.entity.id for m in kb.lookup("Steve Jobs", 3)][0] == "Q19837"
    monkeypatch.undo()

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (os.system, (f"touch {marker}",))

    dense = directory / "dense"
    for victim in sorted(p for p in dense.iterdir() if p.is_file()):
        original = victim.read_bytes()
        victim.write_bytes(pickle.dumps(Payload()))
        try:
            with pytest.raises(InputError, match="unreadable"):
                KnowledgeBase(source=str(tmp_path / "kb" / "kb.jsonl"), embedder=HashingEmbedder()).open(directory)
        finally:
            victim.write_bytes(original)
    assert not marker.exists()
    record("paths", **{"planted pickle payloads executed": int(marker.exists())})
