"""``scalinglab demo``: the main job.

Until the corpus and scaling stages land, the demo is the part that exists: byte-level token
shards made from the Python standard library's source text, and one tiny training run.
"""

from __future__ import annotations

import sysconfig
from pathlib import Path

import numpy as np

from scalinglab.data.shards import write_shard


def build_byte_shards(out: Path, max_bytes: int = 2_000_000) -> Path:
    """Byte-level (vocab 257, eot 256) shards of stdlib source files; 5% of files held out."""
    if (out / "val-00000.json").exists():
        return out
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))
    docs, total = [], 0
    for f in files:
        data = f.read_bytes()
        docs.append(np.frombuffer(data, dtype=np.uint8).astype(np.uint16))
        total += len(data)
        if total >= max_bytes:
            break
    eot = np.array([256], dtype=np.uint16)
    val = [d for i, d in enumerate(docs) if i % 20 == 0]
    train = [d for i, d in enumerate(docs) if i % 20 != 0]
    for split, part in (("train", train), ("val", val)):
        tokens = np.concatenate([x for d in part for x in (d, eot)])
        write_shard(out, split, 0, tokens, vocab_size=257, eot_id=256, num_docs=len(part))
    return out


def run(args) -> int:
    from scalinglab.model.presets import tiny
    from scalinglab.train.config import TrainConfig
    from scalinglab.train.trainer import train

    root = Path(args.out)
    data = build_byte_shards(root / "shards")
    model = tiny().merge({"vocab_size": 257, "max_seq_len": 128})
    cfg = TrainConfig(model=model, preset="tiny", data=str(data), out=str(root / "runs/tiny"),
                      tokens=int(args.tokens), batch_tokens=4096, lr=3e-3)
    summary = train(cfg)
    print(f"demo run {cfg.out}: val loss {summary['final_val_loss']:.3f} "
          f"({summary['tokens']:,} tokens, {summary['wall_time_s']:.1f}s)")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="run the small end-to-end study (the main job)")
    p.add_argument("--out", default="studies/demo", help="where the demo writes everything")
    p.add_argument("--tokens", type=float, default=4e5, help="training tokens")
    p.set_defaults(func=run)
