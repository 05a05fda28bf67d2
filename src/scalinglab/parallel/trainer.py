"""The distributed trainer: the single-process Trainer's loop on a sharded model.

``DistributedTrainer`` reuses ``Trainer``'s run logic (plan, schedule, metrics, summary) and
replaces what depends on the layout: building the model (``parallelize``), one step (data
split by data-parallel rank, pipeline schedules, loss parallelism), gradient clipping over
sharded gradients, evaluation, DCP checkpoints and the export. Only rank 0 writes the run
directory's files and shows progress, so a distributed run directory looks exactly like a
single-process one (plus ``summary.json["parallel"]``).

Launch: ``torchrun --standalone --nproc-per-node 4 -m scalinglab train ... --parallel
fsdp=2,tp=2``.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.tensor import DTensor
from torch.distributed.tensor.parallel import loss_parallel

from scalinglab.config import ConfigError
from scalinglab.errors import ScalinglabError
from scalinglab.io import atomic_write_json, locked, read_json_object
from scalinglab.parallel import checkpoint as dckpt
from scalinglab.parallel.dims import AXES, ParallelDims, init_process_group
from scalinglab.parallel.parallelize import parallelize
from scalinglab.parallel.pp import build_schedule
from scalinglab.train import checkpoint as ckpt
from scalinglab.train.callbacks import (
    Callback,
    EvalCallback,
    MetricsCallback,
    ProgressCallback,
)
from scalinglab.train.config import TrainConfig
from scalinglab.train.loggers import logger_callbacks
from scalinglab.train.optim import build_optimizer, lr_at, param_groups
from scalinglab.train.trainer import (
    Trainer,
    _comparable,
    _patch_missing_config_keys,
    spike_callbacks,
)


class DistCheckpointCallback(Callback):
    """Saves a sharded checkpoint every ``checkpoint_every`` steps and at the end (collective),
    and at step 0 under ``nan_policy=rollback`` (a state to go back to)."""

    def on_start(self, trainer: DistributedTrainer, resume_step: int | None) -> None:
        if trainer.cfg.nan_policy == "rollback" and resume_step is None:
            trainer.save_checkpoint()

    def post_step(self, trainer: DistributedTrainer, metrics: dict[str, Any]) -> None:
        if trainer.step % trainer.checkpoint_every == 0 or trainer.step == trainer.plan.steps:
            trainer.save_checkpoint()


class DistributedTrainer(Trainer):
    """Trains one model over ``torchrun``'s processes laid out by ``cfg.parallel``."""

    # Trainer.__init__ runs as for one process; the hooks below replace its single-device
    # steps: the process group and mesh before the data, and a model built already sharded.
    def _init_device(self) -> None:
        self.pcfg = self.cfg.parallel
        torch.set_num_threads(self.cfg.threads or int(os.environ.get("OMP_NUM_THREADS", "1")))
        self.rank, self.world = init_process_group(self.pcfg.timeout_s)
        self._init_layout(self.world)

    def _peak_flops(self) -> float:
        # MFU of the whole job: throughput is global, so the peak is one device's x world size.
        return super()._peak_flops() * self.world

    def _init_layout(self, world: int) -> None:
        """Degrees, batch split, device, mesh and this rank's coordinates in it."""
        cfg = self.cfg
        self.dims = ParallelDims.from_config(self.pcfg, world)
        self.dims.validate(cfg.model, self.pcfg, self.plan.batch_seqs, cfg.micro_batch_size,
                           self.plan.seq_len)
        self.local_batch = self.dims.local_batch(self.plan.batch_seqs)
        self.n_micro = self.dims.num_microbatches(self.plan.batch_seqs, cfg.micro_batch_size)
        self.device = _device(cfg.device)
        self.mesh = self.dims.build_mesh(self.device.type)
        coord = dict(zip(AXES, self.mesh.get_coordinate(), strict=True))
        self.dp_rank = coord["dp"] * self.dims.fsdp + coord["fsdp"]
        self.is_stage_leader = coord["dp"] == coord["fsdp"] == coord["tp"] == 0

    def _init_model(self) -> None:
        """The sharded model, its optimiser, the pipeline schedule and the precision."""
        cfg = self.cfg
        self.pm = parallelize(cfg.model, self.pcfg, self.dims, self.mesh, self.device,
                              seed=cfg.seed, dtype=cfg.dtype, compile=cfg.compile)
        self.model, self.forward = self.pm.model, self.pm.forward
        self.optimizer = self._build_optimizer()
        self.schedule, self.stages = None, []
        self._sum_loss = False  # the pipeline's loss: a mean in training, a sum in evaluation
        if self.dims.pp > 1:
            self.schedule, self.stages = build_schedule(
                self.pm.parts, self.pm.stage_ids, self.dims.pp * self.pcfg.stages_per_rank,
                self.mesh["pp"], self.device, self.n_micro, self._pipeline_loss,
                self.pcfg.pp_schedule)
        # FSDP's bf16 parameters replace autocast; otherwise bf16 is autocast as in Trainer.
        fsdp_bf16 = cfg.dtype == "bf16" and self.device.type == "cuda" and self.dims.uses_fsdp
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16,
                                       enabled=cfg.dtype == "bf16" and not fsdp_bf16)
        self.loss_parallel = self.dims.tp > 1 and self.dims.pp == 1 and self.pcfg.loss_parallel

    def _build_optimizer(self) -> torch.optim.Optimizer:
        """AdamW; under ``shard_optimizer`` (ZeRO-1) each data-parallel rank keeps the state
        of its share of the parameters and broadcasts them after its step."""
        if not self.pcfg.shard_optimizer:
            return build_optimizer(self.model, self.cfg, foreach=_uniform(self.model))
        from torch.distributed.optim import ZeroRedundancyOptimizer

        groups = param_groups(self.model, self.cfg.weight_decay)
        zero = ZeroRedundancyOptimizer(
            groups[0]["params"], optimizer_class=torch.optim.AdamW,
            process_group=self.mesh["dp"].get_group(), lr=self.cfg.lr,
            betas=(self.cfg.beta1, self.cfg.beta2), eps=self.cfg.eps,
            weight_decay=groups[0]["weight_decay"])
        zero.add_param_group(groups[1])
        return zero

    def _callbacks(self, progress: bool) -> list[Callback]:
        """Evaluation and checkpoints are collective (every rank); logging is rank 0's."""
        if self.rank != 0:
            return [EvalCallback(), DistCheckpointCallback()]
        cbs: list[Callback] = [EvalCallback(), *spike_callbacks(self.cfg), MetricsCallback(),
                               *logger_callbacks(self.cfg)]
        if progress:
            cbs.append(ProgressCallback())
        return [*cbs, DistCheckpointCallback()]

    # ------------------------------------------------------------------ one step

    def _loss_ctx(self):
        return loss_parallel() if self.loss_parallel else contextlib.nullcontext()

    def forward_backward_step(self, inputs: torch.Tensor, targets: torch.Tensor,
                              scale: float) -> torch.Tensor:
        """Loss of one micro-batch (no pipeline); gradients of ``loss * scale`` accumulate."""
        inputs, targets = inputs.to(self.device), targets.to(self.device)
        with self._loss_ctx():
            with self.autocast:
                logits = self.forward(inputs)  # (B, T, V), vocab-sharded under loss parallel
            loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
            (loss * scale).backward()
        return _local(loss.detach())

    def train_step(self) -> dict[str, Any]:
        """One optimiser step over the global batch; this rank takes its data-parallel slice."""
        lr = lr_at(self.step, self.plan.steps, self.cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        first = ((self.step + self.data_offset) * self.plan.batch_seqs
                 + self.dp_rank * self.local_batch)
        x, y = self.train_data.batch(first, self.local_batch)  # (local_batch, T) each
        if self.schedule is not None:
            loss = self._pipeline_step(x, y)
        else:
            loss = self._accumulate(x, y)
        grad_norm = self._clip_gradients()
        # Both are global (all-reduced), so every rank takes the same decision in _apply_step.
        return self._apply_step(lr, self._mean_over_ranks(loss), float(grad_norm))

    def _accumulate(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        micro = self.local_batch // self.n_micro
        loss = torch.zeros((), device=self.device)
        for i in range(self.n_micro):
            with self._grad_sync(last=i == self.n_micro - 1):
                xs, ys = x[i * micro:(i + 1) * micro], y[i * micro:(i + 1) * micro]
                loss += self.forward_backward_step(xs, ys, 1.0 / self.n_micro)
        return loss / self.n_micro

    @contextlib.contextmanager
    def _grad_sync(self, last: bool):
        """Reduce gradients across data-parallel ranks only on the last micro-batch."""
        part = self.pm.parts[0]
        if hasattr(part, "set_requires_gradient_sync"):  # FSDP2
            part.set_requires_gradient_sync(last)
        if hasattr(self.forward, "no_sync") and not last:  # DDP
            with self.forward.no_sync():
                yield
            return
        yield

    def _pipeline_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor | None:
        """Run the schedule on this rank's stages; returns the mean loss on the last stage."""
        losses: list[torch.Tensor] = []
        with self.autocast:
            self._run_schedule(self.schedule.step, x, y, losses)
        return torch.stack(losses).mean().detach() if losses else None

    def _run_schedule(self, fn, x: torch.Tensor, y: torch.Tensor, losses: list) -> None:
        first = any(s.is_first for s in self.stages)
        last = any(s.is_last for s in self.stages)
        target = y.to(self.device) if last else None
        if first:
            fn(x.to(self.device), target=target, losses=losses)
        else:
            fn(target=target, losses=losses)

    def _clip_gradients(self) -> torch.Tensor:
        """Global gradient norm over every shard and stage, then clip to ``grad_clip``."""
        params = [p for p in self.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.get_total_norm([p.grad for p in params], 2.0, foreach=True)
        if isinstance(norm, DTensor):
            norm = norm.full_tensor()  # sums the TP / FSDP partial norms
        if self.dims.pp > 1:  # each pipeline rank holds different parameters
            norm = norm ** 2
            dist.all_reduce(norm, group=self.mesh["pp"].get_group())
            norm = norm.sqrt()
        clip = self.cfg.grad_clip if self.cfg.grad_clip > 0 else math.inf
        torch.nn.utils.clip_grads_with_norm_(params, clip, norm, foreach=True)
        return norm

    def _mean_over_ranks(self, value: torch.Tensor | float | None) -> float:
        """Mean of a per-rank scalar over the ranks that hold one (the last pipeline stage:
        ``dp x fsdp x tp`` ranks; TP peers hold equal copies)."""
        t = torch.zeros((), dtype=torch.float64, device=self.device)
        if value is not None:
            t += float(value)
        dist.all_reduce(t)
        return float(t) / (self.dims.dp_degree * self.dims.tp)

    # ------------------------------------------------------------------ evaluation

    @torch.no_grad()
    def evaluate(self) -> float:
        """Mean validation loss over the single-process run's fixed windows (every data rank
        evaluates all of them; TP peers and pipeline stages cooperate on each batch)."""
        for part in self.pm.parts:
            part.eval()
        windows = max(1, self.cfg.eval_tokens // self.plan.seq_len)
        if self.schedule is None:
            loss = self._evaluate_plain(windows)
        else:
            loss = self._evaluate_pipeline(windows)
        for part in self.pm.parts:
            part.train()
        self.last_val_loss, self.last_val_step = self._mean_over_ranks(loss), self.step
        return self.last_val_loss

    def _evaluate_plain(self, windows: int) -> float:
        micro = self.local_batch // self.n_micro
        total, count = 0.0, 0
        for x, y in self.val_data.sequential_batches(micro, windows):
            with self._loss_ctx():
                with self.autocast:
                    logits = self.model(x.to(self.device))
                loss = F.cross_entropy(logits.float().flatten(0, 1),
                                       y.to(self.device).flatten(), reduction="sum")
            total += float(_local(loss))
            count += y.numel()
        return total / count

    def _evaluate_pipeline(self, windows: int) -> float | None:
        """The same windows as without a pipeline, in whole local batches (stage shapes are
        fixed): the last batch is padded with rows whose targets are ignored (-100)."""
        n = min(windows, self.val_data.num_windows)
        total = 0.0
        self._sum_loss = True
        try:
            for start in range(0, n, self.local_batch):
                rows = [self.val_data.window(min(w, n - 1))
                        for w in range(start, start + self.local_batch)]
                t = torch.from_numpy(np.stack(rows).astype(np.int64))  # (local_batch, T + 1)
                x, y = t[:, :-1], t[:, 1:].clone()
                y[max(0, n - start):] = -100  # padding rows
                losses: list[torch.Tensor] = []
                with self.autocast:
                    self._run_schedule(self.schedule.eval, x, y, losses)
                total += sum(float(v) for v in losses)
        finally:
            self._sum_loss = False
        has_loss = any(s.is_last for s in self.stages)
        return total / (n * self.plan.seq_len) if has_loss else None

    def _pipeline_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy of one micro-batch (the schedule's ``loss_fn``)."""
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(),
                               reduction="sum" if self._sum_loss else "mean")

    # ------------------------------------------------------------------ state and the run

    def trainer_state(self) -> dict[str, Any]:
        return {"step": self.step, "samples_seen": self.step * self.plan.batch_seqs,
                "elapsed": self.elapsed, "last_val_loss": self.last_val_loss,
                "last_val_step": self.last_val_step, "data_offset": self.data_offset,
                "nonfinite_steps": self.nonfinite_steps, "parallel": self.dims.as_dict()}

    def save_checkpoint(self) -> None:
        dckpt.save(self.run_dir, self.step, self.model, self.optimizer, self.trainer_state(),
                   self.cfg.keep_checkpoints)

    def _check_run_dir(self) -> None:
        """Check or write config.json; the layout may differ from the saved one (resharding)."""
        config_path = self.run_dir / "config.json"
        dist.barrier()
        mine = _without_layout(_comparable(self.cfg.as_dict()))
        saved = config_path.exists() and _patch_missing_config_keys(
            read_json_object(config_path, "run config", ConfigError))
        if saved and _without_layout(saved) != mine:
            raise ConfigError(f"{self.run_dir}: holds a run with a different config; "
                              "use another --out")
        if ckpt.checkpoint_steps(self.run_dir):
            raise ConfigError(f"{self.run_dir}: holds single-process checkpoints; resume it "
                              "without torchrun")
        dist.barrier()
        if self.rank == 0 and not config_path.exists():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(config_path, self.cfg.as_dict())
        dist.barrier()

    @contextlib.contextmanager
    def _lock(self):
        """Rank 0 locks the shared run directory and tells every rank whether it could, so a
        refused lock stops all ranks at once instead of leaving the others in a barrier."""
        with contextlib.ExitStack() as stack:
            refused: list[Any] = [None]
            if self.rank == 0:
                try:
                    stack.enter_context(locked(self.run_dir, "a training run"))
                except ScalinglabError as e:
                    refused[0] = e
            shared = [None if refused[0] is None else str(refused[0])]
            dist.broadcast_object_list(shared, src=0)
            if shared[0] is not None:
                raise refused[0] or ScalinglabError(shared[0])
            yield

    def _resume(self) -> int | None:
        """Load the newest valid sharded checkpoint, resharding it to this layout; a torn one
        (DCP raises on every rank alike) falls back to the one before it."""
        steps = dckpt.checkpoint_dirs(self.run_dir)
        if not steps:
            return None
        state = None
        for i, step in enumerate(reversed(steps)):
            try:
                state = dckpt.load(dckpt.step_dir(self.run_dir, step), self.model,
                                   self.optimizer)
                break
            # DCP wraps every rank's failure in CheckpointException, a BaseException
            except (Exception, CheckpointException) as e:  # noqa: BLE001 - try the older one
                if i == len(steps) - 1:
                    raise
                if self.rank == 0:
                    print(f"warning: skipping unreadable checkpoint "
                          f"{dckpt.step_dir(self.run_dir, step)}: {e}", file=sys.stderr)
        self.step, self.elapsed = int(state["step"]), float(state["elapsed"])
        self.last_val_loss = state.get("last_val_loss")
        self.last_val_step = int(state.get("last_val_step", -1))
        self.data_offset = int(state.get("data_offset", 0))
        self.nonfinite_steps = int(state.get("nonfinite_steps", 0))
        return self.step

    def _run_steps(self) -> None:
        super()._run_steps()
        dist.barrier()  # rank 0's last metrics row is on disk before the summary reads it

    def _export(self) -> None:
        dckpt.export(self.run_dir, self.model, self.cfg.model, self.is_stage_leader)

    def _write_summary(self, path: Path, summary: dict[str, Any]) -> None:
        if self.rank == 0:
            atomic_write_json(path, summary)
        dist.barrier()

    def summary(self) -> dict[str, Any]:
        return {**super().summary(), "parallel": self.dims.as_dict(),
                "world_size": self.dims.world_size}

    def close(self) -> None:
        """Release the training objects before the process group (gloo aborts otherwise)."""
        for name in ("schedule", "stages", "optimizer", "model", "forward", "pm"):
            if hasattr(self, name):
                delattr(self, name)
        gc.collect()


def train_distributed(cfg: TrainConfig, progress: bool = True,
                      shutdown: bool = True) -> dict[str, Any]:
    """Python API of ``torchrun ... -m scalinglab train``: run (or resume) ``cfg`` on this
    process's share of the layout; returns the summary on every rank."""
    if "WORLD_SIZE" not in os.environ and not dist.is_initialized() and cfg.parallel.is_parallel:
        raise ConfigError("a parallel layout runs under torchrun: torchrun --standalone "
                          "--nproc-per-node N -m scalinglab train ... --parallel ...")
    trainer = None
    try:
        trainer = DistributedTrainer(cfg, progress=progress)
        return trainer.fit()
    finally:
        if trainer is not None:
            trainer.close()
        del trainer
        gc.collect()
        if shutdown and dist.is_initialized():
            dist.destroy_process_group()


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.full_tensor() if isinstance(t, DTensor) else t


def _uniform(model: torch.nn.Module) -> bool:
    """AdamW's foreach path needs all parameters DTensors or none of them."""
    kinds = {isinstance(p, DTensor) for p in model.parameters()}
    return len(kinds) == 1


# Fields that do not change what is computed: a run may resume under another layout, with
# other micro-batches, from a run directory that was moved (e.g. to another cluster).
LAYOUT_FIELDS = ("parallel", "micro_batch_size", "out")


def _without_layout(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in LAYOUT_FIELDS}


def _device(name: str) -> torch.device:
    """This rank's device: its local GPU under torchrun, or the CPU."""
    if name in ("auto", "cuda") and torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(name if name != "auto" else "cpu")
