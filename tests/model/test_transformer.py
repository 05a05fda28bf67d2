"""The model as built: exact parameter counts, shapes, causality and the position schemes."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from scalinglab.model.accounting import count_params
from scalinglab.model.config import MLPType, ModelConfig, NormType, PositionType
from scalinglab.model.transformer import Rotary, build_model

VARIANTS = list(itertools.product(NormType, PositionType, MLPType, [True, False], [True, False]))


def small(**kw) -> ModelConfig:
    """2 layers, d_model 24 with 3 heads of 10 (attention width 30 != d_model), d_ff 40."""
    base = dict(n_layers=2, d_model=24, n_heads=3, d_head=10, d_ff=40, vocab_size=50,
                max_seq_len=16)
    return ModelConfig(**{**base, **kw})


@pytest.mark.parametrize("norm,position,mlp,tie,bias", VARIANTS)
def test_analytic_count_equals_numel(norm, position, mlp, tie, bias):
    cfg = small(norm=norm, position=position, mlp=mlp, tie_embeddings=tie, bias=bias)
    model = build_model(cfg)
    numel = sum(p.numel() for p in model.parameters())  # tied weights are listed once
    assert count_params(cfg).total == numel
    embedding = model.tok_embeddings.weight.numel() + (0 if tie else model.output.weight.numel())
    if position == PositionType.learned:
        embedding += model.input_positions.weight.numel()
    assert count_params(cfg).embedding == embedding


@pytest.mark.parametrize("position", list(PositionType))
def test_forward_shape_and_finite(position):
    cfg = small(position=position)
    logits = build_model(cfg)(torch.randint(0, 50, (3, 11)))
    assert logits.shape == (3, 11, 50)
    assert torch.isfinite(logits).all()


def _randomise(model: torch.nn.Module, seed: int = 1) -> None:
    """Non-zero values everywhere (init_weights zeroes u, v and biases, hiding their terms)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)


@pytest.mark.parametrize("position", list(PositionType))
def test_causal_future_tokens_do_not_change_past_logits(position):
    model = build_model(small(position=position, bias=True))
    _randomise(model)
    tokens = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(0))
    changed = tokens.clone()
    changed[:, 7:] = (changed[:, 7:] + 1) % 50
    a, b = model(tokens), model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7], rtol=0, atol=1e-5)
    assert (a[:, 7:] - b[:, 7:]).abs().max() > 1e-3  # and the future positions do change


def naive_relative_attention(attn, x: torch.Tensor) -> torch.Tensor:
    """Transformer-XL attention (Dai et al. 2019, eq. 3 with u, v), one (i, j) at a time.

    score(i, j) = (q_i + u) . k_j + (q_i + v) . (W_r R_{i-j}), for j <= i, scaled by
    1/sqrt(d_head), with R_d = [sin(d w_0), ..., sin(d w_{D/2-1}), cos(d w_0), ...],
    w_m = 10000^(-2m/D).
    """
    b, t, d = x.shape
    h, k = attn.n_heads, attn.d_head
    pos = attn.positions
    q = attn.wq(x).view(b, t, h, k)
    kk = attn.wk(x).view(b, t, h, k)
    v = attn.wv(x).view(b, t, h, k)
    freqs = [10000.0 ** (-2 * m / d) for m in range(d // 2)]
    out = torch.zeros(b, t, h, k)
    for i in range(t):
        for head in range(h):
            scores = []
            for j in range(i + 1):
                r = torch.tensor([math.sin((i - j) * f) for f in freqs]
                                 + [math.cos((i - j) * f) for f in freqs])
                wr_r = (pos.wr.weight @ r).view(h, k)[head]
                content = ((q[:, i, head] + pos.u[head]) * kk[:, j, head]).sum(-1)
                position = ((q[:, i, head] + pos.v[head]) * wr_r).sum(-1)
                scores.append((content + position) / math.sqrt(k))  # (B,)
            p = torch.softmax(torch.stack(scores, dim=-1), dim=-1)  # (B, i+1)
            out[:, i, head] = torch.einsum("bj,bjk->bk", p, v[:, : i + 1, head])
    return attn.wo(out.reshape(b, t, h * k))


def test_relative_attention_matches_naive_reference():
    torch.manual_seed(0)
    model = build_model(small(position="relative", d_model=16, n_heads=2, d_head=6))
    _randomise(model)
    attn = model.layers["0"].attention
    x = torch.randn(2, 7, 16)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), naive_relative_attention(attn, x),
                                   rtol=1e-4, atol=1e-5)


def test_rotary_scores_depend_only_on_relative_position():
    cfg = small(position="rotary")
    rope = Rotary(cfg)
    gen = torch.Generator().manual_seed(0)
    q1, k1 = torch.randn(cfg.head_dim, generator=gen), torch.randn(cfg.head_dim, generator=gen)
    t = 9
    q = q1.expand(1, 1, t, -1).contiguous()  # the same query and key at every position
    k = k1.expand(1, 1, t, -1).contiguous()
    rq, rk, _ = rope(q, k)
    scores = (rq @ rk.transpose(-1, -2))[0, 0]  # (T, T)
    for shift in range(1, 4):  # score(i, j) == score(i + s, j + s)
        torch.testing.assert_close(scores[shift:, shift:], scores[:-shift, :-shift])
    assert not torch.allclose(scores[0, 1], scores[0, 2])  # but it does depend on i - j
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1))  # a rotation


def test_same_seed_same_weights_and_tied_output():
    a, b = build_model(small(), seed=3), build_model(small(), seed=3)
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q), name
    assert a.output.weight is a.tok_embeddings.weight
    assert not torch.equal(build_model(small(), seed=4).tok_embeddings.weight,
                           a.tok_embeddings.weight)


def test_loss_at_init_is_near_uniform():
    model = build_model(small(vocab_size=50))
    gen = torch.Generator().manual_seed(0)
    tokens, targets = torch.randint(0, 50, (2, 4, 16), generator=gen)
    loss = F.cross_entropy(model(tokens).flatten(0, 1), targets.flatten())
    assert abs(loss.item() - math.log(50)) < 0.2


@pytest.mark.parametrize("position", list(PositionType))
def test_bf16_autocast_forward_backward(position):
    model = build_model(small(position=position))
    tokens = torch.randint(0, 50, (2, 9))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(tokens)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()
    with torch.no_grad():
        torch.testing.assert_close(logits.float(), model(tokens), atol=0.05, rtol=0.05)
    logits.float().logsumexp(-1).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
