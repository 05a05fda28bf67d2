"""Memory per GPU of a layout: model state, activations (Korthikanti et al. 2022), buffers.

Model state is mixed-precision Adam: 2 bytes of bf16 weights + 2 of bf16 gradients + 12 of
fp32 master weights and the two Adam moments = 16 bytes per parameter, split by tensor x
pipeline partition and then sharded over the data-parallel axis by the ZeRO stage.

Activations per layer and micro-batch (bytes; s sequence, b micro-batch, h width, a heads, t
tensor-parallel degree), from Korthikanti et al. (2022), "Reducing Activation Recomputation in
Large Transformer Models", Table 2 (it assumes d_ff = 4h and a * d_head = h):

    no recompute, tp only:        s b h (10 + 24/t + 5 a s / (h t))
    no recompute, tp + sequence:  s b h / t (34 + 5 a s / h)
    selective, tp only:           s b h (10 + 24/t)
    selective, tp + sequence:     34 s b h / t
    full:                         2 s b h (each layer's input), plus one layer's full set
                                  while that layer runs its backward

Grouped-query attention: the parameters come from ``model.accounting`` (k and v projections
n_kv_heads wide), and the stored keys and values (2 bytes each, 2 s b h of the 34, split by
t like the rest of attention) shrink to 2 s b (n_kv_heads d_head) each: 4 s b (n_heads -
n_kv_heads) d_head / t bytes less per layer unless the layer is recomputed in full.

The first stage of a 1F1B pipeline holds min(p, m) micro-batches in flight (times
1 + (p-1)/(p v) when interleaved), the last stage one; the embedding lives on the first stage
and the output layer (with its fp32 logits) on the last.
"""

from __future__ import annotations

import dataclasses

from scalinglab.model.accounting import layer_params, norm_params
from scalinglab.model.config import ModelConfig, PositionType
from scalinglab.plan.hardware import GIB, GPUSpec
from scalinglab.plan.layout import Layout, Recompute, Schedule

WEIGHT_BYTES = 2  # bf16 weights
GRAD_BYTES = 2  # bf16 gradients
OPTIMIZER_BYTES = 12  # fp32 master weights + Adam m and v
STATE_BYTES = WEIGHT_BYTES + GRAD_BYTES + OPTIMIZER_BYTES  # the 16 bytes per parameter
MIXED_STATE = (WEIGHT_BYTES, GRAD_BYTES, OPTIMIZER_BYTES)  # bf16 training (Megatron)
FP32_STATE = (4, 4, 8)  # fp32 weights and gradients, Adam m and v (no master copy): CPU runs
CONTEXT_BYTES = 2 * GIB  # CUDA context, NCCL buffers and allocator slack, per GPU


@dataclasses.dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes on one GPU of one pipeline stage."""

    stage: str
    """Which stage: "first", "last" or "only" (no pipeline)."""
    params: float
    """Parameters held by the GPU before ZeRO sharding."""
    weights: float
    gradients: float
    optimizer: float
    activations: float
    buffers: float

    @property
    def model_state(self) -> float:
        return self.weights + self.gradients + self.optimizer

    @property
    def total(self) -> float:
        return self.model_state + self.activations + self.buffers

    @property
    def dominant(self) -> str:
        """The largest component: weights, gradients, optimizer, activations or buffers."""
        parts = {k: getattr(self, k) for k in
                 ("weights", "gradients", "optimizer", "activations", "buffers")}
        return max(parts, key=parts.__getitem__)

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d.update(model_state=self.model_state, total=self.total, dominant=self.dominant)
        return d


@dataclasses.dataclass(frozen=True)
class MemoryReport:
    """Memory of a layout: the first and last pipeline stages, and the worst of them."""

    stages: tuple[MemoryBreakdown, ...]
    capacity: float
    """Device memory in bytes."""

    @property
    def worst(self) -> MemoryBreakdown:
        return max(self.stages, key=lambda s: s.total)

    @property
    def fits(self) -> bool:
        return self.worst.total <= self.capacity

    def as_dict(self) -> dict:
        return {"fits": self.fits, "capacity": self.capacity, "worst_stage": self.worst.stage,
                "total": self.worst.total, "dominant": self.worst.dominant,
                "stages": [s.as_dict() for s in self.stages]}


def layer_activation_bytes(cfg: ModelConfig, layout: Layout, seq_len: int,
                           recompute: Recompute | None = None) -> float:
    """Activation bytes one layer keeps for one micro-batch (Korthikanti Table 2)."""
    s, b, h, a, t = seq_len, layout.micro_batch, cfg.d_model, cfg.n_heads, layout.tp
    sp = layout.sequence_parallel
    recompute = layout.recompute if recompute is None else recompute
    sbh = s * b * h
    if recompute == Recompute.full:
        return 2.0 * sbh
    attention_scores = 5 * a * s / (h * t)  # softmax output, dropout mask and its output
    other = 34 / t if sp else 10 + 24 / t  # norms/dropouts unsplit without sequence parallel
    fewer_kv = 4.0 * s * b * (cfg.attn_dim - cfg.kv_dim) / t  # bf16 K and V of G < H heads
    if recompute == Recompute.selective:
        return sbh * other - fewer_kv
    return sbh * (other + attention_scores) - fewer_kv


def in_flight_micro_batches(layout: Layout) -> float:
    """Micro-batches whose activations the first stage holds at its peak."""
    if layout.pp == 1:
        return 1.0
    inflight = float(min(layout.pp, layout.num_micro_batches))
    if layout.schedule == Schedule.interleaved:
        inflight *= 1 + (layout.pp - 1) / (layout.pp * layout.virtual_stages)
    return inflight


def stage_params(cfg: ModelConfig, layout: Layout, first: bool, last: bool) -> float:
    """Parameters on one GPU of a stage: its layers / tp, plus the embedding or output layer."""
    n = cfg.n_layers // layout.pp * layer_params(cfg)
    vocab = cfg.vocab_size * cfg.d_model
    if first:
        n += vocab + (cfg.max_seq_len * cfg.d_model if cfg.position == PositionType.learned else 0)
    if last:
        n += norm_params(cfg)
        # Megatron keeps a copy of tied embeddings on the last stage (grads all-reduced).
        if not cfg.tie_embeddings or not first:
            n += vocab
    replicated = _tp_replicated(cfg, layout, first, last) if layout.tp > 1 else 0.0
    return (n - replicated) / layout.tp + replicated


def _tp_replicated(cfg: ModelConfig, layout: Layout, first: bool, last: bool) -> float:
    """Parameters every tensor-parallel rank holds whole: norms, the row-parallel layers'
    biases, learned positions (the Megatron plan splits only the matrices)."""
    per_layer = 2 * norm_params(cfg) + (2 * cfg.d_model if cfg.bias else 0)
    n = cfg.n_layers // layout.pp * per_layer + (norm_params(cfg) if last else 0)
    if first and cfg.position == PositionType.learned:
        n += cfg.max_seq_len * cfg.d_model
    return float(n)


def _stage_activations(cfg: ModelConfig, layout: Layout, seq_len: int,
                       first: bool, last: bool) -> float:
    s, b, h, t = seq_len, layout.micro_batch, cfg.d_model, layout.tp
    split = t if layout.sequence_parallel else 1
    inflight = in_flight_micro_batches(layout) if first else 1.0
    per_layer = layer_activation_bytes(cfg, layout, seq_len)
    act = per_layer * (cfg.n_layers // layout.pp) * inflight
    if layout.recompute == Recompute.full:  # one layer rebuilt in full during its backward
        act += layer_activation_bytes(cfg, layout, seq_len, Recompute.none)
    if first:  # embedding output (bf16) and its dropout mask
        act += 3 * s * b * h / split * inflight
    if last:  # final norm input, output-layer input, fp32 logits for the loss
        act += 4 * s * b * h / split + 4 * s * b * cfg.vocab_size / t
    return act


def stage_memory(cfg: ModelConfig, layout: Layout, seq_len: int,
                 first: bool, last: bool,
                 state_bytes: tuple[int, int, int] = MIXED_STATE) -> MemoryBreakdown:
    """Bytes on one GPU of the first and/or last stage of ``layout``; ``state_bytes`` are the
    bytes per parameter of weights, gradients and optimizer state."""
    params = stage_params(cfg, layout, first, last)
    dp, zero = layout.dp, layout.zero_stage
    weights = params * state_bytes[0] / (dp if zero >= 3 else 1)
    grads = params * state_bytes[1] / (dp if zero >= 2 else 1)
    optimizer = params * state_bytes[2] / (dp if zero >= 1 else 1)
    if first and layout.tp > 1 and zero < 2:
        # NOTE: DTensor's backward of the vocab-sharded embedding returns a Replicate
        # gradient: each TP rank holds the whole V x D embedding gradient (measured).
        grads += cfg.vocab_size * cfg.d_model * (1 - 1 / layout.tp) * state_bytes[1]
    buffers = float(CONTEXT_BYTES)
    if zero >= 3 and dp > 1:  # two layers gathered at once (current + prefetched), bf16
        buffers += 2 * layer_params(cfg) / layout.tp * WEIGHT_BYTES
    name = "only" if first and last else ("first" if first else "last")
    return MemoryBreakdown(
        stage=name, params=params, weights=weights, gradients=grads, optimizer=optimizer,
        activations=_stage_activations(cfg, layout, seq_len, first, last), buffers=buffers,
    )


def memory_per_gpu(cfg: ModelConfig, layout: Layout, seq_len: int, gpu: GPUSpec) -> MemoryReport:
    """Memory of ``layout`` training ``cfg`` on ``seq_len``-token sequences, per GPU."""
    if layout.pp == 1:
        stages = (stage_memory(cfg, layout, seq_len, True, True),)
    else:
        stages = (stage_memory(cfg, layout, seq_len, True, False),
                  stage_memory(cfg, layout, seq_len, False, True))
    return MemoryReport(stages=stages, capacity=gpu.memory_bytes)


def training_state_bytes(cfg: ModelConfig) -> float:
    """Weights + gradients + Adam state of the whole model at 16 bytes per parameter."""
    from scalinglab.model.accounting import count_params

    return count_params(cfg).total * STATE_BYTES
