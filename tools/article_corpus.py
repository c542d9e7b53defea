"""Article corpus: news articles with their images, and image search over them (FAISS).

``ArticleCorpus.build(source)`` runs once: it reads the articles (a JSONL file, or a directory holding
``articles.jsonl``), encodes every image with the image encoder and saves the vectors' FAISS index with
JSON metadata in a cache directory keyed by the source's content, the images' sizes and dates and the
encoder's feature space. Nothing is pickled. Later loads take well under a second.

One article a line::

    {"id": "...", "title": "...", "date": "2015-02-11", "place": "...", "url": "...", "text": "...",
     "images": [{"id": "...", "file": "images/rocket.jpg", "caption": "...", "credit": "...", "license": "..."}]}

Image files are relative to the JSONL file's directory, absolute, or ``package:<pkg>/<path>`` (a file
inside an installed Python package, e.g. ``package:skimage/data/moon.png``).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from groundgraph.tools.base import Tool, ToolConfig, call_model
from groundgraph.tools.errors import ConfigError, GroundgraphError, InputError
from groundgraph.tools.image_features import ImageEncoder, check_same_space
from groundgraph.tools.images import ImageLike, check_image_path
from groundgraph.tools.vector_index import FaissIndex

SCHEMA_VERSION = 1
ARTICLES_FILE = "articles.jsonl"
PACKAGE_PREFIX = "package:"


class ArticleImage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = ""
    file: str = Field(min_length=1, description="relative to the corpus file, absolute, or package:<pkg>/<path>")
    caption: str = ""
    credit: str = ""
    license: str = ""


class Article(BaseModel):
    """One news article and its images."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1)
    title: str = ""
    date: str = Field("", description="ISO date, possibly partial: 2015-02-11, 2015-02 or 2015")
    place: str = ""
    url: str = ""
    text: str = Field(min_length=1)
    images: list[ArticleImage] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _one_image_shorthand(cls, data: Any) -> Any:
        # {"image": "x.jpg", "image_caption": "..."} is accepted for single-image articles
        if isinstance(data, dict) and "images" not in data and data.get("image"):
            data = {**data, "images": [{"file": data["image"], "caption": data.get("image_caption", "")}]}
        return data

    @model_validator(mode="after")
    def _image_ids(self) -> Article:
        for i, image in enumerate(self.images):
            if not image.id:
                image.id = f"{self.id}#{i}"
        return self


class ImageHit(BaseModel):
    """A corpus image found for a query image, with its article."""

    image_id: str
    article_id: str
    score: float = Field(description="cosine of the image features (-1..1)")
    rank: int
    path: str
    caption: str = ""


def resolve_file(ref: str, base: Path) -> Path:
    """A corpus file reference as a path: ``package:<pkg>/<path>``, absolute, or relative to ``base``."""
    if ref.startswith(PACKAGE_PREFIX):
        package, _, inner = ref[len(PACKAGE_PREFIX):].partition("/")
        try:
            return Path(str(resources.files(package) / inner))
        except ModuleNotFoundError:
            raise InputError(f"{ref}: the package {package!r} is not installed") from None
    p = Path(ref).expanduser()
    return p if p.is_absolute() else base / p


def corpus_file(source: str | Path) -> Path:
    """The articles JSONL of a source: the file itself, or ``articles.jsonl`` in a directory."""
    src = resolve_file(str(source), Path.cwd()) if str(source).startswith(PACKAGE_PREFIX) else Path(source)
    if src.is_dir():
        src = src / ARTICLES_FILE
    if not src.is_file():
        raise InputError(f"article corpus not found: {src} (a JSONL file, or a directory holding {ARTICLES_FILE})")
    return src


def read_articles(path: Path) -> Iterator[tuple[int, Article | str]]:
    """Yield (line number, Article) per valid line, or (line number, error message) per bad one."""
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield lineno, Article.model_validate(json.loads(line))
            except (json.JSONDecodeError, ValidationError) as exc:
                yield lineno, f"line {lineno}: {str(exc).splitlines()[0]}"


class CorpusConfig(ToolConfig):
    source: str | None = Field(None, description="articles JSONL, or a directory with articles.jsonl; "
                               "package:<pkg>/<path> names one inside an installed package")
    cache_dir: str | None = Field(None, description="where built corpora are kept (default: user cache dir)")
    index_type: str = Field("flat", description="FAISS index over image vectors: flat, ivf or hnsw")
    encode_batch_size: int = Field(32, ge=1)


def default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("groundgraph")) / "corpus"


class ArticleCorpus(Tool[CorpusConfig]):
    """News articles with image search (FAISS over the image encoder's vectors). Needs an image encoder."""

    kind = "corpus"
    backend = "faiss"
    Config = CorpusConfig
    needs = ("image_features",)

    def __init__(self, config: Any = None, image_features: ImageEncoder | None = None, **overrides: Any) -> None:
        super().__init__(config, **overrides)
        self.encoder = image_features
        self.directory: Path | None = None
        self.build_errors: list[str] = []
        self._articles: dict[str, Article] = {}
        self._images: dict[str, dict[str, Any]] = {}
        self._index: FaissIndex | None = None
        self._open_lock = threading.Lock()

    def _encoder(self) -> ImageEncoder:
        if self.encoder is None:
            raise ConfigError("corpus.faiss needs an image encoder (tools.image_features); none is configured")
        return self.encoder

    # --- building ---------------------------------------------------------------------------
    def _key(self, src: Path, articles: list[Article]) -> str:
        h = hashlib.sha256(src.read_bytes())
        for a in articles:  # image files by size and date: cheap for large corpora, changes when they do
            for im in a.images:
                p = resolve_file(im.file, src.parent)
                st = p.stat() if p.is_file() else None
                h.update(f"{p}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}".encode())
        h.update(f"v{SCHEMA_VERSION}|{self._encoder().space}".encode())
        return h.hexdigest()[:16]

    def build(self, source: str | Path | None = None, *, force: bool = False,
              progress: Callable[[int, int], None] | None = None) -> Path:
        """Build (or reuse) the cached corpus index for ``source``; returns its directory.

        Articles that fail validation and images that cannot be read are skipped and listed in
        ``build_errors`` (and in done.json); a corpus with no usable image is an InputError.
        """
        raw = source or self.config.source
        if not str(raw or "").strip():
            raise ConfigError("no article corpus given (config corpus.source, or a path)")
        src = corpus_file(str(raw))
        articles: dict[str, Article] = {}
        errors: list[str] = []
        for _, item in read_articles(src):
            if isinstance(item, str):
                errors.append(item)
            else:
                articles[item.id] = item  # a later line with the same id wins
        if not articles:
            raise InputError(f"{src} holds no valid article ({len(errors)} bad lines)")
        root = Path(self.config.cache_dir) if self.config.cache_dir else default_cache_dir()
        directory = root / f"{src.parent.name}-{src.stem}-{self._key(src, list(articles.values()))}"
        if (directory / "done.json").is_file() and not force:
            return self.open(directory)
        directory.mkdir(parents=True, exist_ok=True)
        images: list[dict[str, Any]] = []
        for a in articles.values():
            for im in a.images:
                try:
                    path = check_image_path(resolve_file(im.file, src.parent))
                except InputError as exc:
                    errors.append(f"article {a.id} image {im.id}: {exc}")
                    continue
                images.append({"id": im.id, "article_id": a.id, "path": str(path.resolve()), "caption": im.caption,
                               "credit": im.credit, "license": im.license})
        if not images:
            raise InputError(f"{src}: no article has a readable image ({len(errors)} problems: {errors[:3]})")
        start = time.perf_counter()
        encoder = self._encoder()
        kept: list[dict[str, Any]] = []
        vectors = []
        step = self.config.encode_batch_size
        for i in range(0, len(images), step):
            chunk = images[i:i + step]
            try:
                vecs = encoder.encode([im["path"] for im in chunk])
                kept.extend(chunk)
                vectors.append(vecs)
            except GroundgraphError:  # one undecodable image must not lose the batch: retry one by one
                for rec in chunk:
                    try:
                        vectors.append(encoder.encode([rec["path"]]))
                        kept.append(rec)
                    except GroundgraphError as exc:
                        errors.append(f"image {rec['id']}: {exc}")
            if progress:
                progress(min(i + step, len(images)), len(images))
        import numpy as np

        index = FaissIndex(dim=int(vectors[0].shape[1]), index_type=self.config.index_type, device=self.config.device)
        index.add([im["id"] for im in kept], np.concatenate(vectors))
        index.save(directory / "images")
        used = {im["article_id"] for im in kept}
        (directory / "articles.json").write_text(json.dumps(
            [a.model_dump() for a in articles.values() if a.id in used], ensure_ascii=False))
        (directory / "images.json").write_text(json.dumps(kept, ensure_ascii=False))
        (directory / "done.json").write_text(json.dumps({
            "source": str(src), "articles": len(used), "images": len(kept), "errors": errors[:100],
            "error_count": len(errors), "encode_seconds": round(time.perf_counter() - start, 2),
            "space": encoder.space, "encoder": getattr(encoder, "name", None), "schema": SCHEMA_VERSION,
        }, ensure_ascii=False))
        self.build_errors = errors
        return self.open(directory)

    # --- opening ----------------------------------------------------------------------------
    def open(self, directory: str | Path) -> Path:
        d = Path(directory)
        if not (d / "done.json").is_file():
            raise InputError(f"{d} is not a built article corpus (run `groundgraph corpus build`)")
        try:
            info = json.loads((d / "done.json").read_text())
            articles = [Article.model_validate(a) for a in json.loads((d / "articles.json").read_text())]
            images = json.loads((d / "images.json").read_text())
        except (OSError, ValueError, ValidationError) as exc:
            raise InputError(f"built corpus in {d} is unreadable: {exc}") from None
        check_same_space(self._encoder(), info["space"])
        with self._open_lock:
            self._index = FaissIndex.load_from(d / "images", device=self.config.device)
            self._articles = {a.id: a for a in articles}
            self._images = {im["id"]: im for im in images}
            self.directory = d
            self.build_errors = list(info.get("errors", []))
            self._model = True
        return d

    def _load(self) -> Any:
        self.build()
        return True

    # --- lookups ----------------------------------------------------------------------------
    def __len__(self) -> int:
        self.model()
        return len(self._images)

    @property
    def article_count(self) -> int:
        self.model()
        return len(self._articles)

    def article(self, article_id: str) -> Article:
        self.model()
        if article_id not in self._articles:
            raise InputError(f"no article {article_id!r} in the corpus")
        return self._articles[article_id]

    def image(self, image_id: str) -> dict[str, Any]:
        """The stored record of a corpus image: id, article_id, path, caption, credit, license."""
        self.model()
        if image_id not in self._images:
            raise InputError(f"no image {image_id!r} in the corpus")
        return dict(self._images[image_id])

    def search(self, image: ImageLike, k: int = 10) -> list[ImageHit]:
        """The ``k`` corpus images nearest to ``image`` in the encoder's feature space, best first."""
        self.model()
        assert self._index is not None
        query = self._encoder().encode([image])
        hits = call_model(self, lambda: self._index.search(query, k)[0], "search the image index")  # type: ignore[union-attr]
        out = []
        for rank, (image_id, score) in enumerate(hits, 1):
            rec = self._images[image_id]
            out.append(ImageHit(image_id=image_id, article_id=rec["article_id"], score=round(float(score), 6),
                                rank=rank, path=rec["path"], caption=rec.get("caption", "")))
        return out

    def as_langchain_tool(self) -> Any:
        from langchain_core.tools import StructuredTool

        class Args(BaseModel):
            image_path: str = Field(description="path of the query image")
            k: int = Field(5, ge=1, le=50, description="how many corpus images to return")

        def search_news_images(image_path: str, k: int = 5) -> list[dict[str, Any]]:
            return [{"article_id": h.article_id, "title": self.article(h.article_id).title,
                     "date": self.article(h.article_id).date, "image_id": h.image_id, "score": round(h.score, 4)}
                    for h in self.search(image_path, k)]

        return StructuredTool.from_function(
            search_news_images, name="search_news_images",
            description="Find news articles whose photographs look most like an image (global image features).",
            args_schema=Args)

    def iter_articles(self) -> Sequence[Article]:
        self.model()
        return list(self._articles.values())
