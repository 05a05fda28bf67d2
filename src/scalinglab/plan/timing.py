"""Time per iteration, throughput and time to train.

Two directions:

- *Measured -> throughput*: TFLOP/s per GPU from an iteration time by the Megatron-LM formula
  (Narayanan et al. 2021), ``96 B s l h^2 (1 + s/6h + V/16lh)`` with full recomputation (the
  figure MT-NLG and Megatron quote) or 72 without; and back from a TFLOP/s to an iteration time
  and days to train.
- *Estimate* an iteration of a layout: compute at a fraction of the dense peak, the pipeline
  bubble ``(p - 1) / (m v)``, tensor-parallel collectives over NVLink, pipeline sends and the
  data-parallel gradient reduction over the inter-node links.
"""

from __future__ import annotations

import dataclasses

from scalinglab.config import Config
from scalinglab.model.accounting import megatron_flops_per_iteration
from scalinglab.model.config import ModelConfig
from scalinglab.plan.hardware import GPUSpec
from scalinglab.plan.layout import Layout, Recompute, Schedule
from scalinglab.plan.memory import GRAD_BYTES, WEIGHT_BYTES, stage_params

SECONDS_PER_DAY = 86400.0


@dataclasses.dataclass
class EfficiencyConfig(Config):
    """How far real kernels and collectives fall short of the datasheet."""

    matmul_efficiency: float = 0.5
    """Fraction of the dense peak the forward/backward kernels sustain (large-GEMM transformer
    layers reach about half of an A100's peak end to end in Megatron-LM)."""
    link_efficiency: float = 0.8
    """Fraction of the link bandwidth that NCCL collectives and sends reach."""
    dp_overlap: float = 0.0
    """Fraction of the data-parallel communication hidden behind the backward pass."""


@dataclasses.dataclass(frozen=True)
class IterationEstimate:
    """Where the time of one optimizer step goes, in seconds (per GPU, all GPUs in lockstep)."""

    compute_s: float
    bubble_s: float
    tp_comm_s: float
    pp_comm_s: float
    dp_comm_s: float
    hardware_flops: float
    """FLOPs executed per iteration (recomputation included)."""
    model_flops: float
    """FLOPs per iteration without recomputation (the 72 formula), for MFU."""
    gpus: int
    peak_flops: float

    @property
    def total_s(self) -> float:
        return self.compute_s + self.bubble_s + self.tp_comm_s + self.pp_comm_s + self.dp_comm_s

    @property
    def tflops_per_gpu(self) -> float:
        """Hardware TFLOP/s per GPU (recomputation counted), as Megatron / MT-NLG quote it."""
        return self.hardware_flops / (self.total_s * self.gpus) / 1e12

    @property
    def mfu(self) -> float:
        """Model FLOPs utilisation: model FLOPs over the GPUs' dense peak."""
        return self.model_flops / (self.total_s * self.gpus * self.peak_flops)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(total_s=self.total_s, tflops_per_gpu=self.tflops_per_gpu, mfu=self.mfu)
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


def estimate_iteration(cfg: ModelConfig, layout: Layout, gpu: GPUSpec, seq_len: int,
                       eff: EfficiencyConfig | None = None) -> IterationEstimate:
    """Seconds per optimizer step of ``layout`` training ``cfg`` on ``gpu``s."""
    eff = eff or EfficiencyConfig()
    m, p = layout.num_micro_batches, layout.pp
    v = layout.virtual_stages if layout.schedule == Schedule.interleaved else 1
    hw = executed_flops_per_iteration(cfg, layout.global_batch, seq_len, layout.recompute)
    model = megatron_flops_per_iteration(cfg, layout.global_batch, seq_len, recompute=False)
    compute = hw / (layout.gpus * gpu.peak_flops * eff.matmul_efficiency)

    nvlink = gpu.nvlink_gbs * eff.link_efficiency
    inter = gpu.internode_gbs * eff.link_efficiency
    sbh_bytes = seq_len * layout.micro_batch * cfg.d_model * WEIGHT_BYTES  # one activation
    # Tensor parallel: 2 all-reduces forward + 2 backward per layer (+2 for a full recompute).
    n_allreduce = 4 + (2 if layout.recompute == Recompute.full else 0)
    per_mb_tp = n_allreduce * (cfg.n_layers // p) * _ring_seconds(sbh_bytes, layout.tp, nvlink)
    # Pipeline: one activation forward and one gradient back per micro-batch and chunk; the
    # scatter/gather optimisation sends 1/t of it per GPU. Crosses nodes once tp*pp > node.
    pp_bw = inter if layout.tp * p > gpu.gpus_per_node else nvlink
    per_mb_pp = 2 * v * sbh_bytes / layout.tp / (pp_bw * 1e9) if p > 1 else 0.0

    per_mb_compute = compute / m
    per_mb = per_mb_compute + per_mb_tp + per_mb_pp
    bubble = (p - 1) / v * per_mb if p > 1 else 0.0
    dp = _dp_seconds(cfg, layout, gpu, seq_len, nvlink, inter) * (1 - eff.dp_overlap)
    return IterationEstimate(
        compute_s=compute, bubble_s=bubble, tp_comm_s=per_mb_tp * m, pp_comm_s=per_mb_pp * m,
        dp_comm_s=dp, hardware_flops=hw, model_flops=model, gpus=layout.gpus,
        peak_flops=gpu.peak_flops,
    )


def _dp_seconds(cfg: ModelConfig, layout: Layout, gpu: GPUSpec, seq_len: int,
                nvlink: float, inter: float) -> float:
    """Data-parallel traffic per step: one gradient all-reduce (ZeRO 0-2: reduce-scatter +
    all-gather moves the same bytes); ZeRO-3 gathers weights for every micro-batch's forward
    and backward (and recompute) and reduce-scatters gradients each micro-batch."""
    if layout.dp == 1:
        return 0.0
    bw = inter if layout.gpus > gpu.gpus_per_node else nvlink
    params = max(stage_params(cfg, layout, True, False), stage_params(cfg, layout, False, True))
    if layout.zero_stage < 3:
        return _ring_seconds(params * GRAD_BYTES, layout.dp, bw)
    gathers = 3 if layout.recompute == Recompute.full else 2
    per_mb = (gathers + 1) * _ring_seconds(params * WEIGHT_BYTES, layout.dp, bw, passes=1)
    return per_mb * layout.num_micro_batches

