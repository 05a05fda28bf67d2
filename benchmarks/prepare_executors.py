"""``prepare`` on the whole default corpus: inprocess vs datatrove ``local`` with 1, 2, 4 tasks.

For each configuration, in a fresh output directory: wall time, docs/s and MB/s (raw input
documents and bytes read, over the whole ``prepare`` incl. the mixture and n-gram index), the
per-stage times of the sharded runs (from datatrove's per-task stats), and whether the corpus
is the same as the in-process one: byte-identical ``documents-*.jsonl`` and equal drop counts
per step and reason (the MinHash clusters included, kept member = first in input order).

Usage:  python benchmarks/prepare_executors.py [--repeats 2] [--tasks 1 2 4] [--workers 2]
        [--out /tmp/prep-bench]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path

from scalinglab.data.pipeline import PrepareConfig, prepare
from scalinglab.data.sources import SourceConfig, SourceKind


def run(out: Path, **kw) -> tuple[float, dict]:
    shutil.rmtree(out, ignore_errors=True)
    cfg = PrepareConfig(sources=[SourceConfig(kind=SourceKind.default)], out=str(out),
                        progress=False).merge(kw)
    start = time.perf_counter()
    stats = prepare(cfg)
    return time.perf_counter() - start, stats


def stage_times(out: Path) -> str:
    """Wall time per stage: from the end of the previous stage (or the start) to the last
    completion marker datatrove wrote for it."""
    parts, t = [], json.loads((out / "work" / "started.json").read_text())["time"]
    for stage in ("filter", "buckets", "clusters", "finish", "mixture"):
        marks = list((out / "tasks" / stage / "completions").iterdir())
        end = max(m.stat().st_mtime for m in marks)
        parts.append(f"{stage} {end - t:.1f}s")
        t = end
    return ", ".join(parts)


def same(a: Path, b: Path, sa: dict, sb: dict) -> bool:
    docs = sorted(p.name for p in a.glob("documents-*.jsonl"))
    if docs != sorted(p.name for p in b.glob("documents-*.jsonl")):
        return False
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in docs) and all(
        sa.get(k) == sb.get(k) for k in ("sources", "steps", "clean", "mixture", "output"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--tasks", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--workers", type=int, default=2, help="tasks running at once (cores)")
    ap.add_argument("--out", default="/tmp/prep-bench")
    args = ap.parse_args()
    root = Path(args.out)
    configs = [("inprocess", {})] + [(f"local tasks={t}", {"executor": "local", "tasks": t,
                                                           "workers": min(t, args.workers)})
                                     for t in args.tasks]
    ref, rates = None, {name: [] for name, _ in configs}
    for rep in range(args.repeats):
        for name, kw in configs:
            out = root / name.replace(" ", "_").replace("=", "")
            secs, stats = run(out, **kw)
            read = [s["counts"] for s in stats["sources"].values()]
            docs = sum(c.get("read.docs", 0) for c in read)
            mb = sum(c.get("read.bytes", 0) for c in read) / 1e6
            if ref is None:
                ref = (out, stats)
                shutil.copytree(out, root / "reference", dirs_exist_ok=True)
            ok = same(root / "reference", out, ref[1], stats)
            extra = f"  [{stage_times(out)}]" if kw else ""
            rates[name].append((secs, docs / secs, mb / secs, ok))
            print(f"rep {rep} {name:<16} {secs:7.1f} s {docs / secs:8.1f} docs/s "
                  f"{mb / secs:6.3f} MB/s  same corpus as inprocess: {ok}  load "
                  f"{os.getloadavg()[0]:.2f}{extra}", flush=True)
    print(f"median of {args.repeats} (docs {docs}, {mb:.1f} MB read):")
    for name, rows in rates.items():
        med = [statistics.median(r[k] for r in rows) for k in range(3)]
        print(f"  {name:<16} {med[0]:7.1f} s {med[1]:8.1f} docs/s {med[2]:6.3f} MB/s  "
              f"same corpus: {all(r[3] for r in rows)}")


if __name__ == "__main__":
    main()
