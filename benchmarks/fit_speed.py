"""Speed of the Approach 3 fit: the full 4500-start fit on Chinchilla's 240 runs, and 1000
bootstrap refits. Prints wall and CPU time (and the load average: on a shared machine, CPU
time is the fairer figure). Goals (issue 7): fit < 2 s, 1000 refits < 1 min.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/fit_speed.py [--exhaustive]

``--exhaustive`` also runs scipy's L-BFGS-B from every one of the 4500 starts (the procedure
as Epoch ran it) and prints both results side by side. Without ../shared/reference the data
are synthetic (240 runs drawn from the Chinchilla paper's law with noise).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from scalinglab.laws import parametric
from scalinglab.laws.paper import CHINCHILLA_PAPER
from scalinglab.scaling.bootstrap import _weights, draws
from scalinglab.scaling.fitdata import load_csv
from scalinglab.scaling.reference import chinchilla_csv


def chinchilla_runs() -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Epoch's 240 runs (5 largest losses dropped), or synthetic runs if the file is absent."""
    path = chinchilla_csv()
    if path is not None:
        data = load_csv(path)
        keep = np.argsort(data.loss)[:-5]
        return data.params[keep], data.tokens[keep], data.loss[keep], str(path)
    rng = np.random.default_rng(0)
    n = 10 ** rng.uniform(7.8, 10.2, 240)
    d = 10 ** rng.uniform(9.5, 11.5, 240)
    loss = CHINCHILLA_PAPER.loss(n, d) * np.exp(rng.normal(0, 0.01, 240))
    return n, d, loss, "synthetic (reference data not found)"


def timed(fn):
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--exhaustive", action="store_true")
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args()
    n, d, loss, source = chinchilla_runs()
    print(f"data: {source}, {n.size} runs; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    parametric.fit_approach3(n, d, loss)  # warm-up (imports, caches)
    (law, minima), wall, cpu = timed(lambda: parametric.fit_approach3(n, d, loss))
    print(f"approach 3 fit, 4500 starts: wall {wall:.2f} s, cpu {cpu:.2f} s -> "
          f"E={law.E:.4f} A={law.A:.1f} B={law.B:.0f} alpha={law.alpha:.4f} "
          f"beta={law.beta:.4f} a={law.a:.4f} N_opt(5.76e23)={law.optimum(5.76e23)[0]:.3g}")
    w = _weights(draws(n.size, args.bootstrap, 0), n.size)
    laws, wall, cpu = timed(lambda: parametric.FORMS["approach3"].refit(
        minima[:3], n, d, loss, w))
    a = np.array([x.a for x in laws])
    print(f"{args.bootstrap} bootstrap refits: wall {wall:.2f} s, cpu {cpu:.2f} s "
          f"(std of a {a.std():.4f})")
    if args.exhaustive:
        (ref, _), wall, cpu = timed(lambda: parametric.fit_approach3(n, d, loss, exhaustive=True))
        print(f"exhaustive scipy from all 4500 starts: wall {wall:.1f} s, cpu {cpu:.1f} s -> "
              f"E={ref.E:.4f} A={ref.A:.1f} B={ref.B:.0f} alpha={ref.alpha:.4f} "
              f"beta={ref.beta:.4f} a={ref.a:.4f}")


if __name__ == "__main__":
    main()
