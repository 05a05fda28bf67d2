"""Grouped-query attention: config rules, counts by hand, and the attention against two
independent references (explicitly repeated K/V heads through softmax attention written out,
and Hugging Face's LlamaAttention)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from scalinglab.config import ConfigError
from scalinglab.model.accounting import count_params, forward_flops_per_token
from scalinglab.model.config import ModelConfig, PositionType
from scalinglab.model.presets import tiny
from scalinglab.model.transformer import build_model


def gqa(**kw) -> ModelConfig:
    """6 query heads of 8 over 3 or fewer KV heads; width 40 != attention width 48."""
    base = dict(n_layers=2, d_model=40, n_heads=6, d_head=8, n_kv_heads=2, d_ff=56,
                vocab_size=50, max_seq_len=16, position="rotary", norm="rmsnorm",
                mlp="swiglu", bias=False)
    return ModelConfig(**{**base, **kw})


def _randomise(model: torch.nn.Module, seed: int = 1) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)


def test_default_is_multi_head_and_kv_heads_must_divide_heads():
    assert ModelConfig(n_heads=4).kv_heads == 4
    # left unresolved, so a shape derived with replace() stays multi-head (the planner does so)
    assert dataclasses.replace(ModelConfig(n_heads=4), n_heads=8, d_head=8).kv_heads == 8
    assert ModelConfig(n_heads=4, n_kv_heads=1).kv_dim == 16
    with pytest.raises(ConfigError, match=r"n_kv_heads=3 must divide n_heads=4"):
        ModelConfig(n_heads=4, n_kv_heads=3)
    with pytest.raises(ConfigError, match=r"ModelConfig.n_kv_heads must be a positive"):
        ModelConfig(n_heads=4, n_kv_heads=0)


def test_overriding_heads_keeps_multi_head_multi_head_and_grouped_grouped():
    assert tiny().merge(["n_heads=8"]).kv_heads == 8  # was derived (= n_heads): follows
    grouped = tiny().merge({"n_kv_heads": 2})
    assert grouped.merge(["n_heads=8"]).n_kv_heads == 2  # set explicitly: kept
    with pytest.raises(ConfigError, match="must divide"):
        grouped.merge(["n_heads=1"])


def test_old_configs_without_the_field_read_as_multi_head():
    data = tiny().as_dict()
    del data["n_kv_heads"]
    assert ModelConfig.from_dict(data).kv_heads == tiny().n_heads


@pytest.mark.parametrize("kv", [1, 2, 3, 6])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("position", list(PositionType))
def test_counts_by_hand_and_numel(kv, bias, position):
    cfg = gqa(n_kv_heads=kv, bias=bias, position=position, norm="layernorm")
    d, a, g, f, v, layers = 40, 48, 8 * kv, 56, 50, 2
    attention = d * a + 2 * d * g + a * d + ((a + 2 * g + d) if bias else 0)
    if position == "relative":
        attention += d * a + 2 * a  # W_r and u, v (per query head)
    mlp = 3 * d * f + ((2 * f + d) if bias else 0)
    norm = 2 * d if bias else d
    embedding = v * d + (16 * d if position == "learned" else 0)
    assert count_params(cfg).total == embedding + layers * (attention + mlp + 2 * norm) + norm
    assert count_params(cfg).total == sum(p.numel() for p in build_model(cfg).parameters())


def test_flops_shrink_only_in_the_kv_projections():
    t = 16
    full, grouped = gqa(n_kv_heads=6), gqa(n_kv_heads=2)
    # k and v projections: 2 (forward multiply-add) x 2 matrices x d x (heads - kv) x d_head
    saved_per_layer = 2 * 2 * 40 * (6 - 2) * 8
    assert forward_flops_per_token(full, t) - forward_flops_per_token(grouped, t) == \
        2 * saved_per_layer


def reference_attention(attn, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Each KV head repeated for its group of H/G consecutive query heads, then softmax
    attention written out; rotary applied by its definition (pairs (2i, 2i+1) rotated by
    pos * theta^(-2i/K)). ``allowed``: (T, T) or (B, T, T) bool."""
    b, t, _ = x.shape
    h, k = attn.n_heads, attn.d_head
    q = attn.wq(x).view(b, t, h, k).transpose(1, 2)
    kk = attn.wk(x).view(b, t, -1, k).transpose(1, 2)
    v = attn.wv(x).view(b, t, -1, k).transpose(1, 2)
    group = h // kk.shape[1]
    kk, v = kk.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)  # (B,H,T,K)
    theta = attn.positions.theta
    pos = torch.arange(t, dtype=torch.float64)
    angles = pos[:, None] * theta ** (-torch.arange(0, k, 2, dtype=torch.float64) / k)

    def rotate(z):
        z = z.double()
        even, odd = z[..., 0::2], z[..., 1::2]
        out = torch.empty_like(z)
        out[..., 0::2] = even * angles.cos() - odd * angles.sin()
        out[..., 1::2] = even * angles.sin() + odd * angles.cos()
        return out

    scores = rotate(q) @ rotate(kk).transpose(-1, -2) / math.sqrt(k)  # (B, H, T, T)
    scores = scores.masked_fill(~allowed.reshape(-1, 1, t, t), float("-inf"))
    y = scores.softmax(-1) @ v.double()
    return attn.wo(y.float().transpose(1, 2).reshape(b, t, h * k))


@pytest.mark.parametrize("kv", [1, 2, 3])
def test_attention_equals_repeated_kv_reference(kv):
    model = build_model(gqa(n_kv_heads=kv))
    _randomise(model)
    attn = model.layers["0"].attention
    assert attn.wk.weight.shape == (8 * kv, 40)
    x = torch.randn(2, 9, 40, generator=torch.Generator().manual_seed(0))
    causal = torch.ones(9, 9, dtype=torch.bool).tril()
    with torch.no_grad():
        torch.testing.assert_close(attn(x), reference_attention(attn, x, causal),
                                   rtol=1e-4, atol=1e-4)


@pytest.mark.slow  # importing transformers takes ~20 s here
@pytest.mark.parametrize("kv", [1, 2])
def test_attention_matches_hugging_face_llama_attention(kv):
    llama = pytest.importorskip("transformers.models.llama.modeling_llama")
    from transformers import LlamaConfig

    cfg = gqa(n_kv_heads=kv, rope_theta=500000.0, d_model=48)  # HF: width = heads x d_head
    model = build_model(cfg)
    _randomise(model)
    ours = model.layers["0"].attention
    hf_cfg = LlamaConfig(hidden_size=48, num_attention_heads=6, num_key_value_heads=kv,
                         head_dim=8, attention_bias=False, rope_theta=500000.0,
                         max_position_embeddings=16)
    hf_cfg._attn_implementation = "eager"
    hf = llama.LlamaAttention(hf_cfg, layer_idx=0).eval()
    # Our rotary rotates pairs (2i, 2i+1); HF's rotates (i, i + K/2): permute the q/k rows of
    # each head accordingly (q.k is unchanged by applying one permutation to both).
    perm = torch.cat([torch.arange(0, 8, 2), torch.arange(1, 8, 2)])

    def per_head(w, heads):
        return w.view(heads, 8, -1)[:, perm].reshape(heads * 8, -1)

    with torch.no_grad():
        hf.q_proj.weight.copy_(per_head(ours.wq.weight, 6))
        hf.k_proj.weight.copy_(per_head(ours.wk.weight, kv))
        hf.v_proj.weight.copy_(ours.wv.weight)
        hf.o_proj.weight.copy_(ours.wo.weight)
        t = 11
        x = torch.randn(3, t, 48, generator=torch.Generator().manual_seed(2))
        cos, sin = llama.LlamaRotaryEmbedding(hf_cfg)(x, torch.arange(t)[None])
        mask = torch.full((t, t), float("-inf")).triu(1)[None, None]
        expected, _ = hf(x, position_embeddings=(cos, sin), attention_mask=mask)
        torch.testing.assert_close(ours(x), expected, rtol=1e-4, atol=1e-5)
