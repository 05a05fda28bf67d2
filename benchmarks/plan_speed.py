"""How fast the planner answers for the largest published models (pure Python, no torch).

    PYTHONPATH=src python benchmarks/plan_speed.py
"""

from __future__ import annotations

import time

from scalinglab.model.presets import get_preset
from scalinglab.plan.bigrun import plan_big_run
from scalinglab.plan.hardware import get_gpu
from scalinglab.plan.search import search_layouts


def _best_of(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    cfg, a100 = get_preset("mtnlg-530b"), get_gpu("a100-80gb")
    result = search_layouts(cfg, 2240, a100, 1920, 2048)
    t = _best_of(lambda: search_layouts(cfg, 2240, a100, 1920, 2048))
    print(f"layout search, MT-NLG 530B on 2240 A100s: {result.n_valid} valid layouts "
          f"evaluated in {t * 1e3:.1f} ms ({t / result.n_valid * 1e6:.0f} us each)")
    base = get_preset("chinchilla-70b")
    t = _best_of(lambda: plan_big_run(5.76e23, 1024, a100, base=base))
    print(f"plan run, 5.76e23 FLOPs on 1024 A100s (law -> shape -> layout -> loss): "
          f"{t * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
