"""Logger backends beside ``metrics.jsonl``: TensorBoard and Weights & Biases.

``TrainConfig.logger`` is a comma-separated list (``jsonl,tensorboard,wandb``); ``jsonl`` is
always on (``MetricsCallback`` writes ``RUN/metrics.jsonl``, the file every stage reads), the
others receive the same scalars of every row: ``train_loss``, ``lr``, ``grad_norm``,
``tokens_per_s``, ``mfu``, ``val_loss`` (when evaluated), ``tokens``, ``flops``, ``elapsed``.

- ``tensorboard``: ``torch.utils.tensorboard`` event files in ``RUN/tensorboard/`` (extra
  ``tensorboard``). A resumed run purges the events after its checkpoint's step, as
  ``metrics.jsonl`` drops those rows.
- ``wandb``: offline by default (``WANDB_MODE`` overrides it), files in ``RUN/wandb/``, project
  ``WANDB_PROJECT`` or ``scalinglab`` (extra ``wandb``).

A run of a sweep (``STUDY/runs/RUN_ID``) is logged under its study: W&B group = the study's
directory name, run name = the run id; ``tensorboard --logdir STUDY/runs`` shows every run.
Only the process that writes ``metrics.jsonl`` (rank 0) logs.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

from scalinglab.config import ConfigError
from scalinglab.train.callbacks import Callback, TrainerView

BACKENDS = ("jsonl", "tensorboard", "wandb")


def parse_backends(spec: str) -> list[str]:
    """``"jsonl,tensorboard"`` -> the backends named, checked; ``jsonl`` is implied."""
    names = [n.strip() for n in spec.split(",") if n.strip()]
    bad = [n for n in names if n not in BACKENDS]
    if bad:
        raise ConfigError(f"TrainConfig.logger: unknown backend {bad[0]!r}; expected a "
                          f"comma-separated list of {', '.join(BACKENDS)}")
    return [n for n in dict.fromkeys(names) if n != "jsonl"]


def scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric entries of a metrics row, without the step itself."""
    return {k: float(v) for k, v in metrics.items()
            if k != "step" and isinstance(v, int | float) and not isinstance(v, bool)
            and math.isfinite(v)}


def study_of(run_dir: Path) -> tuple[str | None, str]:
    """(study name, run name): a sweep's runs live in ``STUDY/runs/RUN_ID``."""
    run_dir = run_dir.resolve()
    study = run_dir.parent.parent.name if run_dir.parent.name == "runs" else None
    return study, run_dir.name


class TensorBoardLogger:
    def __init__(self, run_dir: Path, resume_step: int | None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError("logger=tensorboard needs the tensorboard package: "
                              "pip install 'scalinglab[tensorboard]'") from None
        purge = None if resume_step is None else resume_step + 1
        self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge)

    def log(self, step: int, values: dict[str, float]) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    def __init__(self, run_dir: Path, config: dict[str, Any]):
        try:
            import wandb
        except ImportError:
            raise ConfigError("logger=wandb needs the wandb package: "
                              "pip install 'scalinglab[wandb]'") from None
        study, name = study_of(run_dir)
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "scalinglab"), group=study, name=name,
            dir=str(run_dir), config=config, mode=os.environ.get("WANDB_MODE", "offline"),
            reinit="create_new")

    def log(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class LoggerCallback(Callback):
    """Sends every metrics row to the configured backends (after the evaluator added
    ``val_loss``, like ``MetricsCallback``)."""

    def __init__(self, backends: list[str]):
        self.backends = backends
        self.loggers: list[Any] = []

    def on_start(self, trainer: TrainerView, resume_step: int | None) -> None:
        for name in self.backends:
            if name == "tensorboard":
                self.loggers.append(TensorBoardLogger(trainer.run_dir, resume_step))
            else:
                self.loggers.append(WandbLogger(trainer.run_dir, trainer.cfg.as_dict()))

    def post_step(self, trainer: TrainerView, metrics: dict[str, Any]) -> None:
        values = scalars(metrics)
        for logger in self.loggers:
            logger.log(int(metrics["step"]), values)

    def on_end(self, trainer: TrainerView, summary: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.close()
        self.loggers = []


def logger_callbacks(cfg) -> list[Callback]:
    """The callback for ``cfg.logger``'s backends beyond jsonl (none: no callback)."""
    backends = parse_backends(cfg.logger)
    return [LoggerCallback(backends)] if backends else []
