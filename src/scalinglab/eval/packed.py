"""A forward pass over *packed* sequences: explicit positions and an explicit attention mask.

Scoring a multiple-choice question runs its context once and every choice after it in the same
row: ``[context | choice 1 | choice 2 | ...]``, where choice tokens see the context and their own
earlier tokens only, and each choice's positions restart where the context ends. The logits are
those of running ``context + choice`` alone, but the context is computed once per question
instead of once per choice (a prefix tree flattened into one sequence).

``Transformer.forward`` only takes tokens (positions 0..T-1, causal), so this module walks the
same submodules with positions and mask given. It mirrors ``scalinglab.model.transformer``
(learned / rotary / Transformer-XL relative positions); ``tests/eval/test_packed.py`` checks it
against ``Transformer.forward`` for every position type.

Shapes: B batch, T packed length, D d_model, H heads, K d_head, V vocab.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from scalinglab.model.transformer import (
    Attention,
    LearnedPositions,
    RelativeXL,
    Rotary,
    Transformer,
    _rotate,
    sinusoid_table,
)


@torch.no_grad()
def causal_hidden(model: Transformer, tokens: torch.Tensor) -> torch.Tensor:
    """``Transformer.forward`` without the output layer: (B, T) ids -> (B, T, D) final-norm
    hidden states, so that logits are computed only at the positions that are scored."""
    h = model.input_positions(model.tok_embeddings(tokens))
    for layer in model.layers.values():
        h = layer(h)
    return model.norm(h)


@torch.no_grad()
def packed_hidden(model: Transformer, tokens: torch.Tensor, positions: torch.Tensor,
                  mask: torch.Tensor) -> torch.Tensor:
    """Final-norm hidden states for packed rows (``model.output`` of them gives the logits).

    Args:
        model: a whole (unsharded) Transformer.
        tokens: (B, T) token ids.
        positions: (B, T) position of each token within its own branch.
        mask: (B, T, T) bool, ``mask[b, i, j]`` = query i may attend to key j.

    Returns:
        (B, T, D) hidden states.
    """
    h = model.tok_embeddings(tokens)  # (B, T, D)
    if isinstance(model.input_positions, LearnedPositions):
        h = h + model.input_positions.weight[positions]
    bias = torch.zeros(mask.shape, dtype=h.dtype, device=h.device)
    bias = bias.masked_fill(~mask, float("-inf"))[:, None]  # (B, 1, T, T), shared by layers
    for layer in model.layers.values():
        h = h + _attention(layer.attention, layer.attention_norm(h), positions, bias)
        h = h + layer.mlp(layer.mlp_norm(h))
    return model.norm(h)


def _attention(attn: Attention, x: torch.Tensor, positions: torch.Tensor,
               bias: torch.Tensor) -> torch.Tensor:
    b, t, _ = x.shape
    q = attn.wq(x).view(b, t, -1, attn.d_head).transpose(1, 2)  # (B, H, T, K)
    k = attn.wk(x).view(b, t, -1, attn.d_head).transpose(1, 2)
    v = attn.wv(x).view(b, t, -1, attn.d_head).transpose(1, 2)
    pos = attn.positions
    if isinstance(pos, Rotary):
        q, k = _rotary(pos, q, k, positions)
    elif isinstance(pos, RelativeXL):
        q, rel = _relative(pos, q, positions)
        bias = bias + rel
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    return attn.wo(y.transpose(1, 2).reshape(b, t, -1))  # (B, T, D)


def _rotary(rope: Rotary, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor):
    inv_freq = rope.theta ** (
        -torch.arange(0, rope.d_head, 2, device=q.device, dtype=torch.float32) / rope.d_head
    )
    angles = positions.float()[..., None] * inv_freq  # (B, T, K/2)
    cos, sin = angles.cos()[:, None], angles.sin()[:, None]  # (B, 1, T, K/2)
    return _rotate(q, cos, sin), _rotate(k, cos, sin)


def _relative(rel: RelativeXL, q: torch.Tensor, positions: torch.Tensor):
    """Transformer-XL terms for arbitrary positions: the distance is pos_i - pos_j."""
    length = int(positions.max()) + 1
    table = sinusoid_table(length, rel.wr.in_features, q.device).to(q.dtype)  # (L, D)
    r = rel.wr(table).view(length, rel.n_heads, rel.d_head).transpose(0, 1)  # (H, L, K)
    by_distance = (q + rel.v[:, None, :]) @ r.transpose(-1, -2)  # (B, H, T, L)
    distance = positions[:, :, None] - positions[:, None, :]  # (B, T, T)
    index = distance.clamp(0, length - 1)[:, None].expand(-1, q.shape[1], -1, -1)
    bias = by_distance.gather(-1, index) / math.sqrt(rel.d_head)  # (B, H, T, T)
    # Keys "ahead" of a query are masked anyway; zero keeps -inf out of the sum.
    bias = bias.masked_fill(distance[:, None] < 0, 0.0)
    return q + rel.u[:, None, :], bias
