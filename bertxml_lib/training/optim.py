"""The optimisation recipe shared by pretraining, fine-tuning and the neural baselines (BERT's: AdamW with
decoupled weight decay, linear warmup then linear decay, gradient-norm clipping at 1.0)."""
from __future__ import annotations

import math
from typing import Iterable

import torch
from transformers import get_linear_schedule_with_warmup

# Gradient-norm clipping as in the BERT reference code; not a tuned value.
MAX_GRAD_NORM = 1.0


def param_groups(parts: Iterable[tuple[Iterable[tuple[str, torch.nn.Parameter]], float]],
                 weight_decay: float) -> list[dict]:
    """AdamW groups from `(named parameters, lr)` parts: no weight decay on 1-D tensors (biases and LayerNorm
    weights, BERT's rule); frozen parameters are left out, empty groups dropped."""
    groups = []
    for named, lr in parts:
        params = [p for _, p in named if p.requires_grad]
        groups += [{"params": [p for p in params if p.ndim >= 2], "lr": lr, "weight_decay": weight_decay},
                   {"params": [p for p in params if p.ndim < 2], "lr": lr, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def linear_warmup_schedule(optimizer: torch.optim.Optimizer, warmup: float, total_steps: int):
    """lr rises linearly over the first `warmup` fraction of `total_steps`, then decays linearly to 0."""
    return get_linear_schedule_with_warmup(optimizer, math.ceil(warmup * total_steps), total_steps)


def optimizer_step(loss: torch.Tensor, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   scheduler=None, max_grad_norm: float | None = MAX_GRAD_NORM) -> None:
    """Backward, clip the gradient norm, step the optimizer (and schedule), clear the gradients."""
    loss.backward()
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    if scheduler is not None:
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
