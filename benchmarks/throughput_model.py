"""The planner's iteration-time model against published training measurements.

Only the layout goes in (model shape, GPU kind, degrees, batch, sequence, recomputation); no
measured time. Prints predicted vs published and the error of each. Run:

    PYTHONPATH=src python benchmarks/throughput_model.py [--json]

Sources:
- MT-NLG 530B: Smith et al. 2022, "Using DeepSpeed and Megatron to Train Megatron-Turing NLG
  530B", Table 1: 280 / 350 / 420 DGX A100 nodes, TP 8, PP 35, batch 1920, seq 2048, full
  recomputation, ZeRO-1: 60.1 / 50.2 / 44.4 s per iteration.
- torchtitan, docs/performance.md (December 2024), Table 1: Llama 3.1 8B, 8 H100 (96 GB
  HBM2e, 500 W), FSDP, bf16, seq 8192, local batch 2, selective AC: 5,762 tokens/s per GPU,
  6,667 with torch.compile.
- torchtitan, docs/performance.md (earlier version): Llama 3 8B on 64 A100 80GB, FSDP, local
  batch 1, seq 8192, selective op AC: 2,973 tokens/s per GPU; 70B, full AC: 323.
"""

from __future__ import annotations

import argparse
import json

from scalinglab.model.presets import get_preset
from scalinglab.plan.hardware import get_gpu
from scalinglab.plan.layout import Layout, Recompute
from scalinglab.plan.timing import EfficiencyConfig, estimate_iteration


def cases() -> list[dict]:
    """(name, model, gpu, layout, seq, compiled, published value, unit)."""
    mtnlg = get_preset("mtnlg-530b")
    out = []
    for nodes, seconds in ((280, 60.1), (350, 50.2), (420, 44.4)):
        layout = Layout(tp=8, pp=35, dp=nodes * 8 // 280, zero_stage=1, micro_batch=1,
                        global_batch=1920, recompute=Recompute.full)
        out.append(dict(name=f"MT-NLG 530B, {nodes} nodes", model=mtnlg, gpu="a100-80gb",
                        layout=layout, seq=2048, compiled=False, published=seconds,
                        unit="s/iter"))
    l8 = get_preset("llama3-8b")  # Llama 3.1 8B has the same shape
    for compiled, tps in ((False, 5762), (True, 6667)):
        layout = Layout(dp=8, zero_stage=3, micro_batch=2, global_batch=16,
                        recompute=Recompute.selective)
        out.append(dict(name="torchtitan 8B, 8 H100" + (" compile" if compiled else ""),
                        model=l8, gpu="h100-96gb-500w", layout=layout, seq=8192,
                        compiled=compiled, published=tps, unit="tok/s/GPU"))
    layout = Layout(dp=64, zero_stage=3, micro_batch=1, global_batch=64,
                    recompute=Recompute.selective)
    out.append(dict(name="torchtitan 8B, 64 A100", model=l8, gpu="a100-80gb", layout=layout,
                    seq=8192, compiled=False, published=2973, unit="tok/s/GPU"))
    l70 = get_preset("llama3-70b")
    layout = Layout(dp=64, zero_stage=3, micro_batch=1, global_batch=64,
                    recompute=Recompute.full)
    out.append(dict(name="torchtitan 70B, 64 A100", model=l70, gpu="a100-80gb",
                    layout=layout, seq=8192, compiled=False, published=323, unit="tok/s/GPU"))
    return out


def predict(case: dict) -> tuple[float, dict]:
    eff = EfficiencyConfig(compiled=case["compiled"])
    est = estimate_iteration(case["model"], case["layout"], get_gpu(case["gpu"]), case["seq"],
                             eff)
    value = est.total_s if case["unit"] == "s/iter" else est.tokens_per_gpu_s
    return value, est.as_dict()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = []
    for case in cases():
        value, est = predict(case)
        rows.append({"case": case["name"], "layout": case["layout"].describe(),
                     "gpu": case["gpu"], "unit": case["unit"], "published": case["published"],
                     "predicted": value, "error": value / case["published"] - 1,
                     "mfu": est["mfu"]})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"{'case':30} {'layout':34} {'unit':10} {'published':>9} {'predicted':>9} "
          f"{'error':>7} {'MFU':>6}")
    for r in rows:
        print(f"{r['case']:30} {r['layout']:34} {r['unit']:10} {r['published']:9.1f} "
              f"{r['predicted']:9.1f} {r['error']:+7.1%} {r['mfu']:6.1%}")


if __name__ == "__main__":
    main()
