"""Trainer callbacks: evaluation, metrics logging, progress bar and checkpointing.

Each hook receives the trainer; ``post_step`` also receives the step's metrics dict, which
earlier callbacks may extend (the evaluator adds ``val_loss`` before the logger writes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from scalinglab.train import checkpoint as ckpt
from scalinglab.train.metrics import JsonlLogger

if TYPE_CHECKING:
    from scalinglab.train.trainer import Trainer


class Callback:
    """No-op base: override the hooks you need."""

    def on_start(self, trainer: Trainer, resume_step: int | None) -> None:
        pass

    def post_step(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        pass

    def on_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        pass


def _due(step: int, every: int, last: int) -> bool:
    return step % every == 0 or step == last


class EvalCallback(Callback):
    """Validation loss every ``eval_every`` steps and at the last step."""

    def post_step(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if _due(trainer.step, trainer.eval_every, trainer.plan.steps):
            metrics["val_loss"] = trainer.evaluate()


class MetricsCallback(Callback):
    """Appends every step's metrics to ``RUN/metrics.jsonl``."""

    def on_start(self, trainer: Trainer, resume_step: int | None) -> None:
        self.logger = JsonlLogger(trainer.run_dir / "metrics.jsonl", resume_step)

    def post_step(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        self.logger.log(metrics)

    def on_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        self.logger.close()


class CheckpointCallback(Callback):
    """Saves the full training state every ``checkpoint_every`` steps and at the end."""

    def post_step(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if _due(trainer.step, trainer.checkpoint_every, trainer.plan.steps):
            ckpt.save_checkpoint(trainer.run_dir, trainer.step, trainer.state_dict(),
                                 trainer.cfg.keep_checkpoints)


class ProgressCallback(Callback):
    """A tqdm bar with loss, tokens/s, MFU and the ETA."""

    def on_start(self, trainer: Trainer, resume_step: int | None) -> None:
        self.bar = tqdm(total=trainer.plan.steps, initial=resume_step or 0, unit="step",
                        desc=trainer.run_dir.name, dynamic_ncols=True, leave=True)

    def post_step(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        post = {"loss": f"{metrics['train_loss']:.3f}", "tok/s": f"{metrics['tokens_per_s']:.0f}",
                "mfu": f"{100 * metrics['mfu']:.1f}%"}
        if "val_loss" in metrics:
            self.val = metrics["val_loss"]
        if getattr(self, "val", None) is not None:
            post["val"] = f"{self.val:.3f}"
        self.bar.set_postfix(post, refresh=False)
        self.bar.update(1)

    def on_end(self, trainer: Trainer, summary: dict[str, Any]) -> None:
        self.bar.close()
