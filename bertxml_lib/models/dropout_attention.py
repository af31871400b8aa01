"""Scaled dot-product attention with dropout on the attention probabilities, for training on CPU (BERT's
`attention_probs_dropout_prob`, 0.1 in paper 4.2's recipe).

PyTorch's fused CPU SDPA kernels accept no dropout, so a training step with dropout falls back to SDPA's math
kernel: it draws a float Bernoulli mask with `bernoulli_` (as much time as the two attention matmuls and the
softmax together) and keeps five attention-sized intermediates. `DropoutAttention` computes the same function
with fewer passes over the (batch, heads, L, L) scores: 16 random bits per probability drawn 64 at a time with
`random_` from torch's default generator (so `seed_everything` fixes the mask; ~5x cheaper than `bernoulli_`),
a probability dropped when its bits fall below round(p * 2^16) (a drop rate within 2^-17 = 7.6e-6 of p: 0.1000061
for BERT's 0.1, the kept ones scaled by the exact 1 / (1 - rate)), and a backward through the fused
softmax-backward kernel. SDPA stays the reference: `attention` uses it wherever it already
runs fused (no dropout, or CUDA), and tests/test_dropout_attention.py checks this path against SDPA at p=0 and
against SDPA's math formula with the same mask at p>0 (outputs and gradients), plus a float64 gradcheck.
"""
from __future__ import annotations

import contextlib
import math

import torch
from torch.nn import functional as F


def drop_mask(shape: tuple[int, ...], p: float, device: torch.device | str) -> torch.Tensor:
    """Bool mask of `shape`, True where a probability is dropped (each independently, at `drop_rate(p)`)."""
    n = math.prod(shape)
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-2**63, None)  # 64 uniform bits each
    return bits.view(torch.int16)[:n].view(shape) < (-2**15 + round(p * 2**16))


def drop_rate(p: float) -> float:
    """The rate `drop_mask` drops at: p rounded to a multiple of 2^-16."""
    return round(p * 2**16) / 2**16


def keep_scale(p: float) -> float:
    """1 / (1 - drop rate): kept probabilities are scaled so the expected output is unchanged."""
    return 1.0 / (1.0 - drop_rate(p))


class DropoutAttention(torch.autograd.Function):
    """`softmax(q k^T / sqrt(d)) -> dropout(p) -> @ v` for `q, k, v (..., L, d)`."""

    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, p: float) -> torch.Tensor:
        scale = 1.0 / math.sqrt(q.shape[-1])
        qs = q * scale  # scale the (L, d) queries, not the (L, L) scores
        probs = torch.softmax(torch.matmul(qs, k.transpose(-2, -1)), dim=-1)  # (..., L, L)
        drop = drop_mask(probs.shape, p, probs.device)
        kept = torch.where(drop, 0.0, probs)
        c = keep_scale(p)
        ctx.save_for_backward(qs, k, v, probs, kept, drop)
        ctx.scale, ctx.c = scale, c
        return torch.matmul(kept, v).mul_(c)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        qs, k, v, probs, kept, drop = ctx.saved_tensors
        g = grad_out * ctx.c
        grad_v = torch.matmul(kept.transpose(-2, -1), g)
        grad_probs = torch.matmul(g, v.transpose(-2, -1)).masked_fill_(drop, 0.0)  # through the dropout
        grad_scores = torch._softmax_backward_data(grad_probs, probs, -1, probs.dtype)
        grad_q = torch.matmul(grad_scores, k).mul_(ctx.scale)
        grad_k = torch.matmul(grad_scores.transpose(-2, -1), qs)
        return grad_q, grad_k, grad_v, None


_SDPA_ONLY = False


@contextlib.contextmanager
def sdpa_only():
    """Within this block `attention` always calls SDPA (the benchmark ladder's rung below this kernel)."""
    global _SDPA_ONLY
    before, _SDPA_ONLY = _SDPA_ONLY, True
    try:
        yield
    finally:
        _SDPA_ONLY = before


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout: float) -> torch.Tensor:
    """SDPA over `(..., L, d)` without masking; `DropoutAttention` where SDPA would fall back to its math kernel
    for the dropout (CPU, dropout > 0)."""
    if dropout > 0 and q.device.type == "cpu" and not _SDPA_ONLY:
        return DropoutAttention.apply(q, k, v, dropout)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
