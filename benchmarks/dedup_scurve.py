"""Print the MinHash LSH S-curve (theory) and the rates measured on the planted benchmark.

    PYTHONPATH=src python benchmarks/dedup_scurve.py [--pairs 4000] [--bands 20 --rows 6]

Theory: a pair with Jaccard s becomes an LSH candidate with probability 1 - (1 - s^r)^b, and
passes the check when at least ``verify_threshold`` of the b*r signature values agree
(binomial; treated as independent of banding, which slightly understates it), averaged
over the Jaccard values of the pairs in each bin. Measured: the
share of planted pairs in each Jaccard bin that end up in the same cluster, and the goals
(recall >= 0.95 at J >= 0.8, <= 1% flagged at J <= 0.5). Also prints docs/s of the clustering.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy.stats import binom

from scalinglab.data.planted import make_planted_pairs, score_clusters
from scalinglab.data.steps.dedup import MinHashConfig, cluster_texts


def theory(s: float, cfg: MinHashConfig) -> tuple[float, float]:
    """(candidate probability, candidate-and-verified probability) at Jaccard s."""
    lsh = 1 - (1 - s**cfg.rows_per_band) ** cfg.num_bands
    need = int(np.ceil(cfg.verify_threshold * cfg.num_perm))
    return lsh, lsh * float(binom.sf(need - 1, cfg.num_perm, s))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=4000)
    p.add_argument("--bands", type=int, default=MinHashConfig.num_bands)
    p.add_argument("--rows", type=int, default=MinHashConfig.rows_per_band)
    p.add_argument("--verify", type=float, default=MinHashConfig.verify_threshold)
    args = p.parse_args()
    cfg = MinHashConfig(num_bands=args.bands, rows_per_band=args.rows, verify_threshold=args.verify)
    planted = make_planted_pairs(args.pairs)
    start = time.perf_counter()
    labels = cluster_texts(planted.texts, cfg)
    secs = time.perf_counter() - start
    same = labels[0::2] == labels[1::2]
    print(f"bands x rows = {cfg.num_bands} x {cfg.rows_per_band} ({cfg.num_perm} permutations), "
          f"verify_threshold = {cfg.verify_threshold}")
    print(f"{'jaccard':>10} {'pairs':>6} {'measured':>9} {'theory_lsh':>11} {'theory':>8}")
    edges = np.linspace(0, 1, 11)
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        sel = (planted.jaccard >= lo) & (planted.jaccard < hi if hi < 1 else True)
        # theory averaged over the bin's pairs (the curve is steep: a bin midpoint misleads)
        points = planted.jaccard[sel] if sel.any() else np.array([(lo + hi) / 2])
        lsh, full = np.mean([theory(float(s), cfg) for s in points], axis=0)
        rate = f"{same[sel].mean():.4f}" if sel.any() else "-"
        print(f"{lo:4.1f}-{hi:3.1f}  {int(sel.sum()):6d} {rate:>9} {lsh:11.4f} {full:8.4f}")
    for s in (0.5, 0.8):
        lsh, full = theory(s, cfg)
        print(f"theory at J={s}: candidate {lsh:.4f}, flagged {full:.6f}")
    score = score_clusters(planted, labels)
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in score.items()})
    ok = score["recall_j_ge_0.8"] >= 0.95 and score["flagged_j_le_0.5"] <= 0.01
    print(f"goal (recall >= 0.95, flagged <= 0.01): {'met' if ok else 'NOT met'}")
    n = len(planted.texts)
    print(f"clustering speed: {n / secs:.0f} docs/s ({n} docs of ~200 words, {secs:.2f} s)")


if __name__ == "__main__":
    main()
