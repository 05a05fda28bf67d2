"""``scalinglab sweep plan|run|status``: scaling studies as resumable tables of runs."""

from __future__ import annotations

import sys
from pathlib import Path

from scalinglab.cli.common import print_json, print_table
from scalinglab.scaling.study_dir import load_plan, load_sweep_config, plan_study
from scalinglab.scaling.sweep import params_of, plan_warnings
from scalinglab.scaling.sweep_config import RunSpec, SweepConfig
from scalinglab.units import format_count


def build_config(args) -> SweepConfig:
    """--config file (or the study's own sweep.json when re-planning), flags, overrides."""
    study_cfg = Path(args.study) / "sweep.json"
    if args.config:
        cfg = SweepConfig.from_file(args.config)
    elif study_cfg.exists():
        cfg = SweepConfig.from_file(study_cfg)
    else:
        cfg = SweepConfig()
    if args.data:
        # absolute, so each run's config.json finds the shards from any directory
        cfg = cfg.merge({"data": str(Path(args.data).resolve())})
    return cfg.merge(list(args.overrides))


def plan_rows(specs: list[RunSpec], count: str) -> list[dict]:
    """Table rows; ``params`` is the model that runs (in the study's ``count``), ``target``
    the size its shape was generated for."""
    rows = []
    for s in specs:
        m, t = s.model, s.train
        rows.append({
            "run_id": s.run_id, "kind": s.kind,
            "budget": "" if s.budget is None else f"{s.budget:.2e}",
            "shape": f"{m.n_layers}x{m.d_model}", "params": format_count(params_of(m, count)),
            "target": format_count(s.target_params),
            "tokens": format_count(t["tokens"]), "batch": t["batch_tokens"],
            "lr": f"{t['lr']:.2e}",
        })
    return rows


def run_plan(args) -> int:
    from scalinglab.io import locked
    from scalinglab.scaling.study import extend_brackets

    with locked(args.study, "a study"):  # plan.json is rewritten: not under a running sweep
        return _plan(args, extend_brackets)


def _plan(args, extend_brackets) -> int:
    from scalinglab.scaling.study import bracket_warnings

    if args.extend:
        new = extend_brackets(args.study)
        if not args.json:
            print(f"{args.study}: bracketing added {len(new)} run(s)")
    else:
        new = plan_study(args.study, build_config(args))
        if not args.json:
            total = len(load_plan(args.study))
            print(f"{args.study}: {len(new)} new run(s), {total} planned in all")
    cfg = load_sweep_config(args.study)
    if args.json:
        print_json([s.as_dict() for s in new])
    elif new:
        print(f"params: {cfg.count} parameters of the planned model (the study's count under "
              f"flop_convention={cfg.flop_convention.value}); target: the size asked for")
        print_table(plan_rows(new, cfg.count), ["run_id", "kind", "budget", "shape", "params",
                                                "target", "tokens", "batch", "lr"])
    for w in plan_warnings(cfg, new):
        print(f"warning: {w}", file=sys.stderr)
    if args.extend:
        for w in bracket_warnings(args.study):
            print(f"warning: {w}", file=sys.stderr)
    return 0


def run_run(args) -> int:
    from scalinglab.scaling.launch import run_sweep

    out = run_sweep(args.study, workers=args.workers, launcher=args.launcher,
                    retry_failed=args.retry_failed, bracket=not args.no_bracket,
                    progress=not args.quiet)
    if args.json:
        print_json({"complete": out.complete, "failed": out.failed, "trained": out.trained,
                    "added": out.added, "busy": out.busy, "warnings": out.warnings,
                    "study_csv": str(Path(args.study) / "study.csv")})
    else:
        added = f", bracketing added {len(out.added)}" if out.added else ""
        busy = (f", {len(out.busy)} left pending (trained by another process: "
                f"{', '.join(out.busy)})" if out.busy else "")
        print(f"{args.study}: {out.complete} complete, {out.failed} failed "
              f"({out.trained} trained now{added}{busy}); table: {Path(args.study) / 'study.csv'}")
    for w in out.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 1 if out.failed or out.busy else 0


def run_status_cmd(args) -> int:
    from scalinglab.scaling.study import run_status

    specs = load_plan(args.study)
    rows = [{"run_id": s.run_id, "kind": s.kind, "status": run_status(args.study, s.run_id)}
            for s in specs]
    if args.json:
        print_json(rows)
    else:
        print_table(rows, ["run_id", "kind", "status"])
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep", help="plan and run scaling studies (IsoFLOP, fixed-size, depth-vs-width)",
        description="Example: scalinglab sweep plan studies/s1 --data SHARDS "
        "'isoflop.budgets=[1e12,4e12]' && scalinglab sweep run studies/s1 --workers 2",
    )
    sub = p.add_subparsers(dest="sweep_cmd", metavar="CMD", required=True)

    plan = sub.add_parser("plan", help="write (or add to) a study directory of run configs")
    plan.add_argument("study", help="study directory")
    plan.add_argument("--data", help="token shard directory")
    plan.add_argument("--config", help="YAML/JSON SweepConfig")
    plan.add_argument("--extend", action="store_true",
                      help="add sizes beyond IsoFLOP grid edges that hold the minimum")
    plan.add_argument("--json", action="store_true", help="print the new runs as JSON")
    plan.add_argument("overrides", nargs="*",
                      help="key=value SweepConfig overrides, e.g. 'isoflop.budgets=[1e12]'")
    plan.set_defaults(func=run_plan)

    run = sub.add_parser("run", help="run the study's pending runs (resumes; skips finished)")
    run.add_argument("study", help="study directory")
    run.add_argument("--workers", type=int, default=1, help="runs at once (local launcher)")
    run.add_argument("--launcher", default="local", choices=["local", "slurm"])
    run.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    run.add_argument("--no-bracket", action="store_true",
                     help="do not extend IsoFLOP grids whose minimum is on an edge")
    run.add_argument("--json", action="store_true", help="print the outcome as JSON")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.set_defaults(func=run_run)

    status = sub.add_parser("status", help="each planned run and its status")
    status.add_argument("study", help="study directory")
    status.add_argument("--json", action="store_true")
    status.set_defaults(func=run_status_cmd)
