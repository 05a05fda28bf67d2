"""Single-process trainer: owns the steps; metrics, evaluation, progress and checkpoints are
callbacks.

A run directory holds ``config.json`` (the resolved TrainConfig), ``metrics.jsonl``,
``checkpoints/``, ``model.safetensors`` + ``model_config.json`` and, written last and
atomically, ``summary.json``. A run whose ``summary.json`` exists is finished (``status``
``complete``, or ``diverged`` with the step); a run with a checkpoint resumes from it, and on
CPU its loss curve is bit-identical to an uninterrupted run.

A step whose loss or gradient norm is not finite is never applied; ``cfg.nan_policy`` then
stops the run, skips the batch, or rolls back to the newest checkpoint (see ``NanPolicy``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from scalinglab import io as sio
from scalinglab.config import ConfigError
from scalinglab.data.shards import copy_shard_tokenizer
from scalinglab.io import atomic_write_json, locked, read_json_object, require_fields
from scalinglab.model.accounting import (
    FlopConvention,
    all_conventions,
    count_params,
    train_flops_per_token,
)
from scalinglab.model.masks import AttentionMask, document_mask
from scalinglab.model.transformer import build_model
from scalinglab.train import checkpoint as ckpt
from scalinglab.train.activation_checkpoint import apply_ac
from scalinglab.train.callbacks import (
    Callback,
    CheckpointCallback,
    EvalCallback,
    MetricsCallback,
    ProgressCallback,
    SpikeCallback,
)
from scalinglab.train.config import NanPolicy, TrainConfig
from scalinglab.train.data import TokenWindows
from scalinglab.train.loggers import logger_callbacks
from scalinglab.train.loss import linear_cross_entropy
from scalinglab.train.metrics import read_metrics
from scalinglab.train.optim import build_optimizer, lr_at
from scalinglab.utils.hardware import peak_flops


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """How a budget becomes steps: derived from a TrainConfig, never stored separately."""

    steps: int
    seq_len: int
    batch_seqs: int
    micro_batch: int
    accum: int
    tokens_per_step: int

    @property
    def tokens(self) -> int:
        return self.steps * self.tokens_per_step


def plan_run(cfg: TrainConfig) -> RunPlan:
    """Turn the token or FLOP budget into steps; one-line errors for impossible budgets."""
    seq = cfg.context
    if seq > cfg.model.max_seq_len:
        raise ConfigError(f"seq_len={seq} exceeds model.max_seq_len={cfg.model.max_seq_len}")
    if cfg.batch_tokens < seq or cfg.batch_tokens % seq:
        raise ConfigError(f"batch_tokens={cfg.batch_tokens} must be a multiple of seq_len={seq}")
    batch_seqs = cfg.batch_tokens // seq
    micro = cfg.micro_batch_size or batch_seqs
    if batch_seqs % micro:
        raise ConfigError(
            f"micro_batch_size={micro} does not divide the batch of {batch_seqs} sequences"
        )
    tokens = cfg.tokens
    if tokens == 0:
        if cfg.flops <= 0:
            raise ConfigError("set a budget: tokens=N or flops=C")
        tokens = int(cfg.flops / train_flops_per_token(cfg.model, cfg.flop_convention, seq))
    steps = tokens // cfg.batch_tokens
    if steps < 1:
        raise ConfigError(
            f"budget of {tokens} tokens is smaller than one step of {cfg.batch_tokens} tokens"
        )
    return RunPlan(steps, seq, batch_seqs, micro, batch_seqs // micro, cfg.batch_tokens)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Trainer:
    """Trains one model on one device. ``fit()`` runs (or resumes) the whole run."""

    stop_requested = False
    """Set (on the instance) by a callback, early stopping, to end the run before the planned
    step; a class attribute so that subclasses with their own ``__init__`` have it too."""

    def __init__(self, cfg: TrainConfig, callbacks: list[Callback] | None = None,
                 progress: bool = True):
        # The steps a subclass lays out differently (DistributedTrainer: process group, mesh,
        # sharded model) are the _init_* hooks; everything else is set here, once.
        if not cfg.out:
            raise ConfigError("TrainConfig.out (the run directory) is not set: use --out")
        self.cfg = cfg
        self.run_dir = Path(cfg.out)
        self.plan = plan_run(cfg)
        self._init_device()
        self._load_data()
        self._init_model()
        self.flops_per_token = train_flops_per_token(cfg.model, FlopConvention.chinchilla,
                                                     self.plan.seq_len)
        self.peak_flops = self._peak_flops()
        self.step = 0
        self.elapsed = 0.0  # training seconds over all sessions of this run
        self.last_val_loss: float | None = None
        self.last_val_step = -1
        self._init_divergence_state()
        self.callbacks = callbacks if callbacks is not None else self._callbacks(progress)

    def _init_device(self) -> None:
        if self.cfg.threads:
            torch.set_num_threads(self.cfg.threads)
        self.device = resolve_device(self.cfg.device)

    def _load_data(self) -> None:
        cfg = self.cfg
        self.train_data, self.val_data = self.build_data()
        if self.train_data.vocab_size > cfg.model.vocab_size:
            raise ConfigError(
                f"{cfg.data}: the data uses a vocabulary of {self.train_data.vocab_size} ids but "
                f"model.vocab_size is {cfg.model.vocab_size}"
            )

    def _init_model(self) -> None:
        """The model (whole, on one device), its compiled forward, optimiser and precision."""
        cfg = self.cfg
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model, seed=cfg.seed, device=self.device)
        apply_ac(self.model, cfg.parallel.activation_checkpoint)  # before compile, as torchtitan
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        # Training and evaluation stop at the hidden states: the loss fuses the output layer.
        self.hidden = (torch.compile(self.model.hidden_states) if cfg.compile
                       else self.model.hidden_states)
        self.matmul_dtype = torch.bfloat16 if cfg.dtype == "bf16" else torch.float32
        self.optimizer = build_optimizer(self.model, cfg)
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16,
                                       enabled=cfg.dtype == "bf16")

    def _peak_flops(self) -> float:
        return self.cfg.peak_flops or peak_flops(self.device, self.cfg.dtype)

    def _callbacks(self, progress: bool) -> list[Callback]:
        return default_callbacks(self.cfg, progress)

    def _init_divergence_state(self) -> None:
        self.data_offset = 0  # batches skipped by rollbacks: the data runs ahead of the step
        self.nonfinite_steps = 0  # steps rejected so far (skipped or rolled back)
        self.diverged: dict[str, Any] | None = None  # {"step", "reason"} once given up

    def build_data(self) -> tuple[Any, Any]:
        """(train, validation) sources: token shards here; a hook for other sources (the
        fine-tuning stage's prompt/answer examples). A source has ``vocab_size``,
        ``batch(first_sample, n)`` and ``sequential_batches(n, max_windows)`` giving
        (inputs, targets) with targets < 0 excluded from the loss."""
        cfg = self.cfg
        if not cfg.data:
            raise ConfigError("TrainConfig.data (the token shard directory) is not set: use --data")
        return (TokenWindows(cfg.data, "train", self.plan.seq_len, seed=cfg.seed),
                TokenWindows(cfg.data, "val", self.plan.seq_len, seed=cfg.seed))

    # ------------------------------------------------------------------ one step

    def forward_backward_step(self, inputs: torch.Tensor, targets: torch.Tensor,
                              scale: float) -> torch.Tensor:
        """Loss of one micro-batch; gradients of ``loss * scale`` are accumulated."""
        inputs = inputs.to(self.device, non_blocking=True)
        targets = targets.to(self.device, non_blocking=True)
        with self.autocast:
            h = self.hidden(inputs, self.attention_mask(inputs))  # (B, T, D)
        loss = linear_cross_entropy(h, self.model.output.weight, targets, self.matmul_dtype)
        (loss * scale).backward()
        return loss.detach()

    def attention_mask(self, inputs: torch.Tensor) -> AttentionMask | None:
        """The document mask of a batch of windows under ``cfg.document_mask``, else None
        (plain causal windows)."""
        if not self.cfg.document_mask:
            return None
        return document_mask(inputs, self.train_data.eot_id)

    def train_step(self) -> dict[str, Any]:
        """One optimiser step over a global batch (with gradient accumulation)."""
        plan = self.plan
        lr = lr_at(self.step, plan.steps, self.cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        first = (self.step + self.data_offset) * plan.batch_seqs
        loss = torch.zeros((), device=self.device)
        for micro in range(plan.accum):
            x, y = self.train_data.batch(first + micro * plan.micro_batch, plan.micro_batch)
            loss += self.forward_backward_step(x, y, 1.0 / plan.accum)
        clip = self.cfg.grad_clip if self.cfg.grad_clip > 0 else math.inf
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip, foreach=True)
        return self._apply_step(lr, float(loss / plan.accum), float(grad_norm))

    def _apply_step(self, lr: float, loss: float, grad_norm: float) -> dict[str, Any]:
        """Step the optimiser, unless the loss or gradient norm is not finite: clipping a NaN
        norm gives NaN gradients, and one such update makes every weight NaN for good.

        A rejected step leaves ``self.step`` as it was and is marked ``nonfinite``; what
        follows is ``nan_policy``'s (``_on_nonfinite``).
        """
        finite = math.isfinite(loss) and math.isfinite(grad_norm)
        if finite:
            self.optimizer.step()
            self.step += 1
        self.optimizer.zero_grad(set_to_none=True)
        metrics = {"step": self.step + (0 if finite else 1), "lr": lr, "train_loss": loss,
                   "grad_norm": grad_norm}
        return metrics if finite else {**metrics, "nonfinite": True}

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean loss over a fixed set of validation windows (the same at every evaluation)."""
        self.model.eval()
        windows = max(1, self.cfg.eval_tokens // self.plan.seq_len)
        total, count = torch.zeros((), device=self.device, dtype=torch.float64), 0
        for x, y in self.val_data.sequential_batches(self.plan.micro_batch, windows):
            x = x.to(self.device, non_blocking=True)
            with self.autocast:
                h = self.hidden(x, self.attention_mask(x))  # (B, T, D)
            y = y.to(self.device, non_blocking=True)
            loss = linear_cross_entropy(h, self.model.output.weight, y, self.matmul_dtype)
            n = int((y >= 0).sum())  # masked targets (fine-tuning prompts) do not count
            total += loss * n
            count += n
        self.model.train()
        self.last_val_loss, self.last_val_step = float(total) / count, self.step
        return self.last_val_loss

    # ------------------------------------------------------------------ state

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "samples_seen": self.step * self.plan.batch_seqs,
            "elapsed": self.elapsed,
            "last_val_loss": self.last_val_loss,
            "last_val_step": self.last_val_step,
            "data_offset": self.data_offset,
            "nonfinite_steps": self.nonfinite_steps,
            "rng": torch.get_rng_state(),
            **({"cuda_rng": torch.cuda.get_rng_state(self.device)}
               if self.device.type == "cuda" else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        self.last_val_loss = state.get("last_val_loss")
        self.last_val_step = int(state.get("last_val_step", -1))
        self.data_offset = int(state.get("data_offset", 0))
        self.nonfinite_steps = int(state.get("nonfinite_steps", 0))
        torch.set_rng_state(state["rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)

    # ------------------------------------------------------------------ the run

    def _check_run_dir(self) -> None:
        """Write config.json, or check that the existing one describes this same run."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # A killed session's unfinished writes (this process holds the lock; the distributed
        # trainer overrides this method, so no other rank is writing here meanwhile).
        sio.remove_stale_temps(self.run_dir)
        config_path = self.run_dir / "config.json"
        mine = json.loads(json.dumps(self.cfg.as_dict()))  # as it reads back from disk
        if self.cfg.data:  # the run carries its tokenizer: eval works from any directory
            copy_shard_tokenizer(self.cfg.data, self.run_dir)
        if not config_path.exists():
            atomic_write_json(config_path, mine)
            return
        saved = read_json_object(config_path, "run config", ConfigError)
        # `model` was in every config.json ever written: its absence is damage, not age
        require_fields(saved, {"model": dict}, str(config_path), ConfigError)
        saved = _patch_missing_config_keys(saved)
        if saved.get("data") and mine["data"] and \
                Path(saved["data"]).resolve() == Path(mine["data"]).resolve():
            saved["data"] = mine["data"]  # a run started with a relative --data resumes
        differ = _differing_keys(saved, _comparable(mine))
        if differ:
            shown = ", ".join(differ[:5]) + (", ..." if len(differ) > 5 else "")
            raise ConfigError(
                f"{config_path}: the run there has a different config ({shown}); "
                "use another --out or the same settings"
            )

    def _resume(self) -> int | None:
        """Load the newest valid checkpoint, if any. Returns the step resumed from."""
        found = ckpt.load_latest_valid(self.run_dir)
        if found is None:
            return None
        self.load_state_dict(found[1])
        return self.step

    def fit(self) -> dict[str, Any]:
        """Run (or resume) training to the planned step; returns ``summary.json``'s content.

        The run directory is locked meanwhile: a second trainer on it stops with a one-line
        error naming this process, instead of truncating its metrics and checkpoints.
        """
        with self._lock():
            return self._fit()

    def _lock(self):
        """The run-directory lock (a hook: distributed ranks share one directory)."""
        return locked(self.run_dir, "a training run")

    def _fit(self) -> dict[str, Any]:
        """The body of ``fit``, with the run directory locked.

        A run directory whose ``summary.json`` exists is complete and is not trained again.
        Subclasses (the distributed trainer) change the steps through the hooks ``_resume``,
        ``_run_steps``, ``_export`` and ``_write_summary``, not this sequence.
        """
        self._check_run_dir()
        summary_path = self.run_dir / "summary.json"
        if summary_path.exists():
            return json.loads(summary_path.read_text())
        resume_step = self._resume()
        for cb in self.callbacks:
            cb.on_start(self, resume_step)
        self._run_steps()
        summary = sio.strict_json(self.summary())  # what summary.json will say
        if self.diverged is None:  # a diverged model is not exported for evaluation
            self._export()
        for cb in self.callbacks:
            cb.on_end(self, summary)
        self._write_summary(summary_path, summary)
        return summary

    def _run_steps(self) -> None:
        """Train from the current step to the last (or until the run diverges), timing each
        step and calling the callbacks."""
        while self.step < self.plan.steps and self.diverged is None and not self.stop_requested:
            start = time.perf_counter()
            metrics = self.train_step()
            seconds = time.perf_counter() - start
            self.elapsed += seconds
            if metrics.pop("nonfinite", False):
                self._on_nonfinite(metrics)
                continue
            self._add_throughput(metrics, seconds)
            for cb in self.callbacks:
                cb.post_step(self, metrics)

    # ------------------------------------------------------------------ divergence

    def _on_nonfinite(self, metrics: dict[str, Any]) -> None:
        """``nan_policy`` for a rejected step (its metrics are those of the step not taken)."""
        self.nonfinite_steps += 1
        what = "loss" if not math.isfinite(metrics["train_loss"]) else "gradient norm"
        event = {"step": metrics["step"], "event": "nonfinite", "loss": metrics["train_loss"],
                 "grad_norm": metrics["grad_norm"], "action": str(self.cfg.nan_policy)}
        policy, retries = self.cfg.nan_policy, self.cfg.nan_retries
        if policy == NanPolicy.stop or self.nonfinite_steps > retries:
            reason = f"non-finite {what} at step {metrics['step']}"
            if policy != NanPolicy.stop:
                reason += f" after {retries} {policy} attempt(s)"
            self.diverged = {"step": metrics["step"], "reason": f"{reason} (nan_policy={policy})"}
            self._emit({**event, "action": "stop"})
        elif policy == NanPolicy.skip:
            self.step += 1  # the batch counts as seen: the schedule and data move on
            self._emit(event)
        else:
            self._rollback(event)

    def _rollback(self, event: dict[str, Any]) -> None:
        """Reload the newest checkpoint and move the data past every batch since it.

        Replaying those batches from the same state would (on deterministic hardware) only
        reach the same bad step again, so the rolled-back run sees new data instead (as PaLM
        did after its loss spikes).
        """
        next_batch = self.step + self.data_offset + 1  # the first batch not yet seen
        rejected, elapsed = self.nonfinite_steps, self.elapsed
        if self._resume() is None:
            self.diverged = {"step": event["step"], "reason": f"non-finite step {event['step']}"
                             " and no checkpoint to roll back to (nan_policy=rollback)"}
            self._emit({**event, "action": "stop"})
            return
        # The checkpoint's own counters are older than this session's: keep ours.
        self.nonfinite_steps, self.elapsed = rejected, elapsed
        self.data_offset = next_batch - self.step
        self._emit({**event, "step": self.step, "at_step": event["step"],
                    "data_offset": self.data_offset})

    def _emit(self, event: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_event(self, event)

    def _export(self) -> None:
        ckpt.export_model(self.run_dir, self.model, self.cfg.model)

    def _write_summary(self, path: Path, summary: dict[str, Any]) -> None:
        atomic_write_json(path, summary)

    def _add_throughput(self, metrics: dict[str, Any], seconds: float) -> None:
        tokens = self.step * self.plan.tokens_per_step
        tps = self.plan.tokens_per_step / max(seconds, 1e-9)
        metrics.update(
            tokens=tokens, flops=tokens * self.flops_per_token, tokens_per_s=tps,
            mfu=tps * self.flops_per_token / self.peak_flops, elapsed=self.elapsed,
        )

    def summary(self) -> dict[str, Any]:
        if self.last_val_step != self.step:
            self.evaluate()
        params = count_params(self.cfg.model)
        tokens = self.step * self.plan.tokens_per_step  # a diverged run: the steps it took
        status = {"status": "complete"} if self.diverged is None else {
            "status": "diverged", "diverged_step": self.diverged["step"],
            "reason": self.diverged["reason"]}
        return {
            **status,
            "nonfinite_steps": self.nonfinite_steps,
            "preset": self.cfg.preset,
            "steps": self.step,
            "tokens": tokens,
            "seq_len": self.plan.seq_len,
            "batch_tokens": self.plan.tokens_per_step,
            "final_train_loss": self._recent_train_loss(),
            "final_val_loss": self.last_val_loss,
            "params_total": params.total,
            "params_non_embedding": params.non_embedding,
            "params_embedding": params.embedding,
            **all_conventions(self.cfg.model, tokens, self.plan.seq_len),
            "wall_time_s": self.elapsed,
            "tokens_per_s": tokens / max(self.elapsed, 1e-9),
            "mfu": tokens * self.flops_per_token / max(self.elapsed, 1e-9) / self.peak_flops,
            "peak_flops": self.peak_flops,
            "device": str(self.device),
            "dtype": self.cfg.dtype,
        }

    def _recent_train_loss(self) -> float | None:
        """Mean training loss over the last 10% of steps (read back from metrics.jsonl)."""
        rows = [r for r in read_metrics(self.run_dir) if "train_loss" in r]
        tail = rows[-max(1, self.plan.steps // 10):]
        return sum(r["train_loss"] for r in tail) / len(tail) if tail else None

    @property
    def eval_every(self) -> int:
        return self.cfg.eval_every or max(1, self.plan.steps // 10)

    @property
    def checkpoint_every(self) -> int:
        return self.cfg.checkpoint_every or max(1, self.plan.steps // 10)


def _patch_missing_config_keys(saved: dict[str, Any]) -> dict[str, Any]:
    """An older run's config.json with the fields added since (nan_policy, ...) at their
    defaults, so that upgrading scalinglab does not make every old run "different"."""
    defaults = TrainConfig().as_dict()
    saved = {**{k: v for k, v in defaults.items() if k not in saved}, **saved}
    return _comparable(saved)


def _comparable(cfg: dict[str, Any]) -> dict[str, Any]:
    """``cfg`` with equivalent spellings made equal: ``model.n_kv_heads`` absent (a run written
    before grouped-query attention), None, or equal to ``n_heads`` all mean multi-head."""
    model = cfg.get("model")
    if isinstance(model, dict) and model.get("n_kv_heads") in (None, model.get("n_heads")):
        cfg = {**cfg, "model": {**model, "n_kv_heads": None}}
    return cfg


def _differing_keys(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the fields whose values differ between two nested config dicts."""
    out = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _differing_keys(x, y, f"{prefix}{key}.")
        elif x != y:
            out.append(f"{prefix}{key}={x!r} (now {y!r})")
    return out


def default_callbacks(cfg: TrainConfig, progress: bool = True) -> list[Callback]:
    """Evaluation, then metrics logging, then progress, then checkpointing (order matters:
    a step's metrics row includes its validation loss, and a checkpoint follows its row)."""
    cbs: list[Callback] = [EvalCallback(), *spike_callbacks(cfg), MetricsCallback(),
                           *logger_callbacks(cfg)]
    if progress:
        cbs.append(ProgressCallback())
    cbs.append(CheckpointCallback())
    return cbs


def spike_callbacks(cfg: TrainConfig) -> list[Callback]:
    """The loss-spike detector when ``cfg.spike_factor`` is set (it marks the metrics row,
    so it runs before the logger)."""
    return [SpikeCallback(cfg.spike_factor, cfg.spike_window)] if cfg.spike_factor else []


def train(cfg: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Python API of ``scalinglab train``: run (or resume) ``cfg`` and return its summary.

    One process only: a config with a parallel layout is refused here rather than quietly
    trained on one process (use ``scalinglab.parallel.trainer.train_distributed`` under
    torchrun).
    """
    if cfg.parallel.is_parallel:
        raise ConfigError(
            "train(): this config has a parallel layout; run it under torchrun with "
            "scalinglab.parallel.trainer.train_distributed (or `torchrun ... -m scalinglab train`)"
        )
    return Trainer(cfg, progress=progress).fit()
