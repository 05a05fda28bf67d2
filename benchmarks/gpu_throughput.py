"""Tokens/s and MFU of training on one GPU: a ~125M GPT in bf16, compiled, plain and FSDP2.

    python benchmarks/gpu_throughput.py                  # gpt3-125m, batch 16 x 2048, H100
    python benchmarks/gpu_throughput.py --modes fsdp --reshard-after-forward false
    python benchmarks/gpu_throughput.py --tiny           # CPU smoke run of the same code

Two modes, same model and batch:
  plain  the model on one device, ``torch.compile`` on model + loss, bf16 autocast, fused AdamW;
  fsdp   ``scalinglab.parallel.fsdp.apply_fsdp`` on a 1-rank mesh: per-block ``fully_shard``
         with bf16 parameters / fp32 gradient reduction, blocks compiled in place. On one GPU
         nothing is sharded: this measures what FSDP2's hooks and the mixed-precision casts
         cost relative to plain.
MFU = tokens/s x FLOPs per token / peak, with the Chinchilla-convention count (includes the
attention and the output layer) and, for reference, 6N. Peak: the vendor's dense bf16 figure
for known GPUs (``scalinglab.utils.hardware``), a measured matmul ceiling on CPU. Data are
random token ids (the figure is about the machine, not the corpus). The vocabulary is padded
to a multiple of 64 (50257 -> 50304) as GPU kernels prefer; ``--no-pad-vocab`` keeps it.
"""

from __future__ import annotations

import argparse
import gc
import json
import time

import torch
import torch.nn.functional as F

from scalinglab.model.accounting import FlopConvention, count_params, train_flops_per_token
from scalinglab.model.presets import get_preset, tiny
from scalinglab.model.transformer import Transformer, build_model
from scalinglab.utils.hardware import peak_flops


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="gpt3-125m")
    p.add_argument("--batch", type=int, default=16, help="sequences per step")
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--steps", type=int, default=30, help="timed steps")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps (compilation)")
    p.add_argument("--modes", default="plain,fsdp")
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--no-pad-vocab", action="store_true")
    p.add_argument("--reshard-after-forward", default="true", choices=["true", "false"])
    p.add_argument("--tiny", action="store_true",
                   help="CPU smoke run: tiny preset, fp32, batch 4 x 64, 3 steps")
    return p.parse_args()


def setup(args: argparse.Namespace):
    """(model config, device, dtype name) for the run."""
    if args.tiny:
        args.batch, args.seq, args.steps, args.warmup = 4, 64, 3, 1
        return tiny(), torch.device("cpu"), "fp32"
    cfg = get_preset(args.preset).merge({"max_seq_len": args.seq})
    if not args.no_pad_vocab:
        cfg = cfg.merge({"vocab_size": -(-cfg.vocab_size // 64) * 64})
    if not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --tiny for the CPU smoke check")
    return cfg, torch.device("cuda"), "bf16"


def plain_setup(cfg, device, dtype, compile_: bool):
    """Model, a step function (loss of one batch, with backward) and the optimiser."""
    model = build_model(cfg, seed=0, device=device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")

    def loss_fn(x, y):
        with autocast:
            logits = model(x)  # (B, T, V)
        return F.cross_entropy(logits.float().flatten(0, 1), y.flatten())

    loss_fn = torch.compile(loss_fn) if compile_ else loss_fn
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            fused=device.type == "cuda")
    return model, loss_fn, opt


def fsdp_setup(cfg, device, dtype, compile_: bool, reshard: bool):
    """The same under FSDP2 on a 1-rank mesh (bf16 params, fp32 reduce on GPU)."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh

    from scalinglab.parallel.fsdp import apply_fsdp, mixed_precision

    if not dist.is_initialized():  # one rank: an in-process store, no port to collide on
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=0,
                                world_size=1, store=dist.HashStore())
    mesh = init_device_mesh(device.type, (1,), mesh_dim_names=("fsdp",))
    with torch.device("meta"):
        model = Transformer(cfg)
    if compile_:
        for block in model.layers.values():
            block.compile()
    apply_fsdp(model, mesh, reshard, mixed_precision(dtype, device.type))
    model.to_empty(device=device)
    model.init_weights(0)

    def loss_fn(x, y):
        return F.cross_entropy(model(x).float().flatten(0, 1), y.flatten())

    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1,
                            foreach=True)
    return model, loss_fn, opt


def measure(model, loss_fn, opt, cfg, device, args) -> dict:
    """Warm up (compilation), then time ``args.steps`` optimiser steps."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, cfg.vocab_size, (args.batch, args.seq + 1), generator=gen).to(device)
    inputs, targets = x[:, :-1], x[:, 1:]

    def step() -> torch.Tensor:
        loss = loss_fn(inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    for _ in range(args.warmup):
        step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    sync(device)
    seconds = time.perf_counter() - start
    mem = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
    return {"seconds": seconds, "loss": float(loss), "peak_mem_gib": round(mem, 2)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    args = parse_args()
    cfg, device, dtype = setup(args)
    compile_ = not args.no_compile
    peak = peak_flops(device, dtype)
    per_token = train_flops_per_token(cfg, FlopConvention.chinchilla, args.seq)
    six_n = 6 * count_params(cfg).total
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, {dtype}, compile={compile_}, params {count_params(cfg).total:,}, "
          f"batch {args.batch} x {args.seq}, peak {peak / 1e12:.1f} TFLOP/s")
    for mode in args.modes.split(","):
        if mode == "plain":
            model, loss_fn, opt = plain_setup(cfg, device, dtype, compile_)
        elif mode == "fsdp":
            model, loss_fn, opt = fsdp_setup(cfg, device, dtype, compile_,
                                             args.reshard_after_forward == "true")
        else:
            raise SystemExit(f"unknown mode {mode!r}: plain or fsdp")
        r = measure(model, loss_fn, opt, cfg, device, args)
        tps = args.batch * args.seq * args.steps / r["seconds"]
        row = {"mode": mode, "tokens_per_s": round(tps), "mfu": round(tps * per_token / peak, 4),
               "mfu_6n": round(tps * six_n / peak, 4), "step_ms": round(
                   1000 * r["seconds"] / args.steps, 1), "final_loss": round(r["loss"], 4),
               "peak_mem_gib": r["peak_mem_gib"], "device": name, "dtype": dtype,
               "preset": "tiny" if args.tiny else args.preset, "batch": args.batch,
               "seq": args.seq, "compile": compile_}
        print(json.dumps(row))
        del model, loss_fn, opt
        gc.collect()
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
