"""TrainConfig: everything a training run needs, as plain data saved in the run directory."""

from __future__ import annotations

import dataclasses
import enum

from scalinglab.config import Config, ConfigError
from scalinglab.layout.config import ParallelConfig
from scalinglab.model.accounting import FlopConvention
from scalinglab.model.config import ModelConfig


class NanPolicy(enum.StrEnum):
    """What the trainer does with a step whose loss or gradient norm is NaN or infinite.

    The step itself is never applied (its update would turn every weight into NaN).
    """

    stop = "stop"
    """End the run at once: ``summary.json`` says ``status: diverged`` and the step."""
    skip = "skip"
    """Drop the batch and go on; after ``nan_retries`` dropped batches the run diverges."""
    rollback = "rollback"
    """Reload the newest checkpoint, skip every batch since it (the offending one
    included) and go on; after ``nan_retries`` rollbacks the run diverges."""


@dataclasses.dataclass
class TrainConfig(Config):
    """A training run: model, data, budget, optimiser, schedule and bookkeeping."""

    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    """Shape and variants of the model."""
    preset: str = ""
    """Name of the preset the model came from (informational)."""
    data: str = ""
    """Token shard directory (see ``scalinglab.data.shards``)."""
    out: str = ""
    """Run directory."""
    tokens: int = 0
    """Token budget; 0 means derive it from ``flops``."""
    flops: float = 0.0
    """FLOP budget under ``flop_convention``; used when ``tokens`` is 0."""
    flop_convention: FlopConvention = FlopConvention.chinchilla
    """How a FLOP budget converts to tokens (kaplan, total_6n or chinchilla)."""
    seq_len: int = 0
    """Training context; 0 means model.max_seq_len."""
    batch_tokens: int = 8192
    """Global batch size in tokens (micro-batches are accumulated to reach it)."""
    micro_batch_size: int = 0
    """Sequences per forward pass; 0 means the whole batch at once."""
    lr: float = 1e-3
    """Peak learning rate."""
    min_lr_ratio: float = 0.1
    """Cosine decays to this fraction of the peak (Chinchilla: 10x decay)."""
    warmup_fraction: float = 0.05
    """Fraction of the steps spent in linear warm-up (at least one step)."""
    weight_decay: float = 0.1
    """AdamW weight decay, applied to matrices only (not norms, biases, u/v)."""
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-8
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value (0 disables)."""
    eval_every: int = 0
    """Steps between validation evaluations; 0 means about 10 per run."""
    eval_tokens: int = 32768
    """Validation tokens per evaluation (a fixed set of windows)."""
    checkpoint_every: int = 0
    """Steps between checkpoints; 0 means about 10 per run."""
    keep_checkpoints: int = 2
    """How many step checkpoints to keep."""
    seed: int = 0
    """Seeds the weights and the data order."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N."""
    dtype: str = "fp32"
    """fp32, or bf16 (autocast; parameters and optimiser state stay fp32)."""
    compile: bool = False
    """Wrap the model in torch.compile."""
    peak_flops: float = 0.0
    """Peak FLOP/s that MFU is measured against; 0 means look up or measure it."""
    threads: int = 0
    """CPU threads for torch; 0 keeps torch's default."""
    nan_policy: NanPolicy = NanPolicy.stop
    """stop, skip or rollback: what a step with a non-finite loss or gradient norm does."""
    nan_retries: int = 3
    """Non-finite steps survived (skipped batches or rollbacks) before the run is diverged."""
    spike_factor: float = 0.0
    """Log a ``loss_spike`` event when the train loss exceeds this multiple of its running
    median (0 disables; 2 is a reasonable value)."""
    spike_window: int = 50
    """Steps in that running median."""
    document_mask: bool = False
    """No attention across end-of-text: each document in a training window sees only its own
    tokens, from an end-of-text token that opens it, with positions restarting there
    (``model/masks.py``; Llama 3 trains so). Off: windows are plain causal sequences. Also
    applied to the validation loss. Single process only for now."""
    logger: str = "jsonl"
    """Logger backends, comma-separated: jsonl (always on), tensorboard, wandb (offline
    unless WANDB_MODE says otherwise); see ``scalinglab.train.loggers``."""
    parallel: ParallelConfig = dataclasses.field(default_factory=ParallelConfig)
    """Layout over torchrun's processes (see ``scalinglab.parallel``); all 1: one process."""

    def __post_init__(self) -> None:
        if self.dtype not in ("fp32", "bf16"):
            raise ConfigError(f"TrainConfig.dtype must be fp32 or bf16, got {self.dtype!r}")
        if self.tokens < 0 or self.flops < 0:
            raise ConfigError("TrainConfig.tokens and TrainConfig.flops must be >= 0")
        checks = {
            "lr": self.lr > 0, "batch_tokens": self.batch_tokens > 0,
            "micro_batch_size": self.micro_batch_size >= 0, "seq_len": self.seq_len >= 0,
            "warmup_fraction": 0 <= self.warmup_fraction < 1,
            "min_lr_ratio": 0 <= self.min_lr_ratio <= 1, "grad_clip": self.grad_clip >= 0,
            "eval_every": self.eval_every >= 0, "eval_tokens": self.eval_tokens > 0,
            "checkpoint_every": self.checkpoint_every >= 0,
            "keep_checkpoints": self.keep_checkpoints >= 1, "threads": self.threads >= 0,
            "nan_retries": self.nan_retries >= 0,
            "spike_factor": self.spike_factor == 0 or self.spike_factor > 1,
            "spike_window": self.spike_window >= 1,
        }
        for name, ok in checks.items():
            if not ok:
                raise ConfigError(f"TrainConfig.{name}={getattr(self, name)!r} is out of range")
        if self.document_mask and self.parallel.is_parallel:
            # The distributed trainer's forward (and pipeline stages) take tokens only.
            raise ConfigError("TrainConfig.document_mask=true is not supported with a parallel "
                              "layout yet; train on one process or set document_mask=false")
        from scalinglab.train.loggers import parse_backends

        parse_backends(self.logger)  # an unknown backend fails here, not after the first step

    @property
    def context(self) -> int:
        return self.seq_len or self.model.max_seq_len
