"""Training throughput of the real Trainer on two small shapes, fp32 and bf16 autocast.

Prints the machine's matmul ceilings (fp32, bf16), then for config A (vocab 4096, seq 256,
4 layers, d 128, 4 heads, batch 16) and B (6 layers, d 384, 6 heads, batch 8) the tokens/s
and MFU of ``Trainer.train_step`` (AdamW + gradient clipping, the trainer's own data path),
and how far bf16's training loss after 50 steps lands from fp32's.

    PYTHONPATH=src python benchmarks/train_throughput.py [--steps 30] [--threads 2] [--json]

MFU counts the Chinchilla Appendix-F FLOPs per token (embedding FLOPs included, so it reads
higher than the share of matmul time) against the measured fp32 (or bf16) matmul ceiling.
Tokens/s is the median over the timed steps; the best single step is printed beside it, since
on a shared machine the best step is the closest to the unloaded speed. Speed goals live here,
not in timed tests.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from scalinglab.data.shards import write_shard
from scalinglab.model.config import ModelConfig
from scalinglab.train.config import TrainConfig
from scalinglab.train.trainer import Trainer
from scalinglab.utils.hardware import measure_matmul_flops

VOCAB, SEQ = 4096, 256
CONFIGS = {
    "A": dict(n_layers=4, d_model=128, n_heads=4, batch=16),
    "B": dict(n_layers=6, d_model=384, n_heads=6, batch=8),
}
# The plain-PyTorch reference figures of the foundation issue (fp32, this 2-core machine).
REFERENCE_TPS = {"A": 11_700, "B": 2_100}
GOAL_FACTOR = {"A": 1.25, "B": 1.0}


def make_data(directory: Path) -> Path:
    """A learnable synthetic language (documents of 500 random 'words' over the whole
    vocabulary), so that the fp32 / bf16 loss comparison after 50 steps means something."""
    rng = np.random.default_rng(0)
    words = [rng.integers(1, VOCAB, size=rng.integers(2, 6)) for _ in range(500)]

    def stream(n: int) -> np.ndarray:
        picks = rng.integers(len(words), size=n // 2)
        tokens = np.concatenate([words[i] for i in picks])[:n]
        tokens[rng.random(n) < 0.01] = 0  # end-of-text ids
        return tokens

    write_shard(directory, "train", 0, stream(1_000_000), vocab_size=VOCAB, eot_id=0)
    write_shard(directory, "val", 0, stream(20_000), vocab_size=VOCAB, eot_id=0)
    return directory


def make_trainer(name: str, dtype: str, data: Path, out: Path, steps: int, args) -> Trainer:
    c = CONFIGS[name]
    model = ModelConfig(n_layers=c["n_layers"], d_model=c["d_model"], n_heads=c["n_heads"],
                        vocab_size=VOCAB, max_seq_len=SEQ)
    cfg = TrainConfig(model=model, data=str(data), out=str(out), seq_len=SEQ,
                      batch_tokens=c["batch"] * SEQ, tokens=steps * c["batch"] * SEQ,
                      dtype=dtype, compile=args.compile, lr=1e-3, peak_flops=1.0,
                      threads=args.threads)
    return Trainer(cfg, callbacks=[], progress=False)


def time_steps(trainer: Trainer, steps: int, warmup: int) -> tuple[list[float], list[float]]:
    """Seconds of each step after ``warmup`` steps, and the loss of every step."""
    losses, times = [], []
    for i in range(warmup + steps):
        start = time.perf_counter()
        metrics = trainer.train_step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
        losses.append(metrics["train_loss"])
    return times, losses


def bench(name: str, dtype: str, data: Path, root: Path, args, ceilings: dict) -> dict:
    # The ceiling is re-measured before every config and the best seen is kept: on a shared
    # machine a single measurement can land in someone else's busy second.
    torch_dtype = torch.float32 if dtype == "fp32" else torch.bfloat16
    ceilings[dtype] = max(ceilings[dtype], measure_matmul_flops(torch_dtype, seconds=1.0))
    steps = args.schedule_steps or max(args.steps, 50) + 5
    trainer = make_trainer(name, dtype, data, root / f"{name}-{dtype}", steps, args)
    times, losses = time_steps(trainer, args.steps, warmup=5 if not args.compile else 10)
    seconds = statistics.median(times)
    # Continue (same run) until 50 steps have been taken, for the loss comparison.
    while trainer.step < 50:
        losses.append(trainer.train_step()["train_loss"])
    tps = trainer.plan.tokens_per_step / seconds
    return {
        "config": name, "dtype": dtype, "tokens_per_s": tps, "s_per_step": seconds,
        "best_tokens_per_s": trainer.plan.tokens_per_step / min(times),
        "mfu": tps * trainer.flops_per_token / ceilings[dtype],
        "ceiling": ceilings[dtype],
        "achieved_gflops": tps * trainer.flops_per_token / 1e9,
        "loss_at_50": losses[49],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=30, help="timed steps per config")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    p.add_argument("--configs", default="A,B")
    p.add_argument("--dtypes", default="fp32,bf16")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--schedule-steps", type=int, default=0,
                   help="planned steps of each run (the cosine's length; default: timed "
                   "steps + warm-up, at least 55)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    ceilings = {"fp32": measure_matmul_flops(torch.float32, seconds=1.0),
                "bf16": measure_matmul_flops(torch.bfloat16, seconds=1.0)}
    print(f"threads {torch.get_num_threads()}, load average {load:.2f} at start; matmul "
          f"ceiling fp32 {ceilings['fp32'] / 1e9:.0f} GFLOP/s, "
          f"bf16 {ceilings['bf16'] / 1e9:.0f} GFLOP/s", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp) / "shards")
        for name in args.configs.split(","):
            for dtype in args.dtypes.split(","):
                row = bench(name, dtype, data, Path(tmp), args, ceilings)
                rows.append(row)
                goal = REFERENCE_TPS[name] * GOAL_FACTOR[name]
                print(f"config {name} {dtype}: {row['tokens_per_s']:,.0f} tokens/s median "
                      f"({row['s_per_step'] * 1e3:.0f} ms/step; best step "
                      f"{row['best_tokens_per_s']:,.0f}), MFU {100 * row['mfu']:.0f}% of the "
                      f"{dtype} ceiling ({row['ceiling'] / 1e9:.0f} GFLOP/s), "
                      f"loss@50 {row['loss_at_50']:.4f}"
                      + (f"  [fp32 goal {goal:,.0f}]" if dtype == "fp32" else ""), flush=True)
    for name in args.configs.split(","):
        by = {r["dtype"]: r for r in rows if r["config"] == name}
        if "fp32" in by and "bf16" in by:
            diff = by["bf16"]["loss_at_50"] - by["fp32"]["loss_at_50"]
            speed = by["bf16"]["tokens_per_s"] / by["fp32"]["tokens_per_s"]
            print(f"config {name}: bf16 loss@50 - fp32 loss@50 = {diff:+.4f} "
                  f"({100 * diff / by['fp32']['loss_at_50']:+.2f}%), bf16 speed x{speed:.2f}")
    print(f"load average {os.getloadavg()[0]:.2f} at end")
    if args.json:
        print(json.dumps({"ceilings": ceilings, "load_start": load, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
