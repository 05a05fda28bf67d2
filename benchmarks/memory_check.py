"""The planner's memory model against the bytes each rank really allocates.

Trains a tiny 4-layer model for one step on 4 gloo processes (CPU, fp32) under several
layouts and compares each rank's weights, gradients and optimizer state (local shards) with
``plan.memory.stage_memory`` for the same layout. Run:

    PYTHONPATH=src python benchmarks/memory_check.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scalinglab.model.presets import tiny  # noqa: E402
from scalinglab.testing.distributed import run_distributed_test  # noqa: E402
from scalinglab.testing.memory_probe import compare  # noqa: E402
from scalinglab.train.config import TrainConfig  # noqa: E402
from tests.conftest import make_shards  # noqa: E402

WORLD = 4
LAYOUTS = {  # trainer vocabulary; the planner's label is printed next to it
    "fsdp4 (ZeRO-3)": ["parallel.fsdp=4"],
    "dp4 + ZeRO-1": ["parallel.dp=4", "parallel.shard_optimizer=true"],
    "tp4": ["parallel.tp=4"],
    "pp2 x fsdp2": ["parallel.pp=2", "parallel.fsdp=2", "micro_batch_size=2"],
    "tp2 x pp2": ["parallel.tp=2", "parallel.pp=2", "micro_batch_size=2"],
}


def run(root: Path) -> list[dict]:
    data = make_shards(root / "shards", vocab_size=256)
    model = tiny().merge({"n_layers": 4, "tie_embeddings": False})
    base = TrainConfig(model=model, data=str(data), tokens=16 * 64 * 2, batch_tokens=16 * 64,
                       seq_len=64, eval_tokens=64, device="cpu", threads=1, seed=0)
    base.to_json(root / "base.json")
    run_distributed_test("scalinglab.testing.memory_probe:probe_layouts", WORLD,
                         str(root / "base.json"), LAYOUTS, str(root), timeout=600)
    return compare(root, LAYOUTS, WORLD)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(Path(tmp))
    print(f"{'layout':16} {'planner label':30} {'rank':>4} {'part':10} {'measured':>9} "
          f"{'planned':>9} {'ratio':>6}")
    for r in rows:
        print(f"{r['layout']:16} {r['label']:30} {r['rank']:4} {r['part']:10} "
              f"{r['measured']:9d} {r['planned']:9.0f} {r['ratio']:6.3f}")
    print(f"worst |ratio - 1| = {max(abs(r['ratio'] - 1) for r in rows):.1%}")


if __name__ == "__main__":
    main()
