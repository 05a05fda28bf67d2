"""``scalinglab train``: a preset plus ``key=value`` overrides -> one training run."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from scalinglab.cli.common import print_json
from scalinglab.data.shards import open_split
from scalinglab.model.config import rederived_keys
from scalinglab.model.presets import get_preset
from scalinglab.train.config import TrainConfig


def build_config(args) -> TrainConfig:
    """Preset (or --config file), then the flags, then the dotlist overrides, in that order.

    Unless ``model.vocab_size`` is overridden, the model's vocabulary follows the shards'.
    """
    cfg = TrainConfig.from_file(args.config) if args.config else TrainConfig()
    if args.preset:
        cfg = dataclasses.replace(cfg, model=get_preset(args.preset), preset=args.preset)
    # absolute: the run's config.json then finds its shards (and tokenizer) from any directory
    data = str(Path(args.data).resolve()) if args.data else None
    flags = {"data": data, "out": args.out, "tokens": args.tokens, "flops": args.flops,
             "peak_flops": args.peak_flops}
    cfg = cfg.merge({k: v for k, v in flags.items() if v is not None})
    overrides = list(args.overrides)
    if getattr(args, "parallel", None):
        from scalinglab.layout.config import parse_degrees

        degrees = parse_degrees(args.parallel)
        overrides = [f"parallel.{k}={v}" for k, v in degrees.items()] + overrides
    keys = {o.split("=", 1)[0].strip() for o in overrides}
    if cfg.data and "model.vocab_size" not in keys:
        vocab = open_split(cfg.data, "train")[0].header["vocab_size"]
        cfg = cfg.merge({"model.vocab_size": vocab})
    return cfg.merge(overrides + [f"{k}=null" for k in rederived_keys(cfg.model, keys)])


def run(args) -> int:
    from scalinglab.train.trainer import plan_run, train  # torch import only when training

    cfg = build_config(args)
    if args.dry_run:
        plan = plan_run(cfg)
        out = {"config": cfg.as_dict(), "plan": dataclasses.asdict(plan)}
        if cfg.parallel.is_parallel:
            out["parallel"] = _check_layout(cfg, plan)
        out["wall_time"] = _probe(cfg)
        print_json(out)
        return 0
    if _distributed(cfg):
        from scalinglab.parallel.trainer import train_distributed

        rank0 = os.environ.get("RANK", "0") == "0"
        summary = train_distributed(cfg, progress=rank0 and not args.quiet)
        if not rank0:
            return 0
    else:
        summary = train(cfg, progress=not args.quiet)
    if args.json:
        print_json(summary)
    elif summary.get("status") == "diverged":
        print(f"run {cfg.out} diverged: {summary.get('reason')}; summary.json has "
              "status: diverged", file=sys.stderr)
    else:
        print(f"run {cfg.out}: {summary['steps']} steps, {summary['tokens']:,} tokens, "
              f"train loss {summary['final_train_loss']:.4f}, "
              f"val loss {summary['final_val_loss']:.4f}, {summary['wall_time_s']:.1f}s")
    return 1 if summary.get("status") == "diverged" else 0


def _probe(cfg: TrainConfig) -> dict | None:
    """The measured wall-time estimate of ``--dry-run`` (a line on stderr), or None with a
    line saying why there is none."""
    from scalinglab.train.probe import estimate_line, probe_refusal, probe_wall_time

    why = ("a parallel layout" if cfg.parallel.is_parallel else "no --data" if not cfg.data
           else probe_refusal(cfg))
    if why:
        print(f"expected wall time: not measured ({why}: the probe trains a few steps of "
              "the single-device run)", file=sys.stderr)
        return None
    est = probe_wall_time(cfg)
    print(estimate_line(est), file=sys.stderr)
    return est


def _distributed(cfg: TrainConfig) -> bool:
    """Under torchrun, with a parallel layout, or resuming a run that has sharded checkpoints
    (which one process can continue, too)."""
    if cfg.parallel.is_parallel or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return True
    # The layout of scalinglab.parallel.checkpoint, checked without importing torch.distributed.
    return bool(cfg.out and any(Path(cfg.out).glob("checkpoints/step-*/trainer.json")))


def _check_layout(cfg: TrainConfig, plan) -> dict:
    """Validate the layout for ``--dry-run`` (world size: torchrun's, else the degrees')."""
    from scalinglab.parallel.dims import ParallelDims

    p = cfg.parallel
    world = int(os.environ.get("WORLD_SIZE", "0")) or p.dp * max(p.fsdp, 1) * p.tp * p.pp
    dims = ParallelDims.from_config(p, world)
    dims.validate(cfg.model, p, plan.batch_seqs, cfg.micro_batch_size, plan.seq_len)
    return {**dims.as_dict(), "local_batch": dims.local_batch(plan.batch_seqs),
            "microbatches": dims.num_microbatches(plan.batch_seqs, cfg.micro_batch_size)}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train one model",
        description="Train one model. Example: scalinglab train --preset tiny --data SHARDS "
        "--tokens 1e6 --out runs/tiny lr=3e-3 model.n_layers=4",
    )
    p.add_argument("--preset", help="model preset (see `scalinglab models`)")
    p.add_argument("--config", help="YAML/JSON TrainConfig to start from")
    p.add_argument("--data", help="token shard directory")
    p.add_argument("--tokens", type=float, help="token budget (e.g. 2e6)")
    p.add_argument("--flops", type=float, help="FLOP budget (instead of --tokens)")
    p.add_argument("--out", help="run directory (re-running the command resumes it)")
    p.add_argument("--peak-flops", type=float,
                   help="peak FLOP/s that MFU is quoted against (default: GPU table or the "
                   "measured CPU matmul ceiling)")
    p.add_argument("--parallel", help="layout under torchrun, e.g. dp=2,fsdp=2,tp=2,pp=1")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--dry-run", action="store_true",
                   help="print the resolved config and plan, and the expected wall time from "
                   "a few measured steps (nothing is saved)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "overrides", nargs="*", help="key=value overrides, e.g. lr=1e-3 model.n_layers=4",
    )
    p.set_defaults(func=run)
