"""The trainer's fused output-projection + cross-entropy equals the unfused computation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scalinglab.train import loss as loss_module
from scalinglab.train.loss import linear_cross_entropy


def _case(n: int, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(n, 16, generator=gen)
    w = torch.randn(37, 16, generator=gen) * 0.5
    targets = torch.randint(0, 37, (n,), generator=gen)
    return h, w, targets


@pytest.mark.parametrize("n", [5, 24])  # within one chunk, and over several (chunk set to 8)
def test_matches_unfused_loss_and_gradients(monkeypatch, n):
    monkeypatch.setattr(loss_module, "CHUNK_TOKENS", 8)
    h, w, targets = _case(n)
    h1, w1 = h.clone().requires_grad_(), w.clone().requires_grad_()
    h2, w2 = h.clone().requires_grad_(), w.clone().requires_grad_()
    mine = linear_cross_entropy(h1 * 1, w1, targets)
    ref = F.cross_entropy(h2 @ w2.t(), targets)
    torch.testing.assert_close(mine, ref)
    (mine * 0.7).backward()  # an upstream scale, as gradient accumulation uses
    (ref * 0.7).backward()
    torch.testing.assert_close(h1.grad, h2.grad)
    torch.testing.assert_close(w1.grad, w2.grad)


def test_bf16_matmuls_stay_close_to_fp32():
    h, w, targets = _case(20)
    w1, w2 = w.clone().requires_grad_(), w.clone().requires_grad_()
    low = linear_cross_entropy(h, w1, targets, torch.bfloat16)
    full = linear_cross_entropy(h, w2, targets)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, full, rtol=2e-2, atol=2e-2)
    low.backward()
    full.backward()
    assert w1.grad.dtype == torch.float32
    torch.testing.assert_close(w1.grad, w2.grad, rtol=5e-2, atol=5e-3)


def test_without_grad_is_the_plain_loss():
    h, w, targets = _case(6)
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(h, w, targets),
                                   F.cross_entropy(h @ w.t(), targets))
