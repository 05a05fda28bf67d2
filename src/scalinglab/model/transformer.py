"""The decoder-only transformer, in one file.

Variants (norm, position scheme, MLP) are resolved once, in ``build_*`` functions, when the
model is built; ``forward`` methods hold no config switches. Layers live in a ModuleDict keyed
by ``str(i)`` so parameter names stay stable when a pipeline stage drops some of them. The
module names follow the Megatron tensor-parallel plan: ``wq/wk/wv`` and ``w1/w3`` are split by
columns, ``wo`` and ``w2`` by rows.

Attention is grouped-query (``n_kv_heads`` key/value heads, each serving a group of query
heads; multi-head when equal to ``n_heads``). It is the model's only attention: an optional
:class:`~scalinglab.model.masks.AttentionMask` (per-token positions and a boolean mask) turns the
plain causal forward into document-masked training or prefix-shared evaluation.

Shapes in comments: B batch, T sequence, D d_model, H heads, G key/value heads, K d_head,
F d_ff, V vocab.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from scalinglab.model.config import MLPType, ModelConfig, NormType, PositionType
from scalinglab.model.masks import AttentionMask, causal_mask

# ----------------------------------------------------------------------------- norms


def build_norm(cfg: ModelConfig) -> nn.Module:
    if cfg.norm == NormType.rmsnorm:
        return nn.RMSNorm(cfg.d_model, eps=cfg.norm_eps)
    return nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps, bias=cfg.bias)


# ----------------------------------------------------------------------------- positions


class NoInputPositions(nn.Module):
    """Input positions for schemes that act inside attention (rotary, relative)."""

    def forward(self, h: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        return h


class LearnedPositions(nn.Module):
    """Absolute position embeddings added to the token embeddings (GPT-3)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cfg.max_seq_len, cfg.d_model))

    def forward(self, h: torch.Tensor, positions: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, D) embeddings plus the rows of ``positions`` (B, T), else of 0..T-1."""
        return h + (self.weight[: h.shape[1]] if positions is None else self.weight[positions])


class PlainAttentionPositions(nn.Module):
    """Queries and keys pass through unchanged; causal masking is left to the kernel."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor | None = None):
        return q, k, None


class Rotary(nn.Module):
    """Rotary position embedding (Su et al. 2021) applied to queries and keys."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.d_head = cfg.head_dim
        self.theta = cfg.rope_theta

    def forward(self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor | None = None):
        """Rotate q (B, H, T, K) and k (B, G, T, K) by ``positions`` (B, T), else 0..T-1."""
        inv_freq = self.theta ** (
            -torch.arange(0, self.d_head, 2, device=q.device, dtype=torch.float32) / self.d_head
        )
        if positions is None:
            pos = torch.arange(q.shape[-2], device=q.device, dtype=torch.float32)
            angles = torch.outer(pos, inv_freq)  # (T, K/2)
        else:
            angles = (positions.float()[..., None] * inv_freq)[:, None]  # (B, 1, T, K/2)
        cos, sin = angles.cos(), angles.sin()
        return _rotate(q, cos, sin), _rotate(k, cos, sin), None


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.float().unflatten(-1, (-1, 2)).unbind(-1)  # (B, H, T, K/2) each
    out = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)
    return out.flatten(-2).type_as(x)


def sinusoid_table(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """Sinusoidal encodings of distances 0..length-1, shape (length, dim) (Vaswani et al.)."""
    pos = torch.arange(length, device=device, dtype=torch.float32)
    inv_freq = 10000.0 ** (-torch.arange(0, dim, 2, device=device, dtype=torch.float32) / dim)
    angles = torch.outer(pos, inv_freq)
    return torch.cat((angles.sin(), angles.cos()), dim=-1)[:, :dim]


class RelativeXL(nn.Module):
    """Transformer-XL relative attention (Dai et al. 2019), as used by Gopher and Chinchilla.

    score(i, j) = (q_i + u) . k_j + (q_i + v) . W_r R_{i-j}, with R sinusoidal encodings of
    the distance i - j, W_r this layer's own projection (the d_model x d_model matrix per
    layer that makes Gopher 280B rather than 258B) and u, v learned biases per head.
    The position term is returned as an additive attention bias (the attention masks it), so
    the fused attention kernel still does the softmax and the value product.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.d_head = cfg.n_heads, cfg.head_dim
        self.wr = nn.Linear(cfg.d_model, cfg.attn_dim, bias=False)
        self.u = nn.Parameter(torch.empty(cfg.n_heads, cfg.head_dim))
        self.v = nn.Parameter(torch.empty(cfg.n_heads, cfg.head_dim))

    def forward(self, q: torch.Tensor, k: torch.Tensor, positions: torch.Tensor | None = None):
        """q (B, H, T, K) -> (q + u, k, position bias (B, H, T, T)); distances are
        pos_i - pos_j of ``positions`` (B, T), else of 0..T-1. Keys ahead of a query get an
        arbitrary finite bias: the attention masks them."""
        t = q.shape[-2]
        pos = torch.arange(t, device=q.device)[None] if positions is None else positions
        length = t if positions is None else int(positions.max()) + 1
        table = sinusoid_table(length, self.wr.in_features, q.device).to(q.dtype)  # (L, D)
        r = self.wr(table).view(length, -1, self.d_head).transpose(0, 1)  # (H, L, K); H local
        by_distance = (q + self.v[:, None, :]) @ r.transpose(-1, -2)  # (B, H, T, L[dist])
        distance = pos[:, :, None] - pos[:, None, :]  # (B or 1, T, T): i - j
        index = distance.clamp(0, length - 1)[:, None].expand(q.shape[0], q.shape[1], t, t)
        bias = by_distance.gather(-1, index)  # (B, H, T, T)
        return q + self.u[:, None, :], k, bias / math.sqrt(self.d_head)  # as the kernel scales


def build_input_positions(cfg: ModelConfig) -> nn.Module:
    if cfg.position == PositionType.learned:
        return LearnedPositions(cfg)
    return NoInputPositions()


def build_attention_positions(cfg: ModelConfig) -> nn.Module:
    if cfg.position == PositionType.rotary:
        return Rotary(cfg)
    if cfg.position == PositionType.relative:
        return RelativeXL(cfg)
    return PlainAttentionPositions()


# ----------------------------------------------------------------------------- blocks


class Attention(nn.Module):
    """Causal grouped-query self-attention on PyTorch's fused scaled_dot_product_attention.

    Key/value head g serves query heads g * H/G .. (g + 1) * H/G - 1 (SDPA's ``enable_gqa``,
    the layout of ``repeat_interleave`` and of Hugging Face's ``repeat_kv``). With no mask and
    no position bias the kernel applies causality itself (``is_causal``: flash attention on
    GPU); otherwise it gets a boolean or additive mask.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.n_heads, self.n_kv_heads, self.d_head = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        self.wq = nn.Linear(cfg.d_model, cfg.attn_dim, bias=cfg.bias)
        self.wk = nn.Linear(cfg.d_model, cfg.kv_dim, bias=cfg.bias)
        self.wv = nn.Linear(cfg.d_model, cfg.kv_dim, bias=cfg.bias)
        self.wo = nn.Linear(cfg.attn_dim, cfg.d_model, bias=cfg.bias)
        self.positions = build_attention_positions(cfg)

    def forward(self, x: torch.Tensor, mask: AttentionMask | None = None) -> torch.Tensor:
        """(B, T, D) -> (B, T, D); ``mask``: positions and visibility other than causal."""
        b, t, _ = x.shape
        # -1 rather than H or G: under tensor parallelism each rank holds a slice of heads.
        q = self.wq(x).view(b, t, -1, self.d_head).transpose(1, 2)  # (B, H, T, K)
        k = self.wk(x).view(b, t, -1, self.d_head).transpose(1, 2)  # (B, G, T, K)
        v = self.wv(x).view(b, t, -1, self.d_head).transpose(1, 2)  # (B, G, T, K)
        q, k, bias = self.positions(q, k, None if mask is None else mask.positions)
        gqa = q.shape[1] != k.shape[1]
        if mask is None and bias is None:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        else:
            allowed = causal_mask(t, x.device) if mask is None else mask.allowed[:, None]
            attn_mask = allowed if bias is None else bias.masked_fill(~allowed, float("-inf"))
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, enable_gqa=gqa)
        return self.wo(y.transpose(1, 2).reshape(b, t, -1))  # (B, T, D)



class GeluMLP(nn.Module):
    """Two matrices with GELU between (GPT-3, Gopher).

    NOTE: the exact (erf) GELU, not GPT-2's tanh approximation: the two differ by < 1e-3 and
    the exact one is about 2x cheaper forward + backward on CPU.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.d_model, cfg.ff_dim, bias=cfg.bias)
        self.w2 = nn.Linear(cfg.ff_dim, cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.gelu(self.w1(x)))  # (B, T, F) inside


class SwiGLU(nn.Module):
    """Gated feed-forward (Shazeer 2020): w2(silu(w1 x) * w3 x), three matrices."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.w1 = nn.Linear(cfg.d_model, cfg.ff_dim, bias=cfg.bias)
        self.w3 = nn.Linear(cfg.d_model, cfg.ff_dim, bias=cfg.bias)
        self.w2 = nn.Linear(cfg.ff_dim, cfg.d_model, bias=cfg.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


def build_mlp(cfg: ModelConfig) -> nn.Module:
    return SwiGLU(cfg) if cfg.mlp == MLPType.swiglu else GeluMLP(cfg)


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.attention_norm = build_norm(cfg)
        self.attention = Attention(cfg)
        self.mlp_norm = build_norm(cfg)
        self.mlp = build_mlp(cfg)

    def forward(self, x: torch.Tensor, mask: AttentionMask | None = None) -> torch.Tensor:
        # mask by keyword: tensor parallelism's input hooks re-lay the positional x only.
        x = x + self.attention(self.attention_norm(x), mask=mask)
        return x + self.mlp(self.mlp_norm(x))


class Transformer(nn.Module):
    """Decoder-only language model: embeddings, ``n_layers`` blocks, final norm, logits.

    Pipeline stages may set ``tok_embeddings``, ``norm`` or ``output`` to None and delete
    layers; ``forward`` then passes hidden states through what is left.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.tok_embeddings = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.input_positions = build_input_positions(cfg)
        self.layers = nn.ModuleDict({str(i): Block(cfg) for i in range(cfg.n_layers)})
        self.norm = build_norm(cfg)
        self.output = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.output.weight = self.tok_embeddings.weight

    def forward(self, tokens: torch.Tensor, mask: AttentionMask | None = None) -> torch.Tensor:
        """Token ids (B, T) -> logits (B, T, V); hidden states pass through absent parts.

        ``mask`` (see ``model/masks.py``): per-token positions and which keys each query
        sees, for document-masked or prefix-shared rows; None is the plain causal sequence.
        """
        h = self.hidden_states(tokens, mask)
        return self.output(h) if self.output is not None else h

    def hidden_states(self, tokens: torch.Tensor,
                      mask: AttentionMask | None = None) -> torch.Tensor:
        """Token ids (B, T) -> final normalised hidden states (B, T, D), before the output
        projection (the trainer fuses that projection with the loss)."""
        positions = None if mask is None else mask.positions
        h = self.tok_embeddings(tokens) if self.tok_embeddings is not None else tokens
        h = self.input_positions(h, positions) if self.tok_embeddings is not None else h
        for layer in self.layers.values():
            h = layer(h, mask=mask)
        return self.norm(h) if self.norm is not None else h

    @torch.no_grad()
    def init_weights(self, seed: int | None = None) -> None:
        """(Re)initialise every parameter: normal(0.02), residual outputs scaled by depth.

        Called after the model is materialised (e.g. built on ``meta`` and sharded), so that
        distributed and single-process runs start from the same weights for a given seed.
        """
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        std = 0.02
        residual_std = std / math.sqrt(2 * self.config.n_layers)
        for name, p in self.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if p.ndim == 1 or leaf in ("u", "v"):
                fill = 1.0 if ("norm" in name and leaf == "weight") else 0.0
                _copy_into(p, torch.full(p.shape, fill))
            else:
                is_residual = name.endswith(("wo.weight", "w2.weight"))
                s = residual_std if is_residual else std
                _copy_into(p, torch.randn(p.shape, generator=gen) * s)


def _copy_into(param: torch.Tensor, value: torch.Tensor) -> None:
    """Copy a full CPU tensor into a parameter (plain or DTensor-sharded)."""
    if hasattr(param, "device_mesh"):  # DTensor: take this rank's shard of the full tensor
        from torch.distributed.tensor import distribute_tensor

        value = distribute_tensor(value.to(param.dtype), param.device_mesh, param.placements)
        param.copy_(value)
    else:
        param.copy_(value.to(param.device, param.dtype))


def build_model(cfg: ModelConfig, seed: int = 0, device: str | torch.device = "cpu"):
    """Build a Transformer on ``device`` and initialise it deterministically from ``seed``."""
    with torch.device(device):
        model = Transformer(cfg)
    model.init_weights(seed)
    return model
