"""The trainer's cross-entropy equals PyTorch's, in value and gradient."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from scalinglab.train.loss import cross_entropy


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cross_entropy_matches_pytorch(dtype):
    gen = torch.Generator().manual_seed(0)
    base = (torch.randn(3, 5, 37, generator=gen) * 4).to(dtype)
    targets = torch.randint(0, 37, (3, 5), generator=gen)
    mine, ref = base.clone().requires_grad_(), base.clone().requires_grad_()
    w = torch.randn((), generator=gen)  # an upstream scale, as gradient accumulation uses
    loss = cross_entropy(mine * 1, targets)  # "* 1": a non-leaf, as a model's output is
    expected = F.cross_entropy(ref.float().flatten(0, 1), targets.flatten())
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, expected)
    (loss * w).backward()
    (expected * w).backward()
    torch.testing.assert_close(mine.grad, ref.grad)


def test_cross_entropy_without_grad():
    logits = torch.randn(4, 9)
    targets = torch.arange(4)
    torch.testing.assert_close(cross_entropy(logits, targets), F.cross_entropy(logits, targets))
