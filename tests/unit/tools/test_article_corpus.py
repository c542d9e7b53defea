"""The article corpus: building once (JSON + FAISS, nothing pickled), reuse, search, bad records, file references."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from groundgraph.tools.article_corpus import Article, ArticleCorpus, corpus_file, resolve_file
from groundgraph.tools.errors import ConfigError, InputError
from groundgraph.tools.image_features import OpenCVGlobalEncoder

NEWS = Path(str(resources.files("groundgraph.agents") / "data" / "news"))


class CountingEncoder(OpenCVGlobalEncoder):
    """The real OpenCV encoder, counting the images it encodes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.encoded = 0

    def encode(self, images: Any) -> np.ndarray:
        self.encoded += len(images)
        return super().encode(images)


def write_corpus(root: Path) -> Path:
    d = root / "mini"
    (d / "img").mkdir(parents=True)
    for name in ("rocket", "chelsea"):
        Image.open(NEWS / "images" / f"{name}.jpg").save(d / "img" / f"{name}.jpg")
    (d / "img" / "broken.jpg").write_bytes(b"\xff\xd8 broken")
    rows = [
        {"id": "r", "title": "Rocket", "date": "2015-02-11", "text": "A rocket flew.",
         "images": [{"id": "rocket", "file": "img/rocket.jpg", "caption": "a rocket"}]},
        {"id": "c", "title": "Cat", "text": "A cat was adopted.", "image": "img/chelsea.jpg", "image_caption": "a cat"},
        {"id": "p", "title": "Palace", "text": "A palace.",
         "images": [{"id": "palace", "file": "package:groundgraph.agents/data/news/images/summer_palace.jpg"}]},
        {"id": "b", "title": "Broken", "text": "Bad image.", "images": [{"file": "img/broken.jpg"}]},
        {"id": "m", "title": "Missing", "text": "No image file.", "images": [{"file": "img/missing.jpg"}]},
        {"id": "x", "title": "No text"},
    ]
    (d / "articles.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    return d


@pytest.fixture
def built(tmp_path: Path) -> tuple[ArticleCorpus, Path, CountingEncoder]:
    enc = CountingEncoder()
    src = write_corpus(tmp_path)
    corpus = ArticleCorpus(source=str(src), cache_dir=str(tmp_path / "cache"), image_features=enc)
    corpus.build()
    return corpus, src, enc


def test_build_keeps_good_articles_and_reports_bad_ones(built: tuple[ArticleCorpus, Path, CountingEncoder]) -> None:
    corpus, _, _ = built
    assert len(corpus) == 3 and corpus.article_count == 3
    errors = " | ".join(corpus.build_errors)
    assert "line 6" in errors and "line 7" in errors  # no text / images; not JSON
    assert "image b#0" in errors and "image m#0" in errors  # undecodable; missing
    assert corpus.image("c#0")["caption"] == "a cat"  # the single-image shorthand, with a derived id


def test_cache_holds_only_json_and_faiss_files(built: tuple[ArticleCorpus, Path, CountingEncoder]) -> None:
    corpus, _, _ = built
    assert corpus.directory is not None
    names = sorted(p.name for p in corpus.directory.rglob("*") if p.is_file())
    assert names == ["articles.json", "done.json", "ids.json", "images.json", "index.faiss"]


def test_a_second_build_reuses_the_cache(built: tuple[ArticleCorpus, Path, CountingEncoder], tmp_path: Path) -> None:
    corpus, src, enc = built
    again = ArticleCorpus(source=str(src), cache_dir=str(tmp_path / "cache"), image_features=enc)
    before = enc.encoded
    assert again.build() == corpus.directory
    assert enc.encoded == before
    assert again.build(force=True) == corpus.directory and enc.encoded > before


def test_a_changed_source_builds_a_new_index(built: tuple[ArticleCorpus, Path, CountingEncoder],
                                             tmp_path: Path) -> None:
    corpus, src, enc = built
    with (src / "articles.jsonl").open("a") as f:
        f.write(json.dumps({"id": "r2", "text": "Again.", "images": [{"file": "img/rocket.jpg"}]}) + "\n")
    again = ArticleCorpus(source=str(src), cache_dir=str(tmp_path / "cache"), image_features=enc)
    assert again.build() != corpus.directory and len(again) == 4


def test_search_finds_the_article_of_a_crop(built: tuple[ArticleCorpus, Path, CountingEncoder],
                                            tmp_path: Path) -> None:
    corpus, _, _ = built
    q = tmp_path / "q.jpg"
    Image.open(NEWS / "images" / "chelsea.jpg").crop((60, 30, 380, 270)).save(q, quality=30)
    hits = corpus.search(str(q), k=5)
    assert [h.rank for h in hits] == [1, 2, 3]
    assert hits[0].article_id == "c" and hits[0].score > hits[1].score
    assert corpus.article("c").title == "Cat" and Path(hits[0].path).is_file()


def test_a_different_encoder_refuses_the_built_index(built: tuple[ArticleCorpus, Path, CountingEncoder]) -> None:
    corpus, _, _ = built
    other = ArticleCorpus(image_features=OpenCVGlobalEncoder(descriptors=["gist"]))
    with pytest.raises(ConfigError, match="rebuild"):
        other.open(corpus.directory)  # type: ignore[arg-type]


def test_unknown_ids_are_input_errors(built: tuple[ArticleCorpus, Path, CountingEncoder]) -> None:
    corpus, _, _ = built
    with pytest.raises(InputError):
        corpus.article("nope")
    with pytest.raises(InputError):
        corpus.image("nope")


def test_missing_source_encoder_or_articles_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no article corpus"):
        ArticleCorpus(image_features=OpenCVGlobalEncoder()).build()
    with pytest.raises(InputError, match="not found"):
        ArticleCorpus(image_features=OpenCVGlobalEncoder()).build(tmp_path / "nowhere")
    src = write_corpus(tmp_path)
    with pytest.raises(ConfigError, match="image encoder"):
        ArticleCorpus(cache_dir=str(tmp_path / "c")).build(src)
    (tmp_path / "empty.jsonl").write_text('{"id": "x"}\n')
    with pytest.raises(InputError, match="no valid article"):
        ArticleCorpus(image_features=OpenCVGlobalEncoder()).build(tmp_path / "empty.jsonl")


def test_file_references() -> None:
    assert resolve_file("a/b.jpg", Path("/base")) == Path("/base/a/b.jpg")
    assert resolve_file("/abs/b.jpg", Path("/base")) == Path("/abs/b.jpg")
    assert resolve_file("package:groundgraph.agents/data/news/articles.jsonl", Path(".")).is_file()
    with pytest.raises(InputError, match="not installed"):
        resolve_file("package:no_such_package_xyz/a.png", Path("."))
    assert corpus_file("package:groundgraph.agents/data/news").name == "articles.jsonl"


def test_the_shipped_corpus_is_valid() -> None:
    rows = [Article.model_validate_json(line) for line in (NEWS / "articles.jsonl").read_text().splitlines()]
    assert len(rows) == 17 and all(a.date and a.place and a.images[0].license for a in rows)
    assert all((NEWS / a.images[0].file).is_file() for a in rows)
    total = sum(p.stat().st_size for p in NEWS.rglob("*") if p.is_file())
    assert total < 3_000_000


def test_langchain_tool(built: tuple[ArticleCorpus, Path, CountingEncoder]) -> None:
    corpus, _, _ = built
    out = corpus.as_langchain_tool().invoke({"image_path": str(NEWS / "images" / "rocket.jpg"), "k": 2})
    assert out[0]["article_id"] == "r" and out[0]["date"] == "2015-02-11"
