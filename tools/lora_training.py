"""LoRA fine-tuning of a causal LM on (prompt, completion) pairs, with PEFT + transformers.

The loss covers the completion tokens only. Defaults follow common Llama-3 LoRA recipes
(rank 16, alpha 32, dropout 0.05, all attention and MLP projections, lr 2e-4, cosine schedule
with warm-up). Runs on CPU for tiny models; on a GPU for real ones (see the README's GPU section).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from groundgraph.tools.errors import InputError, ToolUnavailableError

LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class LoraTrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rank: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: list(LLAMA_TARGETS))
    learning_rate: float = Field(2e-4, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimiser steps")
    batch_size: int = Field(4, ge=1)
    grad_accumulation: int = Field(4, ge=1)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    max_length: int = Field(1024, ge=16)
    eval_fraction: float = Field(0.1, ge=0, lt=1, description="held out from the examples for eval loss")
    eval_every: int = Field(50, ge=1, description="optimiser steps between eval loss and checkpoint")
    seed: int = 0
    device: str = "cpu"
    dtype: str = Field("float32", description="bfloat16 on GPUs that support it")


class Example(BaseModel):
    prompt: str
    completion: str


class TrainResult(BaseModel):
    steps: int
    train_loss: list[float]
    eval_loss: list[float]
    seconds: float
    adapter_dir: str
    train_examples: int
    eval_examples: int


def _encode(tok: Any, ex: Example, max_length: int) -> tuple[list[int], list[int]]:
    """Token ids and labels; prompt positions are masked (-100) so only the completion is learnt."""
    if getattr(tok, "chat_template", None):
        prompt = tok.apply_chat_template([{"role": "user", "content": ex.prompt}], tokenize=False,
                                         add_generation_prompt=True)
        p_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    else:
        p_ids = tok(ex.prompt, add_special_tokens=True)["input_ids"]
    c_ids = tok((" " if not getattr(tok, "chat_template", None) else "") + ex.completion,
                add_special_tokens=False)["input_ids"]
    if tok.eos_token_id is not None:
        c_ids = c_ids + [tok.eos_token_id]
    ids = (p_ids + c_ids)[-max_length:]
    labels = ([-100] * len(p_ids) + c_ids)[-max_length:]
    return ids, labels


def train_lora(base: str, examples: Sequence[Example], out_dir: str | Path, config: LoraTrainConfig,
               progress: Callable[[int, int, float], None] | None = None) -> TrainResult:
    """Fine-tune a LoRA adapter on ``examples``; checkpoints under ``out_dir/checkpoint-N``."""
    try:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer, get_cosine_schedule_with_warmup
    except ImportError as exc:
        raise ToolUnavailableError(f"LoRA training needs peft and transformers: pip install 'groundgraph[train]' "
                                   f"({exc})") from None
    if len(examples) < 2:
        raise InputError("LoRA training needs at least two examples")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    local = Path(base).is_dir()
    tok = AutoTokenizer.from_pretrained(base, local_files_only=local)
    # Any: transformers' and peft's stubs disagree on the wrapped model's type
    model: Any = AutoModelForCausalLM.from_pretrained(base, local_files_only=local, dtype=getattr(torch, config.dtype))
    present = {n.split(".")[-1] for n, _ in model.named_modules()}
    targets = [t for t in config.target_modules if t in present]
    if not targets:
        raise InputError(f"none of the target modules {config.target_modules} exist in {base}")
    model = get_peft_model(model, LoraConfig(r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
                                             target_modules=targets, task_type="CAUSAL_LM"))
    model.to(config.device)
    data = list(examples)
    random.shuffle(data)
    n_eval = int(len(data) * config.eval_fraction)
    eval_set, train_set = data[:n_eval], data[n_eval:]
    encoded = [_encode(tok, ex, config.max_length) for ex in train_set]
    eval_encoded = [_encode(tok, ex, config.max_length) for ex in eval_set]
    per_epoch = math.ceil(len(encoded) / (config.batch_size * config.grad_accumulation))
    total = config.max_steps or max(1, math.ceil(per_epoch * config.epochs))
    optim = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.learning_rate)
    sched = get_cosine_schedule_with_warmup(optim, int(config.warmup_ratio * total), total)
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)

    def batch_loss(batch: list[tuple[list[int], list[int]]]) -> Any:
        width = max(len(ids) for ids, _ in batch)
        ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in batch], device=config.device)
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch], device=config.device)
        mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in batch], device=config.device)
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss

    def evaluate() -> float:
        if not eval_encoded:
            return float("nan")
        model.eval()
        with torch.no_grad():
            losses = [float(batch_loss(eval_encoded[i:i + config.batch_size]))
                      for i in range(0, len(eval_encoded), config.batch_size)]
        model.train()
        return sum(losses) / len(losses)

    start = time.perf_counter()
    train_losses: list[float] = []
    eval_losses: list[float] = []
    order: list[int] = []
    model.train()
    for step in range(1, total + 1):
        step_loss = 0.0
        for _ in range(config.grad_accumulation):
            if len(order) < config.batch_size:
                order += random.sample(range(len(encoded)), len(encoded))
            batch = [encoded[order.pop()] for _ in range(min(config.batch_size, len(encoded)))]
            loss = batch_loss(batch) / config.grad_accumulation
            loss.backward()
            step_loss += float(loss.detach())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optim.step()
        sched.step()
        optim.zero_grad()
        train_losses.append(round(step_loss, 5))
        if progress:
            progress(step, total, step_loss)
        if step % config.eval_every == 0 or step == total:
            eval_losses.append(round(evaluate(), 5))
            model.save_pretrained(out / f"checkpoint-{step}")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    result = TrainResult(steps=total, train_loss=train_losses, eval_loss=eval_losses,
                         seconds=round(time.perf_counter() - start, 2), adapter_dir=str(out),
                         train_examples=len(train_set), eval_examples=len(eval_set))
    (out / "training.json").write_text(json.dumps({"base": base, "config": config.model_dump(),
                                                   **result.model_dump()}, indent=2))
    return result
