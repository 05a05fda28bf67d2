"""Named model presets with the published shapes, and a shape generator for sweeps.

Each preset is a function returning a ModelConfig. ``PUBLISHED_PARAMS`` holds the size the
paper quotes, so tests can check that the analytic count lands within 1% of it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from scalinglab.config import ConfigError
from scalinglab.model.accounting import count_params
from scalinglab.model.config import MLPType, ModelConfig, NormType, PositionType

GPT_VOCAB = 50257
GOPHER_VOCAB = 32000
JURASSIC_VOCAB = 256000
LLAMA3_VOCAB = 128256


def _gpt(n_layers: int, d_model: int, n_heads: int, d_head: int | None = None,
         vocab_size: int = GPT_VOCAB) -> ModelConfig:
    """GPT-3 style: learned positions, LayerNorm with biases, GELU, tied embeddings."""
    return ModelConfig(
        n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_head=d_head,
        vocab_size=vocab_size, max_seq_len=2048, norm=NormType.layernorm,
        position=PositionType.learned, mlp=MLPType.gelu, tie_embeddings=True, bias=True,
    )


def _gopher(n_layers: int, d_model: int, n_heads: int, d_head: int) -> ModelConfig:
    """Gopher / Chinchilla style: RMSNorm, Transformer-XL relative positions, no biases."""
    return ModelConfig(
        n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_head=d_head,
        vocab_size=GOPHER_VOCAB, max_seq_len=2048, norm=NormType.rmsnorm,
        position=PositionType.relative, mlp=MLPType.gelu, tie_embeddings=True, bias=False,
    )


def _llama3(n_layers: int, d_model: int, n_heads: int, d_ff: int) -> ModelConfig:
    """Llama 3 style (Grattafiori et al. 2024, Table 3): RMSNorm, rotary positions with base
    500,000, SwiGLU, no biases, untied embeddings, grouped-query attention with 8 KV heads
    (heads of 128), pre-training context 8192."""
    return ModelConfig(
        n_layers=n_layers, d_model=d_model, n_heads=n_heads, n_kv_heads=8, d_ff=d_ff,
        vocab_size=LLAMA3_VOCAB, max_seq_len=8192, norm=NormType.rmsnorm,
        position=PositionType.rotary, mlp=MLPType.swiglu, tie_embeddings=False, bias=False,
        rope_theta=500000.0,
    )


def tiny() -> ModelConfig:
    """The preset the tests use: 2 layers, width 64, vocab 256, context 64."""
    return ModelConfig(n_layers=2, d_model=64, n_heads=4, vocab_size=256, max_seq_len=64)


PRESETS: dict[str, Callable[[], ModelConfig]] = {
    "tiny": tiny,
    "gpt3-125m": lambda: _gpt(12, 768, 12),
    "gpt3-350m": lambda: _gpt(24, 1024, 16),
    "gpt3-760m": lambda: _gpt(24, 1536, 16),
    "gpt3-1.3b": lambda: _gpt(24, 2048, 24, d_head=128),
    "gpt3-2.7b": lambda: _gpt(32, 2560, 32),
    "gpt3-6.7b": lambda: _gpt(32, 4096, 32),
    # Published as d_model 5140 with 40 heads of 128 (5120 wide attention).
    "gpt3-13b": lambda: _gpt(40, 5140, 40, d_head=128),
    "gpt3-175b": lambda: _gpt(96, 12288, 96),
    "gopher-44m": lambda: _gopher(8, 512, 16, 32),
    "gopher-117m": lambda: _gopher(12, 768, 12, 64),
    "gopher-417m": lambda: _gopher(12, 1536, 12, 128),
    "gopher-1.4b": lambda: _gopher(24, 2048, 16, 128),
    "gopher-7.1b": lambda: _gopher(32, 4096, 32, 128),
    "gopher-280b": lambda: _gopher(80, 16384, 128, 128),
    "chinchilla-70b": lambda: _gopher(80, 8192, 64, 128),
    "jurassic1-large": lambda: _gpt(32, 4096, 32, vocab_size=JURASSIC_VOCAB),
    "jurassic1-jumbo": lambda: _gpt(76, 13824, 96, vocab_size=JURASSIC_VOCAB),
    "mtnlg-530b": lambda: _gpt(105, 20480, 128),
    "llama3-8b": lambda: _llama3(32, 4096, 32, 14336),
    "llama3-70b": lambda: _llama3(80, 8192, 64, 28672),
    "llama3-405b": lambda: _llama3(126, 16384, 128, 53248),
}

# Sizes as the papers quote them (Brown et al. 2020, Rae et al. 2021, Hoffmann et al. 2022,
# Lieber et al. 2021, Smith et al. 2022; Llama 3: the counts of Meta's model cards, 8.03B /
# 70.6B / 405.9B).
PUBLISHED_PARAMS: dict[str, float] = {
    "gpt3-125m": 125e6, "gpt3-350m": 350e6, "gpt3-760m": 760e6, "gpt3-1.3b": 1.3e9,
    "gpt3-2.7b": 2.7e9, "gpt3-6.7b": 6.7e9, "gpt3-13b": 13.0e9, "gpt3-175b": 175e9,
    "gopher-44m": 44e6, "gopher-117m": 117e6, "gopher-417m": 417e6, "gopher-1.4b": 1.4e9,
    "gopher-7.1b": 7.1e9, "gopher-280b": 280e9, "chinchilla-70b": 70e9,
    "jurassic1-large": 7.5e9, "jurassic1-jumbo": 178e9, "mtnlg-530b": 530e9,
    "llama3-8b": 8.03e9, "llama3-70b": 70.6e9, "llama3-405b": 405.9e9,
}


def get_preset(name: str) -> ModelConfig:
    """The ModelConfig of preset ``name``; a clear error lists the known names."""
    try:
        return PRESETS[name]()
    except KeyError:
        raise ConfigError(
            f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}"
        ) from None


def model_from_spec(spec: str) -> ModelConfig:
    """A preset name, or ``LAYERS/WIDTH/HEADS[/VOCAB]`` for a GPT-style shape."""
    if "/" not in spec:
        return get_preset(spec)
    parts = spec.split("/")
    try:
        nums = [int(float(p)) for p in parts]
    except ValueError:
        nums = []
    if len(nums) not in (3, 4) or min(nums) <= 0:
        raise ConfigError(f"--model {spec!r}: expected a preset or LAYERS/WIDTH/HEADS[/VOCAB]")
    # ModelConfig's defaults are GPT-3's variants: LayerNorm, learned positions, GELU, tied.
    return ModelConfig(n_layers=nums[0], d_model=nums[1], n_heads=nums[2], max_seq_len=2048,
                       vocab_size=nums[3] if len(nums) == 4 else GPT_VOCAB)


def _heads_for(d_model: int) -> tuple[int, int]:
    """(n_heads, d_head) for a generated width: heads of 64 when wide, smaller when tiny."""
    for d_head in (64, 32, 16):
        if d_model % d_head == 0 and d_model >= 2 * d_head:
            return d_model // d_head, d_head
    return 1, d_model


def shape_for_params(
    target: float,
    *,
    vocab_size: int,
    max_seq_len: int,
    aspect_ratio: float = 32.0,
    count: str = "non_embedding",
    width_multiple: int = 16,
    base: ModelConfig | None = None,
) -> ModelConfig:
    """Pick (depth, width, heads) so that the model has about ``target`` parameters.

    For every depth the width (a multiple of ``width_multiple``) that best matches the
    target is found; among those within 10% of the target (or the closest if none are), the
    shape whose d_model / n_layers is nearest ``aspect_ratio`` in log space wins.

    Args:
        target: wanted parameter count.
        vocab_size, max_seq_len: the data the model is for.
        aspect_ratio: wanted d_model / n_layers (a depth-vs-width rule can set it).
        count: which count to match: "non_embedding" or "total".
        width_multiple: widths are multiples of this (hardware-friendly sizes).
        base: config whose variants (norm, position, mlp, ...) the result keeps.
    """
    if target <= 0:
        raise ConfigError(f"shape_for_params: target must be positive, got {target}")
    base = base or ModelConfig(vocab_size=vocab_size, max_seq_len=max_seq_len)
    candidates = []
    for depth in range(1, 257):
        cfg = _best_width(target, depth, vocab_size, max_seq_len, width_multiple, count, base)
        if cfg is None:
            continue
        n = getattr(count_params(cfg), count) if count != "total" else count_params(cfg).total
        miss = abs(math.log(n / target))
        aspect_miss = abs(math.log(cfg.d_model / depth / aspect_ratio))
        candidates.append((miss, aspect_miss, cfg))
        if n > 4 * target:
            break
    if not candidates:
        raise ConfigError(f"shape_for_params: no shape found for {target:.3g} parameters")
    close = [c for c in candidates if c[0] < math.log(1.1)]
    if close:
        return min(close, key=lambda c: (c[1], c[0]))[2]
    return min(candidates, key=lambda c: c[0])[2]


def _best_width(target: float, depth: int, vocab_size: int, max_seq_len: int,
                multiple: int, count: str, base: ModelConfig) -> ModelConfig | None:
    """The width (a multiple of ``multiple``) at ``depth`` whose count is closest to target."""

    def build(k: int) -> tuple[float, ModelConfig]:
        width = k * multiple
        n_heads, d_head = _heads_for(width)
        cfg = base.merge({
            "n_layers": depth, "d_model": width, "n_heads": n_heads, "d_head": d_head,
            "d_ff": 4 * width, "vocab_size": vocab_size, "max_seq_len": max_seq_len,
        })
        params = count_params(cfg)
        return float(params.total if count == "total" else params.non_embedding), cfg

    # The count grows with width, so bisect for the first width at or above the target.
    lo, hi = 1, 1
    while build(hi)[0] < target:
        hi *= 2
        if hi > 1 << 16:
            return None
    while lo < hi:
        mid = (lo + hi) // 2
        if build(mid)[0] < target:
            lo = mid + 1
        else:
            hi = mid
    options = [build(k) for k in {max(1, lo - 1), lo}]
    return min(options, key=lambda o: abs(math.log(o[0] / target)))[1]
