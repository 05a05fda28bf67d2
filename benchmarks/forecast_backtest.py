"""The forecast's track record on real published runs that nobody here trained.

    PYTHONPATH=src python benchmarks/forecast_backtest.py [--methods approach3,auto] [--quick]

Prints, for each method (``auto`` = the method a backtest inside the training runs picks,
which is what ``scalinglab fit`` records and ``predict`` uses):

1. Gadre et al. 2024 (``shared/reference/gadre2024/runs.csv``, ``loss_c4_val``), per corpus:
   fit on the runs with N < 1e9 and 6ND <= 1.9e19 (1/300 of the 6.9B run's compute), then on
   6ND <= 1e19, and predict every ``open_lm_1b`` run and the ``open_lm_7b-1.0`` run: the
   error of each and whether its 95% predictive interval covers it.
   Target: every one within 1% (2% at the 1e19 cut), each inside its interval.
2. Chinchilla (Epoch's digitisation, 245 runs): fit on C <= C_max / 100, predict the other
   runs. Target: median |error| <= 1%, max <= 3%, coverage >= 90%.
   Then the in-sample ceiling: each form fitted on every run of the corpus, held-out ones
   included; its errors on those runs bound what any forecast of that form can reach.
3. Calibration: over both studies (Gadre per corpus) and factors 2..300, the share of held-out
   runs inside their 95% interval (target >= 90%) and the median interval width.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from scalinglab.laws.parametric import FORMS
from scalinglab.scaling.backtest import DEFAULT_FACTORS, backtest, score_split
from scalinglab.scaling.fitdata import load_csv
from scalinglab.scaling.reference import shared_dir

CORPORA = ("c4_original", "rpj", "rw_original")
CUTS = (1.9e19, 1e19)


def gadre(corpus: str):
    path = shared_dir() / "reference" / "gadre2024" / "runs.csv"
    return load_csv(path, loss_column="loss_c4_val", where={"dataset": corpus})


def chinchilla():
    return load_csv(shared_dir() / "reference" / "chinchilla" / "svg_extracted_data.csv")


def gadre_targets(methods, n_boot: int) -> None:
    print("== Gadre et al. 2024: predict the 1.4B and 6.9B runs (loss_c4_val) ==")
    for corpus in CORPORA:
        data = gadre(corpus)
        held = np.array(["open_lm_1b" in r or "open_lm_7b-1.0" in r for r in data.run_id])
        for cut in CUTS:
            train = (data.params < 1e9) & (6 * data.params * data.tokens <= cut)
            for s in score_split(data.subset(train), data.subset(held), methods, n_boot):
                if s.error:
                    print(f"{corpus:12s} cut {cut:.2g} {s.method:15s} not fitted: {s.error}")
                    continue
                pick = f" ({s.picked})" if s.picked else ""
                for r in s.runs():
                    print(f"{corpus:12s} cut {cut:.2g} {s.method + pick:28s} {r['run_id']:28s} "
                          f"true {r['truth']:.4f} pred {r['pred']:.4f} "
                          f"err {r['error_pct']:+6.2f}% [{r['lo']:.4f}, {r['hi']:.4f}] "
                          f"{'covered' if r['covered'] else 'MISSED'}")


def gadre_in_sample_ceiling() -> None:
    """How close each law form gets to the held-out runs when they are *in* its fit (every run
    of the corpus fitted): no forecast of the same form can be expected to do better."""
    print("\n== Gadre et al.: in-sample ceiling (the held-out runs fitted too) ==")
    for corpus in CORPORA:
        data = gadre(corpus)
        held = np.array(["open_lm_1b" in r or "open_lm_7b-1.0" in r for r in data.run_id])
        for method in ("approach3", "approach3_tied"):
            form = FORMS[method]
            sel = form.selects(data.params, data.tokens)
            law, _ = form.fit(data.params[sel], data.tokens[sel], data.loss[sel])
            err = 100 * (law.loss(data.params[held], data.tokens[held]) / data.loss[held] - 1)
            runs = ", ".join(f"{r.split('-', 1)[1]} {e:+.2f}%"
                             for r, e in zip(np.asarray(data.run_id)[held], err, strict=True))
            print(f"{corpus:12s} {method:15s} fitted on all {int(sel.sum())} runs: {runs}")


def chinchilla_target(methods, n_boot: int) -> None:
    print("\n== Chinchilla: fit on C <= C_max / 100, predict the rest ==")
    for s in backtest(chinchilla(), (100,), methods, n_boot=n_boot):
        r = s.summary()
        if "median_abs_err_pct" in r:
            print(f"{r['method']:15s} {r.get('picked', ''):15s} held-out {r['n_heldout']:3d} "
                  f"median |err| {r['median_abs_err_pct']:.2f}%  max {r['max_abs_err_pct']:.2f}% "
                  f"coverage {r['coverage']:.0%}  median width {r['median_width_pct']:.1f}%")
        else:
            print(f"{r['method']:15s} {r.get('error', 'no run predictions')}")


def calibration(methods, n_boot: int, factors) -> None:
    print("\n== Calibration over studies x factors ==")
    cases = [("chinchilla", chinchilla())] + [(f"gadre/{c}", gadre(c)) for c in CORPORA]
    inside: dict[str, list] = {}
    width: dict[str, list] = {}
    for name, data in cases:
        for s in backtest(data, factors, methods, n_boot=n_boot):
            if s.error or not s.predicts_runs or not s.truth.size:
                continue
            ok = (s.truth >= s.lo) & (s.truth <= s.hi)
            inside.setdefault(s.method, []).extend(ok)
            width.setdefault(s.method, []).extend((s.hi - s.lo) / s.pred * 100)
            r = s.summary()
            print(f"{name:18s} k={s.factor:<5g} {s.method:15s} {r.get('picked', ''):15s} "
                  f"n={r['n_heldout']:3d} median |err| {r['median_abs_err_pct']:5.2f}% "
                  f"max {r['max_abs_err_pct']:5.2f}% coverage {r['coverage']:4.0%} "
                  f"width {r['median_width_pct']:.1f}%")
    for m in inside:
        print(f"overall {m:15s}: coverage {np.mean(inside[m]):.1%} of {len(inside[m])} "
              f"held-out runs, median width {np.median(width[m]):.1f}%")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--methods", default="approach3,approach3_tied,kaplan,auto")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--quick", action="store_true", help="targets only, no calibration sweep")
    args = ap.parse_args()
    if shared_dir() is None:
        raise SystemExit("shared/reference is not beside the repository (SCALINGLAB_SHARED)")
    methods = tuple(args.methods.split(","))
    t = time.perf_counter()
    gadre_targets(methods, args.bootstrap)
    gadre_in_sample_ceiling()
    chinchilla_target(methods, args.bootstrap)
    if not args.quick:
        calibration(methods, args.bootstrap, DEFAULT_FACTORS)
    print(f"\n({time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
