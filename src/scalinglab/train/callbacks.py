"""Trainer callbacks: evaluation, metrics logging, progress bar and checkpointing.

Each hook receives the trainer; ``post_step`` also receives the step's metrics dict, which
earlier callbacks may extend (the evaluator adds ``val_loss`` before the logger writes).
``on_event`` receives what ``nan_policy`` did with a rejected step: ``{"step", "event":
"nonfinite", "loss", "grad_norm", "action": stop|skip|rollback}`` (a rollback's ``step`` is
the step it went back to, ``at_step`` the rejected one).
"""

from __future__ import annotations

import math
import statistics
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from scalinglab.train import checkpoint as ckpt
from scalinglab.train.metrics import JsonlLogger, read_metrics


class TrainerView(Protocol):
    """What a callback may use of the trainer that calls it (``train.trainer.Trainer`` and
    ``parallel.trainer.DistributedTrainer`` both are one). Declared here rather than
    imported, so that the trainer can import its callbacks without a cycle."""

    cfg: Any  # TrainConfig
    run_dir: Path
    plan: Any  # RunPlan: steps, tokens, seq_len...
    step: int
    eval_every: int
    checkpoint_every: int

    def evaluate(self) -> float: ...

    def state_dict(self) -> dict[str, Any]: ...


class Callback:
    """No-op base: override the hooks you need."""

    def on_start(self, trainer: TrainerView, resume_step: int | None) -> None:
        pass

    def post_step(self, trainer: TrainerView, metrics: dict[str, Any]) -> None:
        pass

    def on_event(self, trainer: TrainerView, event: dict[str, Any]) -> None:
        pass

    def on_end(self, trainer: TrainerView, summary: dict[str, Any]) -> None:
        pass


def _due(step: int, every: int, last: int) -> bool:
    return step % every == 0 or step == last


class EvalCallback(Callback):
    """Validation loss every ``eval_every`` steps and at the last step."""

    def post_step(self, trainer: TrainerView, metrics: dict[str, Any]) -> None:
        if _due(trainer.step, trainer.eval_every, trainer.plan.steps):
            metrics["val_loss"] = trainer.evaluate()


class MetricsCallback(Callback):
    """Appends every step's metrics to ``RUN/metrics.jsonl``."""

    def on_start(self, trainer: TrainerView, resume_step: int | None) -> None:
        self.logger = JsonlLogger(trainer.run_dir / "metrics.jsonl", resume_step)

    def post_step(self, trainer: TrainerView, metrics: dict[str, Any]) -> None:
        self.logger.log(metrics)

    def on_event(self, trainer: TrainerView, event: dict[str, Any]) -> None:
        if event["action"] == "rollback":  # the curve continues from the checkpoint's step
            self.logger.rewind(event["step"])
        self.logger.log(event)

    def on_end(self, trainer: TrainerView, summary: dict[str, Any]) -> None:
        self.logger.close()


class CheckpointCallback(Callback):
    """Saves the full training state every ``checkpoint_every`` steps and at the end (and at
    step 0 under ``nan_policy=rollback``, so that there is always a state to go back to)."""

    def on_start(self, trainer: TrainerView, resume_step: int | None) -> None:
        if trainer.cfg.nan_policy == "rollback" and resume_step is None:
            ckpt.save_checkpoint(trainer.run_dir, trainer.step, trainer.state_dict(),
                                 trainer.cfg.keep_checkpoints)

    def post_step(self, trainer: TrainerView, metrics: dict[str, Any]) -> None:
        if _due(trainer.step, trainer.checkpoint_every, trainer.plan.steps):
            ckpt.save_checkpoint(trainer.run_dir, trainer.step, trainer.state_dict(),
                                 trainer.cfg.keep_checkpoints)


def session_rate(steps_done: int, seconds: float, steps_left: int,
                 tokens_per_step: int) -> tuple[float, float]:
    """(average tokens/s, ETA in seconds) from the steps of this session so far.

    The average counts every second since the session started, evaluations and checkpoints
    included, so the ETA is what the rest of the run will really take; a single step's
    tokens/s leaves those out and can be 3x the run's real rate.
    """
    if steps_done <= 0 or seconds <= 0:
        return 0.0, math.inf
    per_step = seconds / steps_done
    return tokens_per_step / per_step, steps_left * per_step


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class ProgressCallback(Callback):
    """A tqdm bar with loss, tokens/s (this step's, and the average since this session
    started), MFU, and the ETA from that average."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock

    def on_start(self, trainer: TrainerView, resume_step: int | None) -> None:
        # smoothing=0: tqdm's own remaining time is also the session's average
        self.bar = tqdm(total=trainer.plan.steps, initial=resume_step or 0, unit="step",
                        desc=trainer.run_dir.name, dynamic_ncols=True, leave=True,
                        smoothing=0)
        self.start_step, self.start_time = resume_step or 0, self.clock()

    def postfix(self, trainer: TrainerView, metrics: dict[str, Any]) -> dict[str, str]:
        avg, eta = session_rate(trainer.step - self.start_step, self.clock() - self.start_time,
                                trainer.plan.steps - trainer.step, trainer.plan.tokens_per_step)
        post = {"loss": f"{metrics['train_loss']:.3f}",
                "tok/s": f"{metrics['tokens_per_s']:.0f} (avg {avg:.0f})",
                "mfu": f"{100 * metrics['mfu']:.1f}%", "eta": format_duration(eta)}
        if "val_loss" in metrics:
            self.val = metrics["val_loss"]
        if getattr(self, "val", None) is not None:
            post["val"] = f"{self.val:.3f}"
        return post

    def post_step(self, trainer: TrainerView, metrics: dict[str, Any]) -> None:
        self.bar.set_postfix(self.postfix(trainer, metrics), refresh=False)
        self.bar.update(1)

    def on_event(self, trainer: TrainerView, event: dict[str, Any]) -> None:
        if event["action"] != "stop":
            self.bar.n = trainer.step
            self.bar.refresh()

    def on_end(self, trainer: TrainerView, summary: dict[str, Any]) -> None:
        self.bar.close()


class SpikeCallback(Callback):
    """Marks a step's metrics row as a ``loss_spike`` event when its training loss exceeds
    ``factor`` x the median of the previous ``window`` losses (after at least 10 of them:
    the first steps' loss falls too fast for a median to mean anything)."""

    def __init__(self, factor: float, window: int):
        self.factor, self.window = factor, window

    def on_start(self, trainer: TrainerView, resume_step: int | None) -> None:
        # Rows after the resume step are about to be dropped by the logger: ignore them.
        try:
            rows = read_metrics(trainer.run_dir) if resume_step else []
        except ValueError:  # a torn last line from a kill: start the median afresh
            rows = []
        self.recent = deque((r["train_loss"] for r in rows
                             if "train_loss" in r and r["step"] <= resume_step), self.window)

    def post_step(self, trainer: TrainerView, metrics: dict[str, Any]) -> None:
        loss = metrics["train_loss"]
        if len(self.recent) >= min(10, self.window):
            median = statistics.median(self.recent)
            if loss > self.factor * median:
                metrics.update(event="loss_spike", spike_median=median)
        self.recent.append(loss)

    def on_event(self, trainer: TrainerView, event: dict[str, Any]) -> None:
        if event["action"] == "rollback":
            self.recent.clear()
