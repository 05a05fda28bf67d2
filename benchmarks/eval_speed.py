"""Scored multiple-choice answers per second on CPU with a tiny model.

Scores N four-way questions (random words; context ~90 bytes, choices ~30 bytes, byte-level
tokens) with the ``tiny`` preset (vocab 257, context 128) twice: with each question's choices
packed behind one shared context (what ``scalinglab eval`` does), and with every choice run as
its own sequence. Prints questions/s and choices/s for both (wall clock), and choices per
CPU-second, which is steadier on a shared machine.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/eval_speed.py --questions 1000
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from scalinglab.eval.scoring import Scorer
from scalinglab.eval.tokenizer import ByteTokenizer
from scalinglab.model.presets import tiny
from scalinglab.model.transformer import build_model

WORDS = "the of river stone garden music window paper silver autumn engine forest".split()


def questions(n: int, seed: int = 0) -> list[tuple[str, list[str]]]:
    rng = random.Random(seed)

    def words(k: int) -> str:
        return " ".join(rng.choice(WORDS) for _ in range(k))

    return [(words(15), [" " + words(5) for _ in range(4)]) for _ in range(n)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--questions", type=int, default=1000)
    p.add_argument("--batch-tokens", type=int, default=8192)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = build_model(tiny().merge({"vocab_size": 257, "max_seq_len": 128}), seed=0,
                        device=args.device)
    print(f"tiny model ({sum(p.numel() for p in model.parameters()):,} params), "
          f"{args.questions} four-way questions on {args.device}, "
          f"torch threads {torch.get_num_threads()}")
    for name, share in (("shared context", True), ("one sequence per choice", False)):
        scorer = Scorer(model, ByteTokenizer(), batch_tokens=args.batch_tokens,
                        share_context=share)
        groups = [scorer.encode_group(c, conts) for c, conts in questions(args.questions)]
        n_choices = sum(len(g.continuations) for g in groups)
        scorer.score_groups(groups[:8])  # warm-up
        start, cpu = time.perf_counter(), time.process_time()
        scorer.score_groups(groups)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        print(f"{name:>24}: {seconds:6.2f} s wall ({cpu:6.2f} s CPU)  "
              f"{args.questions / seconds:7.0f} questions/s  {n_choices / seconds:7.0f} choices/s"
              f"  ({n_choices / cpu:.0f} choices per CPU-second)")


if __name__ == "__main__":
    main()
