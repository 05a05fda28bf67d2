"""Seconds one GPU spends on the kernels of one transformer layer (or the output layer) for one
micro-batch: GEMMs from their shapes, fused attention, memory-bound elementwise work, AdamW.

A GEMM ``(M, K) x (K, N)`` runs at the larger of its compute time and its memory time:

    compute = 2 M N K / (peak x clock_scale x matmul_ceiling x wave_utilisation)
    memory  = 2 (M K + K N + M N) bytes / HBM bandwidth            (bf16 operands)

``matmul_ceiling`` is the best-shaped GEMM's measured fraction of the peak (MAMF). Wave
utilisation is the NVIDIA "Matrix Multiplication Background" guide's wave quantisation: the
output is cut into 128 x 256 tiles that run in waves of one tile per SM, and a last, partial
wave idles the rest. Small matrices (low TP degree of a thin model, micro-batches of a few
tokens) thus run less efficiently than large ones, which is what a constant efficiency missed.

Per forward GEMM the backward pass runs two of transposed shapes (input and weight
gradients). Fused attention executes the causal half of ``QK^T`` and ``AV`` at
``attention_efficiency`` (its backward costs twice its forward). Elementwise work (norms,
rotary, activations, residual adds, transposes) is memory-bound: ``bytes = passes x tokens x
width x 2``, with the passes counted op by op below, eager or fused by ``torch.compile``.
"""

from __future__ import annotations

import math

from scalinglab.model.config import MLPType, ModelConfig, PositionType
from scalinglab.plan.hardware import GPUSpec

TILE_M, TILE_N = 128, 256  # cuBLAS's large bf16 tile on A100/H100
ACT_BYTES = 2  # bf16 activations

# Passes over a (tokens, width) tensor per layer in the forward pass (a read or a write each).
# Eager: norm 2 (fused native kernel) x 2 norms, residual add 3 x 2, q/k/v layout copies 6,
# rotary 6 (when used); MLP activation in units of d_ff: GELU 2, SwiGLU 5 (silu 2 +
# multiply 3). torch.compile fuses each chain between two GEMMs into one kernel that reads
# its inputs and writes its outputs once: norm + residual 3 x 2, q/k/v 3, rotary 2, MLP
# activation GELU 2 / SwiGLU 3. (No dropout: the model has none.)
EAGER_PASSES = {"base": 16.0, "rotary": 6.0, "gelu": 2.0, "swiglu": 5.0}
COMPILED_PASSES = {"base": 9.0, "rotary": 2.0, "gelu": 2.0, "swiglu": 3.0}
ADAMW_BYTES = 30  # per parameter: fp32 param r/w 8, m r/w 8, v r/w 8, fp32 grad 4, bf16 copy 2


def sustained_flops(gpu: GPUSpec) -> float:
    return gpu.peak_flops * gpu.clock_scale


def wave_utilisation(m: int, n: int, gpu: GPUSpec) -> float:
    """Fraction of the SMs busy over the waves of an ``m x n`` output."""
    tiles = math.ceil(m / TILE_M) * math.ceil(n / TILE_N)
    return tiles / (math.ceil(tiles / gpu.sms) * gpu.sms)


def gemm_seconds(m: int, n: int, k: int, gpu: GPUSpec) -> float:
    """One ``(m, k) x (k, n)`` bf16 GEMM (see the module docstring)."""
    rate = sustained_flops(gpu) * gpu.matmul_ceiling * wave_utilisation(m, n, gpu)
    compute = 2.0 * m * n * k / rate
    memory = ACT_BYTES * (m * k + k * n + m * n) / (gpu.hbm_gbs * 1e9)
    return max(compute, memory)


def train_gemm_seconds(m: int, n: int, k: int, gpu: GPUSpec) -> tuple[float, float]:
    """(forward, backward) seconds of a Linear with ``m`` tokens, ``k`` in, ``n`` out."""
    return gemm_seconds(m, n, k, gpu), gemm_seconds(m, k, n, gpu) + gemm_seconds(k, n, m, gpu)


def layer_gemms(cfg: ModelConfig, tokens: int, tp: int) -> list[tuple[int, int, int]]:
    """(M, N, K) of one layer's forward GEMMs on one GPU after tensor parallelism."""
    h, d_head = cfg.d_model, cfg.head_dim
    kv_heads = cfg.kv_heads  # grouped-query attention
    q, kv, f = cfg.n_heads * d_head // tp, kv_heads * d_head // tp, cfg.ff_dim // tp
    gemms = [(tokens, q, h), (tokens, kv, h), (tokens, kv, h), (tokens, h, q)]
    ups = 2 if cfg.mlp == MLPType.swiglu else 1
    return gemms + [(tokens, f, h)] * ups + [(tokens, h, f)]


def attention_seconds(cfg: ModelConfig, micro_batch: int, seq_len: int, tp: int,
                      gpu: GPUSpec) -> float:
    """Forward seconds of causal fused attention (QK^T and AV, half the square) on one GPU."""
    flops = 4.0 * micro_batch * seq_len**2 * cfg.n_heads * cfg.head_dim / tp / 2
    return flops / (sustained_flops(gpu) * gpu.attention_efficiency)


def elementwise_seconds(cfg: ModelConfig, tokens: int, tp: int, sequence_parallel: bool,
                        compiled: bool, gpu: GPUSpec) -> float:
    """Forward seconds of one layer's memory-bound ops on one GPU."""
    passes = COMPILED_PASSES if compiled else EAGER_PASSES
    width = passes["base"]
    if cfg.position == PositionType.rotary:
        width += passes["rotary"]
    width = width * cfg.d_model / (tp if sequence_parallel else 1)
    width += passes[str(cfg.mlp)] * cfg.ff_dim / tp
    return width * tokens * ACT_BYTES / (gpu.hbm_gbs * 1e9)


def optimizer_seconds(params_on_gpu: float, gpu: GPUSpec) -> float:
    """AdamW's memory-bound update of ``params_on_gpu`` parameters."""
    return params_on_gpu * ADAMW_BYTES / (gpu.hbm_gbs * 1e9)
