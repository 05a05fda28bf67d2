"""What a sweep is asked for: ``SweepConfig`` (saved as ``STUDY/sweep.json``), its grids and
rules (``IsoFlopConfig``, ``FixedSizeConfig``, ``DepthWidthConfig``, ``LRRule``,
``BatchRule``, ``SlurmConfig``) and ``RunSpec``, one planned run of ``STUDY/plan.json``.
Planning lives in ``scaling.sweep``, the study directory's files in ``scaling.study_dir``.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from scalinglab.config import Config
from scalinglab.model.accounting import (
    FlopConvention,
    law_param_count,
)
from scalinglab.model.config import ModelConfig
from scalinglab.train.config import TrainConfig


@dataclasses.dataclass
class LRRule(Config):
    """Peak learning rate as a power law of non-embedding parameters, clipped to a range.

    lr = ref_lr * (N / ref_params) ** -exponent. The defaults are fitted to GPT-3's table
    (125M: 6e-4 ... 175B: 0.6e-4, i.e. about N^-1/3) and give 3e-3 at 1M parameters.
    """

    ref_lr: float = 6e-4
    """Learning rate at ``ref_params``."""
    ref_params: float = 1.25e8
    """Non-embedding parameters where ``ref_lr`` holds (GPT-3 Small)."""
    exponent: float = 1.0 / 3.0
    """lr falls as N^-exponent."""
    max_lr: float = 1e-2
    """Upper clip: tiny models diverge above this."""
    min_lr: float = 1e-5
    """Lower clip."""

    def __call__(self, n_params: float) -> float:
        lr = self.ref_lr * (n_params / self.ref_params) ** -self.exponent
        return float(min(self.max_lr, max(self.min_lr, lr)))


@dataclasses.dataclass
class BatchRule(Config):
    """Global batch in tokens as a power law of N, capped so every run has enough steps.

    target = ref_tokens * (N / ref_params) ** exponent (GPT-3: 0.5M tokens at 125M, 3.2M at
    175B, about N^0.25), rounded to a power of two times seq_len, then halved until the run has
    at least ``min_steps`` optimiser steps (never below one sequence).

    With ``steps`` set, the batch instead follows the run's length: about ``steps`` optimiser
    steps per run, batch = tokens / steps in whole sequences, capped by the power law above.
    At ~1e4 parameters the critical batch is tiny: a run of a few hundred steps at 32
    sequences ends far above the same run at 8 (0.1-0.8 nats on the demo), so a fixed batch
    makes the loss of short runs measure step starvation, not size and data.
    """

    ref_tokens: float = 524288
    """Batch tokens at ``ref_params``."""
    ref_params: float = 1.25e8
    """Non-embedding parameters where ``ref_tokens`` holds."""
    exponent: float = 0.25
    """Batch grows as N^exponent."""
    min_steps: int = 64
    """Every run gets at least this many steps (short runs get smaller batches)."""
    steps: int = 0
    """0: power-of-two batches as above. > 0: about this many steps per run (see above)."""

    def __call__(self, n_params: float, tokens: float, seq_len: int) -> int:
        target = self.ref_tokens * (n_params / self.ref_params) ** self.exponent
        seqs = 2 ** max(0, round(math.log2(max(1.0, target / seq_len))))
        if self.steps > 0:
            return int(min(seqs, max(1, round(tokens / (seq_len * self.steps)))) * seq_len)
        while seqs > 1 and tokens / (seqs * seq_len) < self.min_steps:
            seqs //= 2
        return int(seqs * seq_len)


@dataclasses.dataclass
class IsoFlopConfig(Config):
    """IsoFLOP grids (Approach 2)."""

    budgets: list[float] = dataclasses.field(default_factory=list)
    """FLOP budgets C under the study's flop_convention."""
    sizes: int = 5
    """Model sizes per budget."""
    step: float = 2.0
    """Ratio between neighbouring sizes (log-uniform spacing)."""
    tokens_per_param: float = 20.0
    """Predicted optimum: the size whose D / N equals this (Chinchilla: about 20)."""


@dataclasses.dataclass
class FixedSizeConfig(Config):
    """Fixed-size runs over several token counts (Approach 1)."""

    params: list[float] = dataclasses.field(default_factory=list)
    """Target parameter counts (one shape each)."""
    tokens_per_param: list[float] = dataclasses.field(
        default_factory=lambda: [5.0, 10.0, 20.0, 40.0, 80.0])
    """Each size is trained to D = N x each of these (a separate run per value)."""


@dataclasses.dataclass
class DepthWidthConfig(Config):
    """Depth-vs-width sets at a fixed parameter count."""

    params: list[float] = dataclasses.field(default_factory=list)
    """Target parameter counts (one set each)."""
    aspect_ratios: list[float] = dataclasses.field(
        default_factory=lambda: [4.0, 16.0, 64.0, 256.0])
    """d_model / n_layers of the shapes in each set."""
    tokens_per_param: float = 20.0
    """Tokens per parameter of every run in a set."""


@dataclasses.dataclass
class SlurmConfig(Config):
    """Resources of each run when ``sweep run --launcher slurm`` submits through submitit."""

    cluster: str = "slurm"
    """submitit executor: slurm; or local / debug to try the path without a cluster."""
    partition: str = ""
    """Slurm partition ('' lets Slurm choose)."""
    timeout_min: int = 60
    """Wall-clock limit of one run."""
    cpus_per_task: int = 8
    gpus_per_node: int = 0
    mem_gb: float = 0.0
    """Memory per job; 0 leaves Slurm's default."""
    array_parallelism: int = 64
    """Most runs of the job array that run at once."""
    setup: list[str] = dataclasses.field(default_factory=list)
    """Shell lines run before each job (e.g. 'source .venv/bin/activate')."""


@dataclasses.dataclass
class SweepConfig(Config):
    """A scaling study: the data, the model family and the grids to run."""

    data: str = ""
    """Token shard directory every run trains on."""
    seq_len: int = 128
    """Training context of every run."""
    vocab_size: int = 0
    """Model vocabulary; 0 means the shards' vocabulary."""
    flop_convention: FlopConvention = FlopConvention.chinchilla
    """How budgets are counted (kaplan: 6 N_non-embedding D; total_6n: 6 N D; chinchilla: the
    paper's Appendix F count). Model sizes are matched in non-embedding parameters under
    kaplan and in total parameters otherwise."""
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    """Variants (norm, position, mlp, ...) every generated shape keeps."""
    aspect_ratio: float = 32.0
    """d_model / n_layers the shape generator aims for (isoflop and fixed-size runs)."""
    width_multiple: int = 16
    """Generated widths are multiples of this (8 gives tiny models a smoother family)."""
    isoflop: IsoFlopConfig = dataclasses.field(default_factory=IsoFlopConfig)
    fixed_size: FixedSizeConfig = dataclasses.field(default_factory=FixedSizeConfig)
    depth_width: DepthWidthConfig = dataclasses.field(default_factory=DepthWidthConfig)
    lr: LRRule = dataclasses.field(default_factory=LRRule)
    batch: BatchRule = dataclasses.field(default_factory=BatchRule)
    bracket_rounds: int = 2
    """``sweep run`` extends IsoFLOP grids whose minimum sits on an edge, at most this often."""
    train: list[str] = dataclasses.field(default_factory=list)
    """``key=value`` TrainConfig overrides applied to every run (e.g. eval_tokens=16384)."""
    slurm: SlurmConfig = dataclasses.field(default_factory=SlurmConfig)

    @property
    def count(self) -> str:
        """Which parameter count sizes are matched in: follows the FLOP convention."""
        return law_param_count(self.flop_convention)


@dataclasses.dataclass
class RunSpec(Config):
    """One planned run: what it is for, plus the full TrainConfig (as a plain dict)."""

    run_id: str = ""
    kind: str = ""
    """isoflop | fixed_size | depth_width (or another label, e.g. the demo's comparison)."""
    budget: float | None = None
    """Planned IsoFLOP budget C (isoflop runs only)."""
    target_params: float = 0.0
    """Size the shape was generated for (in the study's parameter count)."""
    train: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The run's TrainConfig as a dict (out is relative to the study directory)."""

    def train_config(self, study: str | Path) -> TrainConfig:
        """The TrainConfig with ``out`` resolved to this study's run directory."""
        cfg = TrainConfig.from_dict(self.train)
        return dataclasses.replace(cfg, out=str(Path(study).resolve() / "runs" / self.run_id))

    @property
    def model(self) -> ModelConfig:
        return ModelConfig.from_dict(self.train["model"])


