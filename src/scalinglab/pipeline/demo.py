"""``scalinglab demo``: the whole loop on CPU, on the default corpus, in minutes.

Stages (each skips work it finds done, so an interrupted demo resumes):

1. corpus: the default public-domain corpus, fetched once -> ``data prepare`` (Gopher quality
   and repetition filters, dedup) -> a byte-level BPE tokenizer -> train/val token shards;
2. sweep: IsoFLOP grids at every budget but the largest, extended until every minimum is
   interior;
3. forecast: the laws fitted on those runs predict the largest budget's optimal N and loss
   (with the 95% predictive interval) before any run at that budget exists;
4. Chinchilla vs Gopher in miniature: at the largest budget, an IsoFLOP grid centred on the
   forecast, whose centre is the forecast compute-optimal model, and a model 4x larger
   trained on 4x fewer tokens -- so the comparison is out of sample;
5. fits: every law with bootstrap intervals, plus the trust check (fit only the budgets at
   least ``trust_factor`` x smaller than the largest, predict it, compare);
6. allocation for 10x and 100x the largest budget, and the report.

Every stage's wall time and CPU time (this process and its children) are recorded in
``OUT/demo.json``; the CPU time is what an idle machine would need, the wall time what this one
took.
"""

from __future__ import annotations

import dataclasses
import resource
import sys
import sysconfig
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from scalinglab.config import Config, ConfigError
from scalinglab.data.shards import write_shard
from scalinglab.errors import ScalinglabError
from scalinglab.io import atomic_write_json
from scalinglab.model.accounting import FlopConvention, law_param_count


@dataclasses.dataclass
class DemoConfig(Config):
    """Sizes of the demo, chosen so the whole run takes under 10 minutes on 2 CPU cores."""

    out: str = "studies/demo"
    """Everything goes here: corpus/, tokenizer.json, shards/, study/."""
    vocab_size: int = 512
    """BPE vocabulary (small, so that embeddings do not dominate models of ~1e4 parameters)."""
    seq_len: int = 128
    budgets: list[float] = dataclasses.field(
        default_factory=lambda: [2.5e10, 5e10, 1e11, 4e11])
    """IsoFLOP budgets (FLOPs under flop_convention). The largest is a forecast: its optimal
    size and loss are predicted from the smaller budgets (4x extrapolation) before any of its
    runs is trained; the trust check fits only the budgets <= largest / trust_factor (8x: the
    two smallest). A 1.25e10 budget was tried and dropped: its 1-layer, 10-wide models sit
    off every law and pulled the 8x forecast 7-8% high. (A 2e11 budget too, for time: every
    run costs about the same at a fixed number of steps, and the demo must stay in 10 min.)"""
    trust_factor: float = 8.0
    """How far the trust check extrapolates in compute (the largest budget over the largest
    budget it fits)."""
    sizes: int = 5
    """Model sizes per budget (a factor ``step`` apart)."""
    step: float = 2.0
    tokens_per_param: float = 80.0
    """Where each grid is centred (D / N of the predicted optimum). Chinchilla's 20 is far off
    at 1e3-1e5 non-embedding parameters: the demo's minima sit at about 60-150."""
    flop_convention: FlopConvention = FlopConvention.kaplan
    """kaplan: N is the non-embedding count and C = 6 N D. At 1e4 parameters the embedding
    table (512 x d_model) is as large as the rest of the model, and with total N the fits
    extrapolate badly (on one demo study, Approach 3 put the irreducible loss at 3.34 when the
    largest budget reached 3.38); Kaplan et al. (2020, fig. 6) saw the same."""
    workers: int = 2
    """Runs trained at once (one CPU thread each)."""
    bootstrap: int = 200
    """Bootstrap resamples of the fits (each fit also backtests every law inside the study,
    so 1000 would cost a minute more for intervals that move in the third digit)."""
    eval_tokens: int = 65536
    """Validation tokens per evaluation of every run (a quarter of the validation split; the
    final losses are what the fits read, so their noise matters more than the cost)."""
    eval_limit: int = 100
    """Examples per downstream task when every run is evaluated (0 skips that stage)."""
    batch_seqs: int = 32
    """Most sequences per batch (long runs); shorter runs get fewer, see ``steps``."""
    steps: int = 1500
    """Optimiser steps per run (batch = tokens / steps, 1 to batch_seqs sequences). At this
    size a step costs about the same whatever the model, so this sets the demo's time."""
    seed: int = 0
    """Training seed of every run (another seed replicates the study)."""
    corpus: str = "default"
    """default (the public-domain corpus through the data stages) or stdlib (byte-level
    shards of the Python standard library's source: offline, no tokenizer; a fallback)."""


class Stages:
    """Runs the demo's stages, timing each (wall and CPU seconds) and printing one line each."""

    def __init__(self) -> None:
        self.times: dict[str, dict[str, float]] = {}

    @staticmethod
    def cpu_seconds() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    def run(self, name: str, fn: Callable[[], Any]) -> Any:
        print(f"== {name}", file=sys.stderr, flush=True)
        wall, cpu = time.perf_counter(), self.cpu_seconds()
        result = fn()
        self.times[name] = {"wall_s": time.perf_counter() - wall,
                            "cpu_s": self.cpu_seconds() - cpu}
        t = self.times[name]
        print(f"   {name}: {t['wall_s']:.1f} s wall, {t['cpu_s']:.1f} s CPU", file=sys.stderr,
              flush=True)
        return result


# ---------------------------------------------------------------------- stage 1: data


def build_shards(cfg: DemoConfig, root: Path) -> tuple[Path, str]:
    """The demo's token shards and a one-line description of them.

    When the default corpus cannot be fetched (offline, no cache) the demo says so and falls
    back to byte-level shards of the standard library's source.
    """
    from scalinglab.data.default_corpus import FetchError

    if cfg.corpus == "default":
        try:
            return build_corpus_shards(cfg, root)
        except FetchError as e:
            print(f"warning: default corpus unavailable ({e}); FALLBACK: byte-level shards "
                  "of the Python standard library", file=sys.stderr)
    elif cfg.corpus != "stdlib":
        raise ConfigError(f"DemoConfig.corpus must be default or stdlib, got {cfg.corpus!r}")
    shards = build_byte_shards(root / "shards-stdlib")
    return shards, "FALLBACK corpus: Python standard library source, byte-level (vocab 257)"


def build_byte_shards(out: Path, max_bytes: int = 4_000_000) -> Path:
    """Byte-level (vocab 257, eot 256) shards of stdlib source files; 5% of files held out."""
    if (out / "val-00000.json").exists():
        return out
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py"))
    docs, total = [], 0
    for f in files:
        data = f.read_bytes()
        docs.append(np.frombuffer(data, dtype=np.uint8).astype(np.uint16))
        total += len(data)
        if total >= max_bytes:
            break
    eot = np.array([256], dtype=np.uint16)
    val = [d for i, d in enumerate(docs) if i % 20 == 0]
    train = [d for i, d in enumerate(docs) if i % 20 != 0]
    for split, part in (("train", train), ("val", val)):
        tokens = np.concatenate([x for d in part for x in (d, eot)])
        write_shard(out, split, 0, tokens, vocab_size=257, eot_id=256, num_docs=len(part))
    return out


def build_corpus_shards(cfg: DemoConfig, root: Path) -> tuple[Path, str]:
    """Default corpus -> prepare -> tokenizer -> shards. Returns (shards, description)."""
    from scalinglab.data.default_corpus import fetch_default_corpus
    from scalinglab.data.pipeline import PrepareConfig, prepare
    from scalinglab.data.sources import SourceConfig, SourceKind
    from scalinglab.data.tokenize import TokenizeConfig, tokenize_corpus

    corpus, tok_path, shards = root / "corpus", root / "tokenizer.json", root / "shards"
    fetch_default_corpus()
    if not (corpus / "stats.json").exists():
        # NOTE: no 13-gram index: the demo evaluates nothing against it (data prepare does)
        prepare(PrepareConfig(sources=[SourceConfig(kind=SourceKind.default)], out=str(corpus),
                              ngram_index=False, progress=True))
    if not tok_path.exists():
        train_demo_tokenizer(corpus, tok_path, cfg.vocab_size)
    # NOTE: no training-split 13-gram index either (only evaluation reads it)
    meta = tokenize_corpus(TokenizeConfig(corpus=str(corpus), tokenizer=str(tok_path),
                                          out=str(shards), progress=True, ngram_index=False))
    desc = (f"default corpus, BPE {meta.get('vocab_size', cfg.vocab_size)}: "
            f"{meta['splits']['train']['tokens']:,} train / "
            f"{meta['splits']['val']['tokens']:,} val tokens")
    return shards, desc


def train_demo_tokenizer(corpus: Path, out: Path, vocab_size: int) -> None:
    from scalinglab.tokenizer.corpus import read_texts
    from scalinglab.tokenizer.train import TokenizerConfig, save_tokenizer, train_tokenizer

    texts = list(read_texts([str(corpus)]))
    tcfg = TokenizerConfig(vocab_size=vocab_size)
    tok = train_tokenizer(texts, tcfg)
    save_tokenizer(tok, out, {"config": tcfg.as_dict(), "corpus": [str(corpus)],
                              "documents": len(texts), "vocab_size": tok.get_vocab_size()})


# ---------------------------------------------------------------------- stage 2-3: runs


def sweep_config(cfg: DemoConfig, shards: Path):
    from scalinglab.scaling.sweep_config import SweepConfig

    return SweepConfig().merge({
        "data": str(shards), "seq_len": cfg.seq_len, "flop_convention": cfg.flop_convention,
        "isoflop.budgets": sorted(cfg.budgets)[:-1], "isoflop.sizes": cfg.sizes,
        "isoflop.step": cfg.step, "isoflop.tokens_per_param": cfg.tokens_per_param,
        "train": [f"eval_tokens={cfg.eval_tokens}", f"seed={cfg.seed}"],
        # A smooth family at ~1e4-1e6 parameters: widths in steps of 4, d_model / n_layers
        # about 12; Chinchilla-style RMSNorm without biases, rotary positions (no table).
        "aspect_ratio": 12.0, "width_multiple": 2, "model.position": "rotary",
        "model.norm": "rmsnorm", "model.bias": False,
        # About `steps` optimiser steps per run, at most batch_seqs sequences a step: at this
        # scale short runs are starved of steps long before they are short of tokens.
        "batch.ref_tokens": cfg.batch_seqs * cfg.seq_len, "batch.exponent": 0.0,
        "batch.steps": cfg.steps,
    })


SWEEP_DONE = ".demo-sweep-done.json"
LARGER = 4
"""The comparison's larger model is asked for at LARGER x the forecast optimum (its shape,
the nearest the generator has, may be a little off: the summary gives the ratio as built)."""
COMPARISON_PLAN = ".demo-comparison-plan.json"


def run_sweep_stage(cfg: DemoConfig, study: Path, shards: Path):
    """Plan and run the grids with bracketing. Once done (marker file), a resumed demo only
    finishes pending runs: bracketing again would judge grids that now hold the comparison."""
    from scalinglab.scaling.launch import run_sweep
    from scalinglab.scaling.study import read_json
    from scalinglab.scaling.study_dir import plan_study

    done = read_json(study / SWEEP_DONE)
    if done is not None:
        outcome = run_sweep(study, workers=cfg.workers, bracket=False)
        outcome.added = done.get("added", [])
        return outcome
    plan_study(study, sweep_config(cfg, shards))
    outcome = run_sweep(study, workers=cfg.workers)
    atomic_write_json(study / SWEEP_DONE, {"added": outcome.added})
    return outcome


FORECAST = "forecast.json"


def forecast_stage(cfg: DemoConfig, study: Path) -> dict[str, Any]:
    """Fit the runs of the smaller budgets and forecast the largest budget's compute-optimal
    N, D and loss (``STUDY/forecast.json``, written once: a resumed demo keeps its forecast)."""
    from scalinglab.laws.fitsfile import parse_fits
    from scalinglab.laws.forecast import forecast_warnings, predictive_interval
    from scalinglab.scaling.fitdata import load_study
    from scalinglab.scaling.fits_io import fit_data
    from scalinglab.scaling.study import read_json

    done = read_json(study / FORECAST)
    if done is not None:
        return done
    budget = max(cfg.budgets)
    data = load_study(study)
    fits = parse_fits(fit_data(data, n_boot=cfg.bootstrap), "forecast")
    method, n, d = fits.optimum(None, budget)
    if not n > 0:
        raise ScalinglabError(f"forecast: the {method} fit has no compute-optimal size")
    loss_fit = fits.loss_fit_for(method)
    factor = budget / float(data.flops.max())
    loss, lo, hi = (float(v) for v in predictive_interval(loss_fit, n, d, factor=factor))
    boot = [b.optimum(budget, fits.k)[0] for b in fits.methods[method].bootstrap]
    out = {"budget": budget, "method": method, "loss_method": loss_fit.method,
           "n_train_runs": len(data), "extrapolation": factor, "n_opt": n, "d_opt": d,
           "n_opt_ci": list(np.percentile(boot, [2.5, 97.5])) if boot else None,
           "loss": loss, "loss_ci": [lo, hi],
           "warnings": forecast_warnings(fits, budget, n, d)}
    atomic_write_json(study / FORECAST, out)
    return out


def comparison_stage(cfg: DemoConfig, study: Path, forecast: dict[str, Any]) -> dict[str, Any]:
    """Train the largest budget: an IsoFLOP grid centred on the forecast optimum (its centre
    is the forecast compute-optimal model) and a model 4x larger on 4x fewer tokens.

    Planned once (``COMPARISON_PLAN``), so a resumed demo trains the same runs.
    """
    from scalinglab.scaling.launch import run_sweep
    from scalinglab.scaling.study import read_json
    from scalinglab.scaling.study_dir import load_plan

    planned = read_json(study / COMPARISON_PLAN)
    if planned is None:
        planned = plan_comparison(cfg, study, forecast["n_opt"])
        if "error" in planned:
            return planned
    by_id = {s.run_id: s for s in load_plan(study)}
    specs = [by_id[run_id] for run_id in planned["run_ids"]]
    run_sweep(study, workers=cfg.workers, bracket=False)
    return write_comparison(study, planned["budget"], planned["n_opt"], specs)


def plan_comparison(cfg: DemoConfig, study: Path, n_opt: float) -> dict[str, Any]:
    """Add the largest budget's grid around ``n_opt`` and the 4x larger model to the plan."""
    from scalinglab.scaling.study_dir import add_runs, load_sweep_config
    from scalinglab.scaling.sweep import isoflop_run, resolve_config

    scfg = resolve_config(load_sweep_config(study))
    budget = max(cfg.budgets)
    k = cfg.sizes
    grid = [isoflop_run(scfg, budget, n_opt * cfg.step ** (i - (k - 1) / 2)) for i in range(k)]
    specs = [isoflop_run(scfg, budget, n_opt), isoflop_run(scfg, budget, LARGER * n_opt)]
    if any(s is None for s in specs):
        return {"error": "the 4x larger model would train for too few steps"}
    add_runs(study, scfg, [g for g in grid if g is not None] + specs)
    planned = {"budget": budget, "n_opt": n_opt, "run_ids": [s.run_id for s in specs]}
    atomic_write_json(study / COMPARISON_PLAN, planned)
    return planned


def write_comparison(study: Path, budget: float, n_opt: float, specs: list) -> dict[str, Any]:
    from scalinglab.scaling.study import read_json, run_dir

    conv = specs[0].train["flop_convention"]
    count = law_param_count(conv)  # the count the study's grids and fits (and n_opt) use
    out: dict[str, Any] = {"budget": budget, "n_opt_forecast": n_opt, "params_count": count}
    for key, spec in zip(("optimal", "larger"), specs, strict=True):
        s = read_json(run_dir(study, spec.run_id) / "summary.json") or {}
        out[key] = {"run_id": spec.run_id, "params": s.get(f"params_{count}"),
                    "params_total": s.get("params_total"),
                    "params_non_embedding": s.get("params_non_embedding"),
                    "tokens": s.get("tokens"), "flops": s.get(f"flops_{conv}"),
                    "val_loss": s.get("final_val_loss"), "train_loss": s.get("final_train_loss")}
    o, g = out["optimal"], out["larger"]
    if o["val_loss"] is not None and g["val_loss"] is not None:
        out["optimal_won"] = o["val_loss"] < g["val_loss"]
        out["params_ratio"] = g["params"] / o["params"]
        out["tokens_ratio"] = o["tokens"] / g["tokens"]
    atomic_write_json(study / "comparison.json", out)
    return out


# ---------------------------------------------------------------------- stage 4-5


def fit_stage(cfg: DemoConfig, study: Path) -> dict[str, Any]:
    """Fits with bootstrap and the holdout check; reused when fitted on the same runs.

    A holdout check that fails is recorded in fits.json (``holdout.error``) and the demo goes
    on: the fits of the whole study stand without it.
    """
    from scalinglab.io import strict_json
    from scalinglab.scaling.fitdata import load_study
    from scalinglab.scaling.fits_io import fit_data, write_fits
    from scalinglab.scaling.holdout import holdout_largest
    from scalinglab.scaling.study import read_json, read_study_csv

    complete = sum(r["status"] == "complete" for r in read_study_csv(study / "study.csv"))
    old = read_json(study / "fits.json") or {}
    if old.get("n_runs") == complete and "holdout" in old and \
            old.get("n_bootstrap") == cfg.bootstrap:
        return old
    data = load_study(study)
    fits = {"source": str(study)} | fit_data(data, n_boot=cfg.bootstrap)
    try:
        fits["holdout"] = strict_json(holdout_largest(data, n_boot=cfg.bootstrap,
                                                     factor=cfg.trust_factor))
    except ScalinglabError as e:  # e.g. fewer than 3 budgets
        fits["holdout"] = {"error": f"{type(e).__name__}: {e}"}
    write_fits(study / "fits.json", fits)
    return fits


def allocation_stage(cfg: DemoConfig, study: Path, fits: dict[str, Any]) -> list[dict]:
    from scalinglab.laws.fitsfile import parse_fits
    from scalinglab.scaling.allocate import allocate

    rows = []
    laws = parse_fits(fits, str(study / "fits.json"))
    for mult in (10, 100):
        c = mult * max(cfg.budgets)
        for r in allocate(c, laws):
            rows.append({"budget": c, "multiple": mult, **r})
    atomic_write_json(study / "allocation.json", rows)
    return rows


def eval_stage(cfg: DemoConfig, study: Path, shards: Path) -> dict[str, Any]:
    """Downstream scores of every finished run (``RUN/results.json``, read by the report):
    held-out bits per byte and the "choose the true continuation" task, zero-shot.

    Re-running reuses unchanged results; the byte-level fallback corpus has no held-out
    documents, so there the stage is skipped and says why.
    """
    from scalinglab.eval.api import evaluate_run
    from scalinglab.scaling.study import read_study_csv, run_dir

    if cfg.eval_limit <= 0:
        return {"skipped": "eval_limit=0"}
    heldout = shards / "val_docs.jsonl"
    if not heldout.exists():
        return {"skipped": f"{heldout} does not exist (fallback corpus)"}
    scores: dict[str, Any] = {}
    for row in read_study_csv(study / "study.csv"):
        if row["status"] != "complete":
            continue
        results, _ = evaluate_run(run_dir(study, row["run_id"]),
                                  ["heldout_bpb", "heldout_continuation"], [0],
                                  heldout=heldout, limit=cfg.eval_limit, progress=False)
        mc = results["tasks"]["heldout_continuation"]["shots"]["0"]
        scores[row["run_id"]] = {"continuation_acc": mc.get("acc")}
    return {"runs": len(scores), "scores": scores}


# ---------------------------------------------------------------------- the demo


def run_demo(cfg: DemoConfig) -> dict[str, Any]:
    """Every stage, then the summary (also written to OUT/demo.json)."""
    from scalinglab.report import write_report

    root = Path(cfg.out)
    root.mkdir(parents=True, exist_ok=True)
    study = root / "study"
    stages = Stages()
    start = time.perf_counter()
    shards, data_desc = stages.run("corpus, tokenizer, shards",
                                   lambda: build_shards(cfg, root))
    sweep = stages.run("IsoFLOP sweep (all budgets but the largest)",
                       lambda: run_sweep_stage(cfg, study, shards))
    forecast = stages.run("forecast of the largest budget", lambda: forecast_stage(cfg, study))
    comparison = stages.run("largest budget: forecast optimum vs 4x larger",
                            lambda: comparison_stage(cfg, study, forecast))
    downstream = stages.run("downstream eval of every run",
                            lambda: eval_stage(cfg, study, shards))
    fits = stages.run("fits + holdout check", lambda: fit_stage(cfg, study))
    allocation = stages.run("allocation", lambda: allocation_stage(cfg, study, fits))
    report = stages.run("report", lambda: write_report(study))
    from scalinglab.scaling.study import read_study_csv

    statuses = [r["status"] for r in read_study_csv(study / "study.csv")]
    summary = {
        "config": cfg.as_dict(), "data": data_desc, "study": str(study.resolve()),
        "report": str(Path(report).resolve()),
        "runs_complete": statuses.count("complete"), "runs_failed": statuses.count("failed"),
        "bracketing_added": sweep.added, "stages": stages.times,
        "wall_s": time.perf_counter() - start,
        "cpu_s": sum(t["cpu_s"] for t in stages.times.values()),
        "a": {k: (fits.get(k) or {}).get("a") for k in ("approach1", "approach2", "approach3")},
        "a_ci": {k: (fits.get(k) or {}).get("a_ci") for k in ("approach2",)},
        "trust": _trust_summary(fits.get("holdout") or {}),
        "forecast": _forecast_summary(forecast, fits.get("holdout") or {}),
        "comparison": comparison, "allocation": allocation,
        "downstream": _comparison_scores(comparison, downstream),
    }
    atomic_write_json(root / "demo.json", summary)
    return summary


def _trust_summary(h: dict[str, Any]) -> dict[str, Any]:
    """The trust check's factor, prediction with interval, truth and error."""
    pred = (h.get("predicted") or {}).get(h.get("method"), {})
    return {"error": h.get("error"), "method": h.get("method"),
            "extrapolation": h.get("extrapolation"), "budget": h.get("budget"),
            "loss": pred.get("loss"), "loss_ci": pred.get("loss_ci"),
            "n_opt": pred.get("n_opt"), "achieved": (h.get("achieved") or {}).get("best_run"),
            "loss_error_pct": h.get("loss_error_pct"), "covered": h.get("covered")}


def _forecast_summary(forecast: dict[str, Any], h: dict[str, Any]) -> dict[str, Any]:
    """The forecast made before the largest budget was trained, against what it reached."""
    best = ((h.get("achieved") or {}).get("best_run") or {}).get("loss")
    par = (h.get("achieved") or {}).get("parabola") or {}
    out = dict(forecast)
    if best is not None and forecast.get("loss"):
        out["achieved_loss"] = best
        out["loss_error_pct"] = 100 * (forecast["loss"] - best) / best
        lo, hi = forecast["loss_ci"]
        out["covered"] = bool(lo <= best <= hi)
    if par.get("n_opt") and forecast.get("n_opt"):
        out["n_opt_parabola"] = par["n_opt"]
        out["n_opt_ratio"] = forecast["n_opt"] / par["n_opt"]
    return out


def _comparison_scores(comparison: dict[str, Any], downstream: dict[str, Any]) -> dict:
    """The continuation accuracy of the two comparison runs (when evaluated)."""
    scores = downstream.get("scores") or {}
    out = {k: scores.get((comparison.get(k) or {}).get("run_id"), {}).get("continuation_acc")
           for k in ("optimal", "larger")}
    return {**out, **({"skipped": downstream["skipped"]} if "skipped" in downstream else {})}


def _trust_lines(t: dict[str, Any], f: dict[str, Any]) -> list[str]:
    out = []
    if t.get("error"):
        out.append(f"trust check failed: {t['error']}")
    elif t.get("loss_error_pct") is not None:
        lo, hi = t["loss_ci"]
        out.append(f"trust check ({t['extrapolation']:.3g}x extrapolation, {t['method']}): "
                   f"largest budget's loss predicted {t['loss']:.4f} [{lo:.4f}, {hi:.4f}], "
                   f"reached {t['achieved']['loss']:.4f}: {t['loss_error_pct']:+.2f}% "
                   f"({'inside' if t['covered'] else 'OUTSIDE'} the 95% interval)")
    if f.get("loss_error_pct") is not None:
        lo, hi = f["loss_ci"]
        ratio = f" (parabola's N_opt x{f['n_opt_ratio']:.2f})" if f.get("n_opt_ratio") else ""
        out.append(f"forecast before training C={f['budget']:.3g} ({f['extrapolation']:.3g}x, "
                   f"{f['method']}): N_opt {f['n_opt']:.3g}{ratio}, loss {f['loss']:.4f} "
                   f"[{lo:.4f}, {hi:.4f}] vs reached {f['achieved_loss']:.4f}: "
                   f"{f['loss_error_pct']:+.2f}%")
    out += [f"warning: forecast: {w}" for w in f.get("warnings", [])]
    return out


def format_summary(s: dict[str, Any]) -> str:
    """The short text the CLI prints."""
    lines = [f"data: {s['data']}",
             f"runs: {s['runs_complete']} complete, {s['runs_failed']} failed "
             f"(bracketing added {len(s['bracketing_added'])})"]
    a = s["a"]
    fmt = {k: ("-" if v is None else f"{v:.2f}") for k, v in a.items()}
    ci = s["a_ci"].get("approach2")
    ci_txt = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci and None not in ci else ""
    lines.append(f"fitted a (N_opt ~ C^a): approach 1 {fmt['approach1']}, approach 2 "
                 f"{fmt['approach2']}{ci_txt}, approach 3 {fmt['approach3']} "
                 "(Chinchilla 0.50 / 0.49 / 0.46; Kaplan 0.73)")
    lines += _trust_lines(s.get("trust") or {}, s.get("forecast") or {})
    cmp = s["comparison"]
    if cmp.get("optimal_won") is not None:
        o, g = cmp["optimal"], cmp["larger"]
        lines.append(
            f"at C={cmp['budget']:.3g}: forecast compute-optimal N={o['params']:.3g} "
            f"D={o['tokens']:.3g} "
            f"val {o['val_loss']:.4f} vs {LARGER}x larger N={g['params']:.3g} "
            f"({cmp['params_ratio']:.1f}x as built: the nearest shape) "
            f"D={g['tokens']:.3g} val {g['val_loss']:.4f}: compute-optimal "
            + ("WON" if cmp["optimal_won"] else "LOST"))
    down = s.get("downstream") or {}
    if down.get("optimal") is not None and down.get("larger") is not None:
        from scalinglab.eval.tasks.heldout import N_CHOICES

        lines.append(f"held-out continuation accuracy (0-shot): compute-optimal "
                     f"{down['optimal']:.3f} vs {LARGER}x larger {down['larger']:.3f} "
                     f"(chance {1 / N_CHOICES:.3f}: {N_CHOICES} choices)")
    for row in s["allocation"]:
        if row["source"].startswith("fit: approach"):
            loss = "" if row.get("loss") is None else f", loss {row['loss']:.3f}"
            lines.append(f"allocate {row['multiple']}x ({row['budget']:.3g}): {row['source']}: "
                         f"N={row['n_opt']:.3g}, D={row['d_opt']:.3g}, "
                         f"{row['tokens_per_param']:.0f} tokens/param{loss}")
    lines.append(f"time: {s['wall_s'] / 60:.1f} min wall, {s['cpu_s'] / 60:.1f} min CPU")
    lines.append(f"report: {s['report']}")
    return "\n".join(lines)
