"""`DropoutAttention` (CPU training attention with dropout) against SDPA and SDPA's math formula."""
import math

import pytest
import torch
from torch.nn import functional as F

from bertxml_lib.models.dropout_attention import (
    DropoutAttention,
    attention,
    drop_mask,
    drop_rate,
    keep_scale,
    sdpa_only,
)


def _qkv(shape=(2, 3, 40, 16), dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g, dtype=dtype).requires_grad_() for _ in range(3)]


def _out_and_grads(fn, q, k, v):
    out = fn(q, k, v)
    grads = torch.autograd.grad(out.square().sum(), (q, k, v))  # a loss that weighs every output differently
    return out.detach(), grads


def _rel(a, b):
    return float((a - b).norm() / b.norm())


def test_no_dropout_equals_sdpa():
    q, k, v = _qkv()
    got, got_g = _out_and_grads(lambda *t: DropoutAttention.apply(*t, 0.0), q, k, v)
    ref, ref_g = _out_and_grads(F.scaled_dot_product_attention, q, k, v)
    assert (got - ref).abs().max() < 1e-5
    assert all(_rel(a, b) < 1e-5 for a, b in zip(got_g, ref_g))


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_dropout_equals_sdpa_math_formula_with_the_same_mask(p):
    q, k, v = _qkv()

    def reference(q, k, v):  # SDPA's math kernel: softmax(q k^T / sqrt(d)), dropout, @ v; the mask drawn as ours
        torch.manual_seed(1)
        probs = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
        return probs.masked_fill(drop_mask(probs.shape, p, "cpu"), 0.0) * keep_scale(p) @ v

    def ours(q, k, v):
        torch.manual_seed(1)
        return DropoutAttention.apply(q, k, v, p)

    got, got_g = _out_and_grads(ours, q, k, v)
    ref, ref_g = _out_and_grads(reference, q, k, v)
    assert (got - ref).abs().max() < 1e-5
    assert all(_rel(a, b) < 1e-5 for a, b in zip(got_g, ref_g))
    # The dropout acted: the output differs from attention without dropout.
    assert (got - F.scaled_dot_product_attention(q, k, v)).abs().max() > 1e-2


def test_gradcheck_float64():
    q, k, v = _qkv((1, 2, 6, 4), torch.float64)

    def fn(q, k, v):
        torch.manual_seed(0)  # the same mask on every evaluation
        return DropoutAttention.apply(q, k, v, 0.3)

    assert torch.autograd.gradcheck(fn, (q, k, v))


def test_drop_mask_rate_and_bits():
    torch.manual_seed(0)
    mask = drop_mask((4, 1000, 1000), 0.1, "cpu")
    sigma = math.sqrt(0.1 * 0.9 / mask.numel())
    assert abs(mask.float().mean().item() - 0.1) < 5 * sigma
    # All four 16-bit quarters of every 64-bit draw are uniform (a biased top bit would show in every 4th position).
    flat = mask.flatten().float()
    for quarter in range(4):
        assert abs(flat[quarter::4].mean().item() - 0.1) < 5 * sigma * 2
    assert drop_rate(0.1) == 6554 / 65536 and abs(drop_rate(0.1) - 0.1) < 2**-17
    assert drop_mask((3, 5), 0.0, "cpu").sum() == 0
    torch.manual_seed(0)
    assert torch.equal(drop_mask((4, 1000, 1000), 0.1, "cpu"), mask)  # the seed fixes the mask


def test_dropout_keeps_the_expected_output():
    q, k, v = _qkv((1, 1, 30, 8))
    torch.manual_seed(0)
    with torch.no_grad():
        mean = torch.stack([DropoutAttention.apply(q, k, v, 0.1) for _ in range(2000)]).mean(0)
        ref = F.scaled_dot_product_attention(q, k, v)
    assert (mean - ref).abs().max() < 0.05 * ref.abs().max()


def test_attention_dispatch():
    q, k, v = _qkv((1, 2, 8, 4))
    assert type(attention(q, k, v, 0.1).grad_fn).__name__ == "DropoutAttentionBackward"
    assert type(attention(q, k, v, 0.0).grad_fn).__name__ != "DropoutAttentionBackward"
    with sdpa_only():  # the benchmark rung below this kernel
        assert type(attention(q, k, v, 0.1).grad_fn).__name__ != "DropoutAttentionBackward"
    assert type(attention(q, k, v, 0.1).grad_fn).__name__ == "DropoutAttentionBackward"
