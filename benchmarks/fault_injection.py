"""Fault injection: SIGKILL every stage at seeded points, resume, compare with a clean run.

    PYTHONPATH=src python benchmarks/fault_injection.py --points 22 --seed 0

Prints each kill point (``site:n (file)`` of the ``scalinglab.io`` hook, or when the sweep's
parent was killed), per stage ``K kill points, K resumed identically`` and the total; exits 1
unless every kill point resumed identically. The harness is ``scalinglab.testing.faults``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from scalinglab.testing.faults import count_line, run_all


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--points", type=int, default=22, help="kill points across the stages")
    p.add_argument("--seed", type=int, default=0, help="chooses the kill points")
    p.add_argument("--workdir", help="keep the workspace here (default: a temporary one)")
    args = p.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="scalinglab-faults-") as tmp:
        root = Path(args.workdir or tmp)
        results = run_all(root, args.points, args.seed, report=lambda s: print(s, flush=True))
    line = count_line(results)
    print(f"{line} ({time.perf_counter() - start:.0f}s, seed {args.seed})")
    return 0 if all(kp.identical for kps in results.values() for kp in kps) else 1


if __name__ == "__main__":
    sys.exit(main())
