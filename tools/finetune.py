"""What the encoder fine-tuning loops share: seeding, CPU threads, AdamW with linear warm-up then decay."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
from pydantic import BaseModel

#: parameters trained without weight decay (the usual transformer recipe)
NO_DECAY = ("bias", "LayerNorm.weight", "norm.weight")


class Progress(BaseModel):
    """One optimiser step, as reported to the progress callback."""

    epoch: int
    step: int
    total_steps: int
    loss: float


def seed_everything(seed: int, threads: int | None = None) -> None:
    """Seed Python, NumPy and torch; pin torch's CPU threads when ``threads`` is given."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def adamw_linear_schedule(model: Any, *, lr: float, weight_decay: float, total_steps: int,
                          warmup_ratio: float) -> tuple[Any, Any]:
    """AdamW (no decay on biases and norms) and a schedule: linear warm-up, then linear decay to 0."""
    import torch

    params = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in NO_DECAY)],
         "weight_decay": weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in NO_DECAY)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(params, lr=lr)
    warmup = int(warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def optimizer_step(model: Any, optimizer: Any, scheduler: Any, loss: Any) -> float:
    """Back-propagate ``loss``, clip the gradient norm to 1, step the optimiser and the schedule; the loss value."""
    import torch

    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    return float(loss.detach())
