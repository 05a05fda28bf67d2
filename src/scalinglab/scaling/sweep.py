"""Sweep planning: a SweepConfig becomes a table of run configs in a study directory.

A study directory holds::

    STUDY/sweep.json          the SweepConfig the plan came from (latest planning)
    STUDY/plan.json           {"version", "flop_convention", "runs": [RunSpec, ...]}
    STUDY/runs/<run_id>/      one ordinary trainer run directory per planned run
    STUDY/study.csv           one row per finished (complete or failed) run; see scaling.study

Three kinds of runs:

- ``isoflop`` (Chinchilla Approach 2): for every budget C, ``sizes`` model sizes spaced
  log-uniformly (ratio ``step``) around a predicted optimum, each trained on
  D = C / (FLOPs per token of that shape) tokens.
- ``fixed_size`` (Approach 1): a few model sizes, each trained to several token counts; every
  run is its own run with a cosine schedule matched to its length (the trainer's schedule
  always spans exactly the planned steps), never a checkpoint read off a longer cosine.
- ``depth_width``: shapes of one parameter count with different d_model / n_layers ratios.

Learning rate and batch follow documented rules of N (``LRRule``, ``BatchRule``). Planning is
additive: re-planning, or ``extend_brackets`` after a first pass, adds runs and never changes
or removes planned ones (they may already hold results).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

from scalinglab.config import Config, ConfigError
from scalinglab.data.shards import open_split
from scalinglab.io import atomic_write_json, read_json_object, require_fields
from scalinglab.model.accounting import (
    FlopConvention,
    count_params,
    law_param_count,
    train_flops_per_token,
)
from scalinglab.model.config import ModelConfig
from scalinglab.model.presets import shape_for_params
from scalinglab.train.config import TrainConfig

PLAN_VERSION = 1


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


# ---------------------------------------------------------------------- shapes and runs


def params_of(model: ModelConfig, count: str) -> int:
    """Parameter count of ``model`` by ``count`` (non_embedding or total)."""
    p = count_params(model)
    return p.non_embedding if count == "non_embedding" else p.total


def model_for(cfg: SweepConfig, target: float, aspect_ratio: float | None = None) -> ModelConfig:
    """The generated shape of about ``target`` parameters in the study's family."""
    return shape_for_params(
        target, vocab_size=cfg.model.vocab_size, max_seq_len=cfg.seq_len,
        aspect_ratio=aspect_ratio or cfg.aspect_ratio, count=cfg.count, base=cfg.model,
        width_multiple=cfg.width_multiple,
    )


def flops_per_token(cfg: SweepConfig, model: ModelConfig) -> float:
    return train_flops_per_token(model, cfg.flop_convention, cfg.seq_len)


def predicted_optimum(cfg: SweepConfig, budget: float) -> float:
    """Size N whose D = C / flops_per_token(N) equals tokens_per_param x N.

    Starts from C = 6 N D and corrects for the real cost per token of the generated shapes
    (embeddings and attention make it larger than 6N for small models), a few fixed-point
    steps.
    """
    r = cfg.isoflop.tokens_per_param
    n = math.sqrt(budget / (6.0 * r))
    for _ in range(6):
        model = model_for(cfg, n)
        k = flops_per_token(cfg, model) / params_of(model, cfg.count)  # FLOPs per token per N
        n = math.sqrt(budget / (k * r))
    return n


def make_run(cfg: SweepConfig, run_id: str, kind: str, model: ModelConfig, tokens: float,
             target: float, budget: float | None = None) -> RunSpec:
    """A RunSpec whose lr and batch follow the study's rules of N."""
    n_ne = count_params(model).non_embedding
    batch = cfg.batch(n_ne, tokens, cfg.seq_len)
    # Whole steps, rounded to the nearest: the compute lands within half a batch of the plan
    # (the trainer would otherwise floor it).
    tokens = max(1, round(tokens / batch)) * batch
    train = TrainConfig(
        model=model, data=cfg.data, out=f"runs/{run_id}", tokens=int(tokens),
        flop_convention=cfg.flop_convention, seq_len=cfg.seq_len, batch_tokens=batch,
        lr=cfg.lr(n_ne), preset="sweep",
    ).merge(cfg.train)
    return RunSpec(run_id=run_id, kind=kind, budget=budget, target_params=float(target),
                   train=train.as_dict())


def shape_tag(model: ModelConfig) -> str:
    return f"L{model.n_layers}-D{model.d_model}"


def isoflop_run(cfg: SweepConfig, budget: float, target: float) -> RunSpec | None:
    """The IsoFLOP run of size ``target`` at ``budget``; None when it would be too short."""
    model = model_for(cfg, target)
    tokens = budget / flops_per_token(cfg, model)
    if tokens < cfg.batch.min_steps * cfg.seq_len:
        return None  # fewer steps than the batch rule allows even at one sequence per step
    run_id = f"iso-{budget:.2e}-{shape_tag(model)}"
    return make_run(cfg, run_id, "isoflop", model, tokens, target, budget=budget)


def isoflop_runs(cfg: SweepConfig, budget: float) -> list[RunSpec]:
    """``sizes`` runs spaced by ``step`` around the predicted optimum of ``budget``."""
    center = predicted_optimum(cfg, budget)
    k, step = cfg.isoflop.sizes, cfg.isoflop.step
    targets = [center * step ** (i - (k - 1) / 2) for i in range(k)]
    runs = [isoflop_run(cfg, budget, t) for t in targets]
    return [r for r in runs if r is not None]


def fixed_size_runs(cfg: SweepConfig) -> list[RunSpec]:
    runs = []
    for target in cfg.fixed_size.params:
        model = model_for(cfg, target)
        n = params_of(model, cfg.count)
        for r in cfg.fixed_size.tokens_per_param:
            run_id = f"fix-{shape_tag(model)}-T{r * n:.2e}"
            runs.append(make_run(cfg, run_id, "fixed_size", model, r * n, target))
    return runs


def depth_width_runs(cfg: SweepConfig) -> list[RunSpec]:
    runs = []
    for target in cfg.depth_width.params:
        for aspect in cfg.depth_width.aspect_ratios:
            model = model_for(cfg, target, aspect_ratio=aspect)
            tokens = cfg.depth_width.tokens_per_param * params_of(model, cfg.count)
            run_id = f"dw-{target:.2e}-{shape_tag(model)}"
            runs.append(make_run(cfg, run_id, "depth_width", model, tokens, target))
    return runs


def plan_runs(cfg: SweepConfig) -> list[RunSpec]:
    """Every run the config asks for (duplicates of one shape and length collapse)."""
    if cfg.isoflop.sizes < 3 and cfg.isoflop.budgets:
        raise ConfigError("SweepConfig.isoflop.sizes must be >= 3 to fit a parabola")
    if cfg.isoflop.step <= 1:
        raise ConfigError("SweepConfig.isoflop.step must be > 1")
    runs = [r for c in cfg.isoflop.budgets for r in isoflop_runs(cfg, c)]
    runs += fixed_size_runs(cfg) + depth_width_runs(cfg)
    if not runs:
        raise ConfigError("the sweep plans no runs: set isoflop.budgets, fixed_size.params "
                          "or depth_width.params")
    unique: dict[str, RunSpec] = {}
    for r in runs:
        unique.setdefault(r.run_id, r)
    return list(unique.values())


# ---------------------------------------------------------------------- the study directory


def resolve_config(cfg: SweepConfig) -> SweepConfig:
    """Absolute data path and the vocabulary read from the shards (unless set)."""
    if not cfg.data:
        raise ConfigError("SweepConfig.data (the token shard directory) is not set")
    _check_grids(cfg)
    data = str(Path(cfg.data).resolve())
    vocab = cfg.vocab_size or int(open_split(data, "train")[0].header["vocab_size"])
    model = cfg.model.merge({"vocab_size": vocab, "max_seq_len": cfg.seq_len})
    return dataclasses.replace(cfg, data=data, vocab_size=vocab, model=model)


def _check_grids(cfg: SweepConfig) -> None:
    """Budgets, sizes and ratios must be positive (a negative budget has no optimum: planning
    would fail deep inside with a math domain error)."""
    lists = {"isoflop.budgets": cfg.isoflop.budgets, "fixed_size.params": cfg.fixed_size.params,
             "fixed_size.tokens_per_param": cfg.fixed_size.tokens_per_param,
             "depth_width.params": cfg.depth_width.params,
             "depth_width.aspect_ratios": cfg.depth_width.aspect_ratios,
             "isoflop.tokens_per_param": [cfg.isoflop.tokens_per_param],
             "depth_width.tokens_per_param": [cfg.depth_width.tokens_per_param]}
    for name, values in lists.items():
        bad = [v for v in values if not (math.isfinite(v) and v > 0)]
        if bad:
            raise ConfigError(f"SweepConfig.{name}: must be positive numbers, got {bad[0]:g}")
    if not cfg.isoflop.step > 1:
        raise ConfigError(f"SweepConfig.isoflop.step: must be > 1, got {cfg.isoflop.step}")


def load_plan(study: str | Path) -> list[RunSpec]:
    path = Path(study) / "plan.json"
    if not path.exists():
        raise ConfigError(f"{study}: no plan.json; run `scalinglab sweep plan` first")
    data = read_json_object(path, "plan", ConfigError)
    if data.get("version") != PLAN_VERSION:
        # Another version's runs may mean other fields: refuse rather than misread them.
        raise ConfigError(f"{path}: plan version {data.get('version')!r}, this scalinglab reads "
                          f"version {PLAN_VERSION}; plan the study again in a new directory")
    require_fields(data, {"runs": list}, str(path), ConfigError)
    return [_run_spec(r, f"{path}: runs[{i}]") for i, r in enumerate(data["runs"])]


def _run_spec(raw: Any, where: str) -> RunSpec:
    """One planned run of plan.json; its ``train`` must hold the run's model."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected an object, got {type(raw).__name__}")
    require_fields(raw, {"run_id": str, "train": dict}, where, ConfigError)
    require_fields(raw["train"], {"model": dict}, f"{where}.train", ConfigError)
    try:
        return RunSpec.from_dict(raw)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def load_sweep_config(study: str | Path) -> SweepConfig:
    path = Path(study) / "sweep.json"
    if not path.exists():
        raise ConfigError(f"{study}: no sweep.json; run `scalinglab sweep plan` first")
    return SweepConfig.from_file(path)


def add_runs(study: str | Path, cfg: SweepConfig, runs: list[RunSpec]) -> list[RunSpec]:
    """Add ``runs`` to the study's plan (already planned ids are kept as they are).

    Returns the runs that were new.
    """
    study = Path(study)
    existing = []
    if (study / "plan.json").exists():
        existing = load_plan(study)
        before = read_json_object(study / "plan.json", "plan").get("flop_convention")
        if before != cfg.flop_convention.value:
            raise ConfigError(f"{study}: planned with flop_convention={before}; a study keeps "
                              f"one convention (got {cfg.flop_convention.value})")
    known = {r.run_id for r in existing}
    # a run asked for twice (e.g. a grid's centre that is also a comparison run) is planned once
    new = list({r.run_id: r for r in runs if r.run_id not in known}.values())
    atomic_write_json(study / "sweep.json", cfg.as_dict())
    atomic_write_json(study / "plan.json", {
        "version": PLAN_VERSION, "flop_convention": cfg.flop_convention.value,
        "runs": [r.as_dict() for r in existing + new],
    })
    return new


def plan_study(study: str | Path, cfg: SweepConfig) -> list[RunSpec]:
    """Write (or add to) the study directory for ``cfg``; returns the newly planned runs."""
    cfg = resolve_config(cfg)
    return add_runs(study, cfg, plan_runs(cfg))
