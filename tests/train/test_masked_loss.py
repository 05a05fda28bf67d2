"""Targets below 0 are ignored by the fused loss: values and gradients equal
``F.cross_entropy(..., ignore_index=-1)``."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from scalinglab.train.loss import linear_cross_entropy


def test_ignored_targets_match_torch_ignore_index():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(3, 7, 8, generator=g, requires_grad=True)
    w = torch.randn(11, 8, generator=g, requires_grad=True)
    t = torch.randint(0, 11, (3, 7), generator=g)
    t[:, :4] = -1  # a masked prompt
    ours = linear_cross_entropy(h, w, t)
    ours.backward()
    gh, gw = h.grad.clone(), w.grad.clone()
    h.grad, w.grad = None, None
    ref = F.cross_entropy((h @ w.t()).flatten(0, 1), t.flatten(), ignore_index=-1)
    ref.backward()
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(gh, h.grad)
    torch.testing.assert_close(gw, w.grad)
    with torch.no_grad():  # the no-gradient path (evaluation) too
        torch.testing.assert_close(linear_cross_entropy(h, w, t), ref)
