"""Time per iteration, throughput and time to train.

Two directions:

- *Measured -> throughput*: TFLOP/s per GPU from an iteration time by the Megatron-LM formula
  (Narayanan et al. 2021), ``96 B s l h^2 (1 + s/6h + V/16lh)`` with full recomputation (the
  figure MT-NLG and Megatron quote) or 72 without; and back from a TFLOP/s to an iteration time
  and days to train.
- *Estimate* an iteration of a layout: each micro-batch's kernels from the GEMM shapes the
  layout produces (:mod:`scalinglab.plan.kernels`), the pipeline bubble ``(p - 1) / (m v)``,
  tensor-parallel collectives over NVLink, pipeline sends, the data-parallel traffic that the
  compute does not hide, and AdamW's update.
"""

from __future__ import annotations

import dataclasses

from scalinglab.config import Config
from scalinglab.model.accounting import megatron_flops_per_iteration
from scalinglab.model.config import ModelConfig
from scalinglab.plan import kernels
from scalinglab.plan.hardware import GPUSpec
from scalinglab.plan.layout import Layout, Recompute, Schedule
from scalinglab.plan.memory import GRAD_BYTES, WEIGHT_BYTES, stage_params

SECONDS_PER_DAY = 86400.0


@dataclasses.dataclass
class EfficiencyConfig(Config):
    """Knobs of the iteration-time model that are not properties of the GPU kind."""

    matmul_efficiency: float = 0.0
    """0: GEMM time from each GEMM's shape (:mod:`scalinglab.plan.kernels`); > 0: every GEMM
    at this constant fraction of the peak instead (the model before shapes were used)."""
    link_efficiency: float = 0.8
    """Fraction of the link bandwidth that NCCL collectives and sends reach (nccl-tests bus
    bandwidth is ~80% of the link's on NVLink and InfiniBand)."""
    compiled: bool = False
    """The blocks run under ``torch.compile``: elementwise chains fused (fewer HBM passes)."""
    kernel_efficiency: float = 0.67
    """Fraction of the kernel model's speed a real training loop sustains (launch gaps,
    host synchronisation, clocks below the benchmark's, imperfect overlap). One number,
    fitted once: it makes MT-NLG's 280-node iteration 60.1 s; every other published run in
    ``benchmarks/throughput_model.py`` is then a prediction (errors in the README)."""


@dataclasses.dataclass(frozen=True)
class IterationEstimate:
    """Where the time of one optimizer step goes, in seconds (per GPU, all GPUs in lockstep)."""

    compute_s: float
    """Kernels of every micro-batch on the busiest stage (GEMMs, attention, elementwise)."""
    bubble_s: float
    tp_comm_s: float
    pp_comm_s: float
    dp_comm_s: float
    """Data-parallel communication that the backward (or, for ZeRO-3, the micro-batch's
    compute) does not hide."""
    optimizer_s: float
    hardware_flops: float
    """FLOPs executed per iteration (recomputation included)."""
    model_flops: float
    """FLOPs per iteration without recomputation (the 72 formula), for MFU."""
    gpus: int
    peak_flops: float
    tokens: int
    """Tokens per iteration (global batch x sequence)."""

    @property
    def total_s(self) -> float:
        return (self.compute_s + self.bubble_s + self.tp_comm_s + self.pp_comm_s
                + self.dp_comm_s + self.optimizer_s)

    @property
    def tflops_per_gpu(self) -> float:
        """Hardware TFLOP/s per GPU (recomputation counted), as Megatron / MT-NLG quote it."""
        return self.hardware_flops / (self.total_s * self.gpus) / 1e12

    @property
    def tokens_per_gpu_s(self) -> float:
        return self.tokens / (self.total_s * self.gpus)

    @property
    def mfu(self) -> float:
        """Model FLOPs utilisation: model FLOPs over the GPUs' dense peak."""
        return self.model_flops / (self.total_s * self.gpus * self.peak_flops)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(total_s=self.total_s, tflops_per_gpu=self.tflops_per_gpu, mfu=self.mfu,
                 tokens_per_gpu_s=self.tokens_per_gpu_s)
        return d


def executed_flops_per_iteration(cfg: ModelConfig, batch: int, seq_len: int,
                                 recompute: Recompute | str) -> float:
    """FLOPs one iteration executes: 72-formula, + attention-score forward when selective,
    96-formula (a second full forward) when full."""
    recompute = Recompute(recompute)
    if recompute == Recompute.full:
        return megatron_flops_per_iteration(cfg, batch, seq_len, recompute=True)
    flops = megatron_flops_per_iteration(cfg, batch, seq_len, recompute=False)
    if recompute == Recompute.selective:  # QK^T and attention-over-values forward again
        flops += 4.0 * batch * seq_len**2 * cfg.n_layers * cfg.d_model
    return flops


def tflops_per_gpu(cfg: ModelConfig, batch: int, seq_len: int, iteration_s: float,
                   gpus: int, recompute: bool = True) -> float:
    """Achieved TFLOP/s per GPU of a measured iteration time (Megatron formula)."""
    flops = megatron_flops_per_iteration(cfg, batch, seq_len, recompute=recompute)
    return flops / (iteration_s * gpus) / 1e12


def iteration_time(cfg: ModelConfig, batch: int, seq_len: int, tflops: float,
                   gpus: int, recompute: bool = True) -> float:
    """Seconds per iteration at ``tflops`` TFLOP/s per GPU (inverse of :func:`tflops_per_gpu`)."""
    flops = megatron_flops_per_iteration(cfg, batch, seq_len, recompute=recompute)
    return flops / (tflops * 1e12 * gpus)


def days_to_train(tokens: float, batch: int, seq_len: int, iteration_s: float) -> float:
    """Days to see ``tokens`` tokens at ``batch`` sequences of ``seq_len`` per iteration."""
    return tokens / (batch * seq_len) * iteration_s / SECONDS_PER_DAY


def _ring_seconds(message_bytes: float, group: int, bandwidth_gbs: float,
                  passes: float = 2.0) -> float:
    """Ring collective time: ``passes`` (2 for all-reduce, 1 for all-gather or
    reduce-scatter) x (g - 1)/g x message / bandwidth."""
    if group <= 1:
        return 0.0
    return passes * (group - 1) / group * message_bytes / (bandwidth_gbs * 1e9)


@dataclasses.dataclass(frozen=True)
class _MicroBatch:
    """Seconds of one micro-batch on the busiest pipeline stage."""

    compute: float
    backward: float
    """The part of ``compute`` that is backward (what gradient reduction can hide behind)."""
    tp_comm: float


def _gemm(m: int, n: int, k: int, gpu: GPUSpec, eff: EfficiencyConfig) -> tuple[float, float]:
    if eff.matmul_efficiency > 0:  # the constant-efficiency model (kernel_efficiency: 1)
        fwd = 2.0 * m * n * k / (gpu.peak_flops * eff.matmul_efficiency) * eff.kernel_efficiency
        return fwd, 2 * fwd
    return kernels.train_gemm_seconds(m, n, k, gpu)


def _layer_seconds(cfg: ModelConfig, layout: Layout, seq_len: int, gpu: GPUSpec,
                   eff: EfficiencyConfig) -> tuple[float, float]:
    """(total, backward) seconds of one layer for one micro-batch on one GPU."""
    tokens, t = layout.micro_batch * seq_len, layout.tp
    fwd = bwd = 0.0
    for m, n, k in kernels.layer_gemms(cfg, tokens, t):
        f, b = _gemm(m, n, k, gpu, eff)
        fwd, bwd = fwd + f, bwd + b
    attn = kernels.attention_seconds(cfg, layout.micro_batch, seq_len, t, gpu)
    elem = kernels.elementwise_seconds(cfg, tokens, t, layout.sequence_parallel, eff.compiled,
                                       gpu)
    fwd_all = fwd + attn + elem
    bwd_all = bwd + 2 * attn + 2 * elem
    if layout.recompute == Recompute.full:
        recompute = fwd_all
    elif layout.recompute == Recompute.selective:  # every non-matmul op runs again
        recompute = attn + elem
    else:
        recompute = 0.0
    return fwd_all + bwd_all + recompute, bwd_all + recompute


def _output_seconds(cfg: ModelConfig, layout: Layout, seq_len: int, gpu: GPUSpec,
                    eff: EfficiencyConfig) -> float:
    """The output layer and the fp32 cross-entropy (last stage), forward and backward."""
    tokens, vocab = layout.micro_batch * seq_len, cfg.vocab_size // layout.tp
    f, b = _gemm(tokens, vocab, cfg.d_model, gpu, eff)
    loss_bytes = 4 * 4 * tokens * vocab  # fp32 logits: upcast, log-softmax, its gradient
    return f + b + loss_bytes / (gpu.hbm_gbs * 1e9)


def _micro_batch(cfg: ModelConfig, layout: Layout, seq_len: int, gpu: GPUSpec,
                 eff: EfficiencyConfig) -> _MicroBatch:
    layers = cfg.n_layers // layout.pp
    layer, layer_bwd = _layer_seconds(cfg, layout, seq_len, gpu, eff)
    compute = (layers * layer + _output_seconds(cfg, layout, seq_len, gpu, eff))
    compute /= eff.kernel_efficiency
    nvlink = gpu.nvlink_gbs * eff.link_efficiency
    sbh_bytes = seq_len * layout.micro_batch * cfg.d_model * WEIGHT_BYTES  # one activation
    # Tensor parallel: 2 all-reduces (or reduce-scatter + all-gather under sequence
    # parallelism: the same bytes) forward + 2 backward per layer, +2 for a full recompute
    # (selective checkpointing keeps the collectives' outputs).
    n_allreduce = 4 + (2 if layout.recompute == Recompute.full else 0)
    tp = n_allreduce * layers * _ring_seconds(sbh_bytes, layout.tp, nvlink)
    return _MicroBatch(compute=compute, backward=layers * layer_bwd / eff.kernel_efficiency,
                       tp_comm=tp)


def estimate_iteration(cfg: ModelConfig, layout: Layout, gpu: GPUSpec, seq_len: int,
                       eff: EfficiencyConfig | None = None) -> IterationEstimate:
    """Seconds per optimizer step of ``layout`` training ``cfg`` on ``gpu``s: per-micro-batch
    kernels from the GEMM shapes, tensor-parallel collectives, pipeline sends and bubble
    ``(p - 1) / v`` micro-batches, data-parallel traffic the compute does not hide, AdamW."""
    eff = eff or EfficiencyConfig()
    m, p = layout.num_micro_batches, layout.pp
    v = layout.virtual_stages if layout.schedule == Schedule.interleaved else 1
    mb = _micro_batch(cfg, layout, seq_len, gpu, eff)
    nvlink = gpu.nvlink_gbs * eff.link_efficiency
    inter = gpu.internode_gbs * eff.link_efficiency
    # Pipeline: one activation forward and one gradient back per micro-batch and chunk; the
    # scatter/gather optimisation sends 1/t of it per GPU. Crosses nodes once tp*pp > node.
    sbh_bytes = seq_len * layout.micro_batch * cfg.d_model * WEIGHT_BYTES
    pp_bw = inter if layout.tp * p > gpu.gpus_per_node else nvlink
    per_mb_pp = 2 * v * sbh_bytes / layout.tp / (pp_bw * 1e9) if p > 1 else 0.0
    per_mb = mb.compute + mb.tp_comm + per_mb_pp
    bubble = (p - 1) / v * per_mb if p > 1 else 0.0
    dp = _dp_exposed(cfg, layout, gpu, nvlink, inter, mb)
    params = max(stage_params(cfg, layout, True, False), stage_params(cfg, layout, False, True))
    shards = layout.dp if layout.zero_stage >= 1 else 1
    return IterationEstimate(
        compute_s=mb.compute * m, bubble_s=bubble, tp_comm_s=mb.tp_comm * m,
        pp_comm_s=per_mb_pp * m, dp_comm_s=dp,
        optimizer_s=kernels.optimizer_seconds(params / shards, gpu),
        hardware_flops=executed_flops_per_iteration(cfg, layout.global_batch, seq_len,
                                                    layout.recompute),
        model_flops=megatron_flops_per_iteration(cfg, layout.global_batch, seq_len,
                                                 recompute=False),
        gpus=layout.gpus, peak_flops=gpu.peak_flops, tokens=layout.global_batch * seq_len)


def _dp_exposed(cfg: ModelConfig, layout: Layout, gpu: GPUSpec, nvlink: float, inter: float,
                mb: _MicroBatch) -> float:
    """Data-parallel traffic per step that the compute does not hide.

    ZeRO 0-2: one gradient reduction (all-reduce, or reduce-scatter + all-gather: the same
    bytes), issued layer by layer during the last micro-batch's backward and hidden behind
    it. ZeRO-3 (FSDP): per micro-batch, a weight all-gather for forward and for backward (and
    for a full recompute) plus an fp32 gradient reduce-scatter, prefetched one layer ahead and
    hidden behind that micro-batch's compute; the first layer's gather is never hidden.
    """
    if layout.dp == 1:
        return 0.0
    bw = inter if layout.gpus > gpu.gpus_per_node else nvlink
    params = max(stage_params(cfg, layout, True, False), stage_params(cfg, layout, False, True))
    if layout.zero_stage < 3:
        comm = _ring_seconds(params * GRAD_BYTES, layout.dp, bw)
        return max(0.0, comm - mb.backward)
    gathers = 3 if layout.recompute == Recompute.full else 2
    gather = _ring_seconds(params * WEIGHT_BYTES, layout.dp, bw, passes=1)
    scatter = _ring_seconds(params * 4, layout.dp, bw, passes=1)  # fp32 reduce
    per_mb = gathers * gather + scatter
    first_layer = gather / max(1, cfg.n_layers // layout.pp)
    return layout.num_micro_batches * max(0.0, per_mb - mb.compute) + first_layer
