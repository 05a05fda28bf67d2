"""``finetune``: supervised fine-tuning of a pre-trained run on a task's training split, then
its test split scored exactly as ``scalinglab eval`` scores it.

Training is the pre-training :class:`~scalinglab.train.trainer.Trainer` (same steps,
checkpoints, resume, divergence policy, metrics and progress) with three hooks: its data are
(prompt, answer) rows whose loss covers only the answer (:mod:`scalinglab.adapt.data`), its
weights start from the run's, and :class:`EarlyStopping` ends it when the validation loss
(answer tokens of the validation split) has not improved for ``patience`` evaluations. The
exported ``OUT/model.safetensors`` holds the weights of the best validation loss.

``OUT/`` is an ordinary run directory (``config.json``, ``metrics.jsonl``, ``checkpoints/``,
``summary.json``) plus ``best/`` (the best weights so far) and ``finetune.json``, written last
and atomically (schema in :func:`finetune`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from pathlib import Path
from typing import Any

from scalinglab.adapt.data import PromptAnswerRows
from scalinglab.config import Config, ConfigError
from scalinglab.errors import ScalinglabError
from scalinglab.eval.api import heldout_for, model_id
from scalinglab.eval.fewshot import render_requests
from scalinglab.eval.model_io import load_model_and_tokenizer
from scalinglab.eval.runner import score_task, summarize, task_key
from scalinglab.eval.scoring import Scorer, encode_group
from scalinglab.eval.tasks import Example, Task, TaskSpec, TaskType, resolve_task
from scalinglab.eval.tokenizer import Tokenizer
from scalinglab.io import atomic_write_json, read_json_object, read_json_or_none
from scalinglab.train import checkpoint as ckpt
from scalinglab.train.callbacks import (
    Callback,
    CheckpointCallback,
    EvalCallback,
    MetricsCallback,
    ProgressCallback,
)
from scalinglab.train.config import TrainConfig
from scalinglab.train.metrics import read_metrics
from scalinglab.train.trainer import Trainer

RESULTS = "finetune.json"
BEST_DIR = "best"


@dataclasses.dataclass
class FinetuneConfig(Config):
    """Knobs of ``scalinglab finetune`` (``key=value`` overrides)."""

    epochs: float = 10.0
    """Most passes over the training split (early stopping usually ends it sooner)."""
    batch_size: int = 16
    """Examples per optimiser step."""
    lr: float = 1e-2
    """Peak learning rate (linear warm-up, cosine decay to a tenth). The demo's pre-training
    rate; on one demo run (78K parameters, heldout_source) 1e-3 for 5 epochs reached test acc
    0.44, 1e-2 (stopped early after 7.5 of 10 epochs) 0.52."""
    warmup_fraction: float = 0.05
    weight_decay: float = 0.0
    """AdamW weight decay of the matrices (none by default: few steps from good weights)."""
    eval_every: int = 0
    """Steps between validation evaluations; 0: every half epoch."""
    patience: int = 3
    """Evaluations without a lower validation loss before training stops."""
    max_train: int = 0
    """Use at most this many training examples (0: all)."""
    seed: int = 0
    """Seeds the task's splits, the data order and the few-shot-free test scoring."""
    device: str = "cpu"
    threads: int = 0
    """CPU threads for torch; 0 keeps torch's default."""

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size < 1 or self.patience < 1 or self.lr <= 0:
            raise ConfigError("finetune: epochs and lr must be > 0, batch_size and patience >= 1")


class EarlyStopping(Callback):
    """Stops the trainer after ``patience`` validation losses without a new best, and keeps
    the best weights in ``RUN/best/`` (exported as a model). On resume the best loss so far is
    read back from ``metrics.jsonl``."""

    def __init__(self, patience: int):
        self.patience = patience

    def on_start(self, trainer: Trainer, resume_step: int | None) -> None:
        self.best, self.best_step, self.bad = math.inf, -1, 0
        try:
            rows = read_metrics(trainer.run_dir) if resume_step else []
        except ValueError:  # a torn last line from a kill: the logger drops it; so do we
            rows = []
        for r in rows:
            if "val_loss" in r and r["step"] <= resume_step:
                self._see(r["val_loss"], r["step"])

    def _see(self, loss: float, step: int) -> bool:
        if loss < self.best:
            self.best, self.best_step, self.bad = loss, step, 0
            return True
        self.bad += 1
        return False

    def post_step(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        if "val_loss" not in metrics:
            return
        if self._see(metrics["val_loss"], trainer.step):
            ckpt.export_model(trainer.run_dir / BEST_DIR, trainer.model, trainer.cfg.model)
        if self.bad >= self.patience and trainer.step < trainer.plan.steps:
            trainer.stop_requested = True
            metrics["event"] = "early_stop"


class FinetuneTrainer(Trainer):
    """The pre-training trainer on prompt/answer rows, starting from pre-trained weights."""

    def __init__(self, cfg: TrainConfig, rows: tuple[PromptAnswerRows, PromptAnswerRows],
                 pretrained: dict[str, Any], patience: int, progress: bool = True):
        self._rows = rows
        self.early = EarlyStopping(patience)
        callbacks: list[Callback] = [EvalCallback(), self.early, MetricsCallback()]
        if progress:
            callbacks.append(ProgressCallback())
        callbacks.append(CheckpointCallback())
        super().__init__(cfg, callbacks=callbacks, progress=progress)
        # Before any checkpoint exists the run starts from the pre-trained weights; a resumed
        # run then loads its own checkpoint over them in fit().
        self.model.load_state_dict(pretrained)

    def build_data(self) -> tuple[PromptAnswerRows, PromptAnswerRows]:
        return self._rows

    def _export(self) -> None:
        """Export the best validation weights (not the last ones)."""
        best = self.run_dir / BEST_DIR
        if (best / "model.safetensors").exists():
            self.model.load_state_dict(ckpt.load_model(best, device=self.device).state_dict())
        super()._export()

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "best_val_loss": self.early.best,
                "best_step": self.early.best_step, "stopped_early": self.stop_requested,
                "planned_steps": self.plan.steps}


def training_pair(spec: TaskSpec, ex: Example, tok: Tokenizer) -> tuple[list[int], list[int]]:
    """(prompt, answer) tokens of a solved example: the gold request of its 0-shot prompt,
    tokenized as the scorer tokenizes it."""
    requests = render_requests(spec, ex, [])
    context, answer = requests[ex.gold if len(requests) > 1 else 0]
    group = encode_group(tok, context, [answer])
    return group.context, group.continuations[0]


def load_for_finetune(task_arg: str, run_dir: Path, heldout: str | Path | None,
                      seed: int) -> Task:
    """The task, which must have a training split and an answer to train on."""
    task = resolve_task(task_arg, heldout or heldout_for(run_dir), seed)
    name = task.spec.name
    if task.spec.type == TaskType.rolling:
        raise ScalinglabError(f"task {name}: a rolling (bits-per-byte) task has no answers "
                              "to fine-tune on")
    if not task.train:
        raise ScalinglabError(f"task {name} has no training split: fine-tuning needs one "
                              "(heldout_source, a hub task such as boolq=hf, or a task YAML "
                              "with train_data: FILE.jsonl)")
    return task


def train_config(run_dir: Path, model_cfg, out: Path, cfg: FinetuneConfig, n_train: int,
                 n_valid: int, task: str) -> TrainConfig:
    """The TrainConfig of a fine-tuning run (``data`` names the pre-training shards, so the
    fine-tuned run finds its tokenizer as the pre-trained one does)."""
    run_cfg = run_dir / "config.json"
    data = read_json_object(run_cfg, "run config").get("data", "") if run_cfg.is_file() else ""
    seq = model_cfg.max_seq_len
    steps_per_epoch = math.ceil(n_train / cfg.batch_size)
    steps = max(1, math.ceil(cfg.epochs * steps_per_epoch))
    every = cfg.eval_every or max(1, steps_per_epoch // 2)
    return TrainConfig(
        model=model_cfg, preset=f"finetune:{task}", data=str(data), out=str(out),
        tokens=steps * cfg.batch_size * seq, seq_len=seq, batch_tokens=cfg.batch_size * seq,
        lr=cfg.lr, warmup_fraction=cfg.warmup_fraction, weight_decay=cfg.weight_decay,
        eval_every=every, checkpoint_every=every, eval_tokens=n_valid * seq, seed=cfg.seed,
        device=cfg.device, threads=cfg.threads)


def finetune(run: str | Path, task_arg: str, out: str | Path, cfg: FinetuneConfig | None = None,
             tokenizer: str | None = None, heldout: str | Path | None = None,
             progress: bool = True) -> tuple[dict[str, Any], Path]:
    """Fine-tune ``run`` on ``task_arg``'s training split into ``out`` and score its test split.

    Returns (results, path of ``OUT/finetune.json``)::

        {"run", "run_model_id", "task", "task_key", "key", "config": FinetuneConfig,
         "params_total", "n_train", "n_valid", "n_test", "chance",
         "train": {"steps", "planned_steps", "best_step", "best_val_loss", "stopped_early",
                   "truncated_prompts"},
         "test": {"acc", "acc_norm", "acc_bytes", "n"}}   # cloze: acc, perplexity

    A ``finetune.json`` with the same ``key`` (run weights, task, settings) is returned as is;
    an interrupted fine-tuning resumes from its checkpoint.
    """
    cfg = cfg or FinetuneConfig()
    out = Path(out)
    run_dir, net, tok = load_model_and_tokenizer(run, tokenizer)
    task = load_for_finetune(task_arg, run_dir, heldout, cfg.seed)
    key = _key(model_id(run), task_key(task, cfg.seed), cfg)
    previous = read_json_or_none(out / RESULTS)
    if previous and previous.get("key") == key:
        return previous, out / RESULTS
    train = task.train[: cfg.max_train or None]
    rows = tuple(PromptAnswerRows([training_pair(task.spec, ex, tok) for ex in split],
                                  net.config.max_seq_len, tok.eot_id, tok.vocab_size, cfg.seed)
                 for split in (train, task.valid))
    tcfg = train_config(run_dir, net.config, out, cfg, len(train), len(task.valid),
                        task.spec.name)
    summary = FinetuneTrainer(tcfg, rows, net.state_dict(), cfg.patience, progress).fit()
    test = _score_test(out, tok, task, cfg, progress)
    results = {
        "run": str(run), "run_model_id": model_id(run), "task": task.spec.name,
        "task_key": task_key(task, cfg.seed), "key": key, "config": cfg.as_dict(),
        "params_total": summary.get("params_total"), "n_train": len(train),
        "n_valid": len(task.valid), "n_test": len(task.examples), "chance": chance(task),
        "train": {k: summary.get(k) for k in ("steps", "planned_steps", "best_step",
                                              "best_val_loss", "stopped_early", "status")}
        | {"truncated_prompts": rows[0].truncated},
        "test": test,
    }
    atomic_write_json(out / RESULTS, results)
    return results, out / RESULTS


def _score_test(out: Path, tok: Tokenizer, task: Task, cfg: FinetuneConfig,
                progress: bool) -> dict[str, Any]:
    """The fine-tuned model's 0-shot test scores, through ``scalinglab eval``'s scorer."""
    scorer = Scorer(ckpt.load_model(out, device=cfg.device), tok, progress=progress)
    test = Task(task.spec, task.examples, [])
    summary = summarize(test, score_task(scorer, test, 0, cfg.seed), None)
    summary["truncated"] = scorer.truncated
    return summary


def chance(task: Task) -> float | None:
    """Expected accuracy of a uniform guess (multiple choice); None for other types."""
    if task.spec.type != TaskType.multiple_choice or not task.examples:
        return None
    return sum(1 / len(ex.choices) for ex in task.examples) / len(task.examples)


def _key(run_id: str, tkey: str, cfg: FinetuneConfig) -> str:
    payload = json.dumps([run_id, tkey, cfg.as_dict()], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


