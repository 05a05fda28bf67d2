"""``scalinglab plan``: memory per GPU, throughput, layout search, depth vs width, big-run plan.

    scalinglab plan hardware
    scalinglab plan memory --model mtnlg-530b --gpu a100-80gb tp=8 pp=35 dp=8 global_batch=1920
    scalinglab plan throughput --model mtnlg-530b --nodes 280 350 420 --batch 1920 \\
        --iter-time 60.1 50.2 44.4
    scalinglab plan layout --model mtnlg-530b --gpus 2240 --gpu a100-80gb --batch 1920
    scalinglab plan depth --params 175e9 1e12 --model gpt3-175b
    scalinglab plan run --budget 5.76e23 --gpus 1024 --gpu a100-80gb

Every subcommand takes ``--json``. ``key=value`` overrides set the Layout (memory) or the
search space and efficiency model (layout, run).
"""

from __future__ import annotations

import dataclasses
import typing

import yaml

from scalinglab.cli.common import print_json, print_table
from scalinglab.config import unknown_field
from scalinglab.errors import ScalinglabError
from scalinglab.io import atomic_write_text
from scalinglab.laws.fitsfile import LOSS_METHODS, load_fits
from scalinglab.model.accounting import count_params
from scalinglab.model.config import ModelConfig
from scalinglab.model.presets import model_from_spec
from scalinglab.plan import depth_width, launch
from scalinglab.plan.bigrun import plan_big_run
from scalinglab.plan.hardware import GIB, get_gpu, load_catalogue
from scalinglab.plan.layout import Layout, check_layout
from scalinglab.plan.memory import memory_per_gpu, training_state_bytes
from scalinglab.plan.search import SearchSpace, search_layouts
from scalinglab.plan.timing import (
    EfficiencyConfig,
    days_to_train,
    iteration_time,
    tflops_per_gpu,
)
from scalinglab.units import format_count


def _gib(x: float) -> str:
    return f"{x / GIB:.1f}"


def _split_knobs(overrides: list[str]) -> tuple[SearchSpace, EfficiencyConfig]:
    """Route ``key=value`` overrides to the SearchSpace or the EfficiencyConfig; a scalar
    given for a list knob (``tp=8``) becomes a one-element list."""
    search, eff = {}, {}
    hints = typing.get_type_hints(SearchSpace)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ScalinglabError(f"override {item!r} is not of the form key=value")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            value = raw
        if key in hints:
            search[key] = value if isinstance(value, list) else [value]
        elif key in {f.name for f in dataclasses.fields(EfficiencyConfig)}:
            eff[key] = value
        else:
            known = sorted(hints) + [f.name for f in dataclasses.fields(EfficiencyConfig)]
            raise ScalinglabError(unknown_field(key, known).replace("field", "override", 1))
    return SearchSpace().merge(search), EfficiencyConfig().merge(eff)


def run_hardware(args) -> int:
    rows = [spec.as_dict() for spec in load_catalogue(args.catalogue).values()]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, list(rows[0]))
    return 0


def run_memory(args) -> int:
    cfg, gpu = model_from_spec(args.model), get_gpu(args.gpu, args.catalogue)
    layout = Layout().merge(args.overrides)
    check_layout(layout, cfg, gpu)
    report = memory_per_gpu(cfg, layout, args.seq, gpu)
    state = training_state_bytes(cfg)
    if args.json:
        print_json({"model": args.model, "gpu": gpu.name, "layout": layout.as_dict(),
                    "training_state_bytes": state, **report.as_dict()})
        return 0
    print(f"{args.model}: {format_count(count_params(cfg).total)} parameters; weights + grads + "
          f"Adam = {state / 1e12:.2f} TB at 16 bytes/parameter")
    print(f"layout {layout.describe()} on {layout.gpus} x {gpu.name} ({gpu.memory_gib:g} GiB)\n")
    cols = ["weights", "gradients", "optimizer", "activations", "buffers", "total"]
    rows = [{"stage": s.stage, **{c: _gib(getattr(s, c)) for c in cols}, "dominant": s.dominant}
            for s in report.stages]
    print_table(rows, ["stage", *[f"{c}" for c in cols], "dominant"])
    verdict = "fits" if report.fits else "does NOT fit"
    print(f"\n(GiB per GPU) worst stage {report.worst.stage}: {_gib(report.worst.total)} GiB "
          f"-> {verdict} in {gpu.memory_gib:g} GiB; dominated by {report.worst.dominant}")
    return 0


def _broadcast(a: list, b: list, what: str) -> tuple[list, list]:
    if len(a) == len(b):
        return a, b
    if len(a) == 1:
        return a * len(b), b
    if len(b) == 1:
        return a, b * len(a)
    raise ScalinglabError(f"{what}: give one value or as many as the other list "
                          f"({len(a)} vs {len(b)})")


def run_throughput(args) -> int:
    cfg, gpu = model_from_spec(args.model), get_gpu(args.gpu, args.catalogue)
    gpus = args.gpus or [n * gpu.gpus_per_node for n in args.nodes]
    given = args.iter_time or args.tflops
    gpus, given = _broadcast(gpus, given, "--gpus/--nodes vs --iter-time/--tflops")
    recompute = not args.no_recompute
    rows = []
    for n, x in zip(gpus, given, strict=True):
        if n <= 0 or x <= 0:
            raise ScalinglabError(f"GPU counts, times and TFLOP/s must be positive: {n}, {x}")
        t = x if args.iter_time else iteration_time(cfg, args.batch, args.seq, x, n, recompute)
        tf = tflops_per_gpu(cfg, args.batch, args.seq, t, n, recompute)
        model_tf = tflops_per_gpu(cfg, args.batch, args.seq, t, n, recompute=False)
        rows.append({"gpus": n, "nodes": n / gpu.gpus_per_node, "iteration_s": t,
                     "tflops_per_gpu": tf, "model_tflops_per_gpu": model_tf,
                     "mfu": model_tf * 1e12 / gpu.peak_flops,
                     "days": days_to_train(args.tokens, args.batch, args.seq, t)})
    if args.json:
        print_json({"model": args.model, "batch": args.batch, "seq": args.seq,
                    "tokens": args.tokens, "recompute": recompute, "rows": rows})
        return 0
    formula = "96" if recompute else "72"
    print(f"{args.model}, batch {args.batch} x {args.seq}; TFLOP/s by the Megatron formula "
          f"({formula} B s l h^2 (1 + s/6h + V/16lh)); days for {args.tokens:.3g} tokens\n")
    print_table([{"gpus": r["gpus"], "nodes": f"{r['nodes']:g}",
                  "s/iter": f"{r['iteration_s']:.1f}", "TFLOP/s/GPU": f"{r['tflops_per_gpu']:.1f}",
                  "model TFLOP/s": f"{r['model_tflops_per_gpu']:.1f}",
                  f"MFU ({gpu.name})": f"{r['mfu']:.1%}", "days": f"{r['days']:.1f}"}
                 for r in rows], ["gpus", "nodes", "s/iter", "TFLOP/s/GPU", "model TFLOP/s",
                                  f"MFU ({gpu.name})", "days"])
    return 0


def _candidate_row(rank: int, c, days: float | None) -> dict:
    e, m = c.estimate, c.memory
    extra = {"days": f"{days:.1f}"} if days is not None else {}
    return {**extra, "#": rank, "layout": c.layout.describe(), "m": c.layout.num_micro_batches,
            "s/iter": f"{e.total_s:.2f}", "bubble": f"{e.bubble_s / e.total_s:.0%}",
            "comm": f"{(e.tp_comm_s + e.pp_comm_s + e.dp_comm_s) / e.total_s:.0%}",
            "TFLOP/s/GPU": f"{e.tflops_per_gpu:.0f}", "MFU": f"{e.mfu:.1%}",
            "GiB/GPU": _gib(m.worst.total), "dominant": m.worst.dominant}


def _launch(args, cfg: ModelConfig, gpu, candidate, preset: str, tokens: float) -> dict:
    """The run config, torchrun command and Slurm script of ``candidate``; writes the config
    (``--write-config``) and the script (``--slurm``, ``-`` prints it) when asked."""
    run = launch.run_config(cfg, candidate.layout, args.seq, preset, tokens)
    path = args.write_config
    if path:
        launch.write_config(run, path)
    script = launch.slurm_script(run, gpu, path)
    if args.slurm and args.slurm != "-":
        atomic_write_text(args.slurm, script)
    return {"layout": candidate.layout.describe(), "config": run.as_dict(),
            "command": launch.torchrun_command(run, gpu, path), "slurm": script}


def _print_launch(args, info: dict) -> None:
    print(f"\nrun {info['layout']}:\n  {info['command']}")
    if args.write_config:
        print(f"  (config written to {args.write_config})")
    if args.slurm == "-":
        print("\n" + info["slurm"])
    elif args.slurm:
        print(f"  (Slurm script written to {args.slurm}; sbatch it with DATA and OUT set)")


def run_layout(args) -> int:
    cfg, gpu = model_from_spec(args.model), get_gpu(args.gpu, args.catalogue)
    space, eff = _split_knobs(args.overrides)
    result = search_layouts(cfg, args.gpus, gpu, args.batch, args.seq, space, eff)
    top = result.feasible[: args.top]
    if not 1 <= args.pick <= len(result.feasible):
        raise ScalinglabError(f"--pick {args.pick}: there are {len(result.feasible)} feasible "
                              "layouts")
    info = _launch(args, cfg, gpu, result.feasible[args.pick - 1],
                   launch.preset_name(args.model), args.tokens or 0)
    days = [days_to_train(args.tokens, args.batch, args.seq, c.estimate.total_s)
            if args.tokens else None for c in top]
    if args.json:
        rows = [{**c.as_dict(), "days": d} for c, d in zip(top, days, strict=True)]
        print_json({"model": args.model, "gpus": args.gpus, "gpu": gpu.name,
                    "batch": args.batch, "seq": args.seq, "tokens": args.tokens,
                    "n_valid": result.n_valid, "n_out_of_memory": result.n_out_of_memory,
                    "n_feasible": len(result.feasible), "top": rows, "launch": info})
        return 0
    print(f"{args.model} on {args.gpus} x {gpu.name}, batch {args.batch} x {args.seq}: "
          f"{result.n_valid} valid layouts, {result.n_out_of_memory} do not fit, "
          f"{len(result.feasible)} feasible; fastest {len(top)}:\n")
    cols = ["#", "layout", "m", "s/iter", "bubble", "comm", "TFLOP/s/GPU", "MFU", "GiB/GPU",
            "dominant"] + (["days"] if args.tokens else [])
    print_table([_candidate_row(i + 1, c, d) for i, (c, d) in enumerate(zip(top, days,
                                                                            strict=True))], cols)
    _print_launch(args, info)
    return 0


def run_depth(args) -> int:
    rows = []
    for p in args.params or []:
        rec = depth_width.recommend(p)
        rows.append({"what": f"{format_count(p)} params", **rec.as_dict()})
    for name in args.model or []:
        v = depth_width.depth_verdict(model_from_spec(name))
        rows.append({"what": name, **v})
    if not rows:
        raise ScalinglabError("plan depth: give --params and/or --model")
    if args.json:
        print_json(rows)
        return 0
    print("Levine et al. (2020): ln(width) = 5.039 + 0.0555 depth, size 12 depth width^2\n")
    print_table([{"what": r["what"],
                  "depth (rec.)": f"{r.get('depth', r.get('recommended_depth')):.0f}",
                  "width (rec.)": f"{r.get('width', r.get('recommended_width')):.0f}",
                  "actual": f"{r['n_layers']}/{r['d_model']}" if "n_layers" in r else "-",
                  "verdict": r.get("verdict", "-")} for r in rows],
                ["what", "depth (rec.)", "width (rec.)", "actual", "verdict"])
    return 0


def run_plan(args) -> int:
    gpu = get_gpu(args.gpu, args.catalogue)
    space, eff = _split_knobs(args.overrides)
    fits = load_fits(args.fits) if args.fits else None
    plan = plan_big_run(args.budget, args.gpus, gpu, fits=fits, law=args.law,
                        base=model_from_spec(args.base), global_batch=args.batch,
                        seq_len=args.seq, space=space, eff=eff)
    info = _launch(args, plan.model, gpu, plan.best, "", plan.tokens)
    if args.json:
        print_json({**plan.as_dict(), "launch": info})
        return 0
    m, c = plan.model, plan.best
    rows = [
        ("budget", f"{plan.budget:.3g} FLOPs ({plan.flop_convention})"),
        ("law", f"{plan.law} of {plan.source}"),
        ("compute-optimal", f"N = {format_count(plan.n_opt)}, D = {format_count(plan.d_opt)}"),
        ("shape", f"{m.n_layers} layers x {m.d_model} wide, {m.n_heads} heads of {m.head_dim}, "
                  f"d_ff {m.d_ff}, vocab {m.vocab_size}"),
        ("parameters", f"{format_count(plan.params_total)} total, "
                       f"{format_count(plan.params_non_embedding)} non-embedding"),
        ("tokens", f"{format_count(plan.tokens)} ({plan.iterations} steps of "
                   f"{args.batch} x {args.seq})"),
        ("layout", f"{c.layout.describe()} (best of {plan.n_feasible} feasible)"),
        ("memory/GPU", f"{_gib(c.memory.worst.total)} GiB of {gpu.memory_gib:g} "
                       f"(dominant: {c.memory.worst.dominant})"),
        ("step time", f"{c.estimate.total_s:.2f} s, {c.estimate.tflops_per_gpu:.0f} TFLOP/s/GPU, "
                      f"MFU {c.estimate.mfu:.1%}"),
        ("time", f"{plan.days:.1f} days on {args.gpus} x {gpu.name}, "
                 f"{plan.gpu_hours:.3g} GPU-hours"),
    ]
    if plan.loss is not None:
        ci = plan.loss_interval
        rows.append(("predicted loss", f"{plan.loss:.3f}" + (
            f" (95% predictive {ci[0]:.3f} .. {ci[1]:.3f})" if ci else "")))
    if plan.n_interval:
        rows.append(("N 95% interval", " .. ".join(format_count(x) for x in plan.n_interval)))
    rows += [("note", n) for n in plan.notes]
    print_table([{"item": k, "value": v} for k, v in rows], ["item", "value"])
    _print_launch(args, info)
    return 0


def _launch_flags(p) -> None:
    p.add_argument("--write-config", metavar="RUN.YAML",
                   help="write the chosen layout's TrainConfig (the command then reads it)")
    p.add_argument("--slurm", metavar="FILE",
                   help="write an sbatch script for the chosen layout (- prints it)")


def _common(p, gpu_default: str | None = "a100-80gb") -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--catalogue", help="YAML/JSON file adding GPU kinds (name -> GPUSpec fields)")
    if gpu_default is not None:
        p.add_argument("--gpu", default=gpu_default, help="GPU kind (see `plan hardware`)")


def register(subparsers) -> None:
    p = subparsers.add_parser("plan", help="cluster planner: memory, throughput, layouts, "
                              "depth vs width, the big run")
    sub = p.add_subparsers(dest="plan_cmd", metavar="WHAT", required=True)

    h = sub.add_parser("hardware", help="the GPU catalogue")
    _common(h, None)
    h.set_defaults(func=run_hardware)

    m = sub.add_parser("memory", help="memory per GPU of one layout")
    m.add_argument("--model", required=True, help="preset or LAYERS/WIDTH/HEADS[/VOCAB]")
    m.add_argument("--seq", type=int, default=2048, help="sequence length")
    m.add_argument("overrides", nargs="*", help="Layout fields: tp=8 pp=35 dp=8 ...")
    _common(m)
    m.set_defaults(func=run_memory)

    t = sub.add_parser("throughput", help="TFLOP/s per GPU from iteration times, or back")
    t.add_argument("--model", required=True, help="preset or LAYERS/WIDTH/HEADS[/VOCAB]")
    where = t.add_mutually_exclusive_group(required=True)
    where.add_argument("--gpus", type=int, nargs="+", help="total GPUs (one or several)")
    where.add_argument("--nodes", type=int, nargs="+", help="nodes of --gpu (one or several)")
    t.add_argument("--batch", type=int, required=True, help="global batch (sequences)")
    t.add_argument("--seq", type=int, default=2048, help="sequence length")
    given = t.add_mutually_exclusive_group(required=True)
    given.add_argument("--iter-time", type=float, nargs="+", help="seconds per iteration")
    given.add_argument("--tflops", type=float, nargs="+", help="TFLOP/s per GPU")
    t.add_argument("--tokens", type=float, default=270e9, help="tokens to train (for days)")
    t.add_argument("--no-recompute", action="store_true",
                   help="count 72 (no recomputation) instead of 96 FLOPs factor")
    _common(t)
    t.set_defaults(func=run_throughput)

    lay = sub.add_parser("layout", help="search tensor x pipeline x data layouts")
    lay.add_argument("--model", required=True, help="preset or LAYERS/WIDTH/HEADS[/VOCAB]")
    lay.add_argument("--gpus", type=int, required=True, help="total GPUs")
    lay.add_argument("--batch", type=int, required=True, help="global batch (sequences)")
    lay.add_argument("--seq", type=int, default=2048, help="sequence length")
    lay.add_argument("--top", type=int, default=10, help="how many layouts to print")
    lay.add_argument("--tokens", type=float, help="tokens to train: adds days per layout")
    lay.add_argument("--pick", type=int, default=1,
                     help="which ranked layout the command / config is for (default: fastest)")
    _launch_flags(lay)
    lay.add_argument("overrides", nargs="*",
                     help="search space / efficiency: tp=[8] pp=[35] matmul_efficiency=0.5")
    _common(lay)
    lay.set_defaults(func=run_layout)

    d = sub.add_parser("depth", help="Levine et al. depth-to-width recommendation")
    d.add_argument("--params", type=float, nargs="+", help="parameter budgets")
    d.add_argument("--model", nargs="+", help="presets or shapes to judge")
    d.add_argument("--json", action="store_true", help="print JSON instead of a table")
    d.set_defaults(func=run_depth)

    r = sub.add_parser("run", help="budget -> N, D, shape, layout, memory, days, loss")
    r.add_argument("--budget", type=float, required=True, help="training FLOPs")
    r.add_argument("--fits", help="fits.json of a scaling study (default: Chinchilla paper)")
    r.add_argument("--law", choices=["approach1", "approach2", *LOSS_METHODS],
                   help="which compute-optimal law (default: the one fits.json recommends, "
                        "else approach1 or the first present)")
    r.add_argument("--gpus", type=int, required=True, help="total GPUs")
    r.add_argument("--batch", type=int, default=1536, help="global batch (sequences)")
    r.add_argument("--seq", type=int, default=2048, help="sequence length")
    r.add_argument("--base", default="chinchilla-70b",
                   help="preset whose family (norm, positions, vocab) the shape keeps")
    r.add_argument("overrides", nargs="*", help="search space / efficiency overrides")
    _launch_flags(r)
    _common(r)
    r.set_defaults(func=run_plan)
