"""Next-token cross-entropy with a lean backward.

``F.cross_entropy`` on an (N, V) logit matrix, the largest activation of a small model (at
vocab 4096 and 4096 tokens per step, 64 MB), runs log-softmax, then in the backward fills an
(N, V) zero gradient, scatters into it and runs the log-softmax backward into yet another
(N, V) tensor. Here the forward keeps the log-softmax, and the backward turns it, in place,
into ``(softmax - one_hot) * grad / N``: two elementwise passes and no new (N, V) tensor.
Values and gradients equal ``F.cross_entropy``'s within float rounding (tested).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _CrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        # logits (N, V) float32, targets (N,) int64
        logp = torch.log_softmax(logits, dim=-1)  # (N, V)
        ctx.save_for_backward(logp, targets)
        return -logp.gather(1, targets[:, None]).mean()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        logp, targets = ctx.saved_tensors
        # NOTE: in place on the saved log-softmax, which only this backward reads (and only
        # once: the graph is not retained by the trainer).
        probs = logp.exp_()  # (N, V) softmax
        probs.scatter_add_(1, targets[:, None], torch.full_like(probs[:, :1], -1.0))
        return probs.mul_(grad / targets.numel()), None


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token loss of ``logits`` (..., V) against ``targets`` (...), in float32."""
    flat = logits.flatten(0, -2)
    if flat.dtype != torch.float32:
        flat = flat.float()  # bf16 logits: the softmax and the loss in fp32
    if not flat.requires_grad:
        return F.cross_entropy(flat, targets.flatten())
    return _CrossEntropy.apply(flat, targets.flatten())
