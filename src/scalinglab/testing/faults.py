"""Fault injection: SIGKILL a CLI stage at seeded points, rerun it, compare with a clean run.

Used by ``tests/reliability/test_fault_injection.py`` and ``benchmarks/fault_injection.py``.
Every stage runs as ``python -m scalinglab ...`` in a subprocess, always in the same
workspace directory (configs and settings files record absolute paths, so a run elsewhere
could never be byte-identical). Per stage:

1. a clean reference run, with ``SCALINGLAB_FAULT=log:FILE`` so that the ``scalinglab.io``
   fault sites it reaches (``write``, ``rename``, ``renamed``, ``line``, ``append``, each with
   its file) are known;
2. per kill point: a run with ``SCALINGLAB_FAULT=<site>:<n>`` that must die of SIGKILL, then
   the same command again, which must finish; the output directory is then compared, file by
   file, with the reference's (:func:`snapshot`).

``sweep run --workers 2`` is killed from outside instead (the sweep's parent, SIGKILL, once
the runs have written a seeded number of metrics rows: which process writes what is up to the
scheduler), several times in a row, each kill resumed by the next run; its workers must die
with it. Outputs are compared with every byte except the timing fields in :data:`TIMING`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Fields that measure time (or derive from it: MFU, throughput). They legitimately differ
# between two runs of the same command and are the only things the comparison leaves out:
# stats.json / meta.json `elapsed_s`, meta.json `tokens_per_s`, metrics.jsonl rows'
# `elapsed` / `tokens_per_s` / `mfu`, summary.json `wall_time_s` / `tokens_per_s` / `mfu`,
# study.csv `wall_time_s`, a checkpoint's `elapsed`.
TIMING = frozenset({"elapsed_s", "tokens_per_s", "elapsed", "wall_time_s", "mfu"})
TIMED_JSON = frozenset({"stats.json", "meta.json", "summary.json"})
STAGES = ("prepare", "tokenize", "train", "sweep")
HOOK_SITES = ("write", "rename", "renamed", "line", "append")

SENTENCES = [
    "The quick brown fox jumps over the lazy dog and runs to the forest.",
    "A scientist measured the speed of light with a rotating mirror in the lab.",
    "Rivers carry the sediment of mountains to the sea over many thousands of years.",
    "The committee agreed that the budget should be spent on schools and roads.",
    "Old sailors told stories of storms that had swallowed whole fleets of ships.",
    "In the morning the baker opened his shop and sold bread to the villagers.",
    "Music can change the mood of a room faster than any painting on the wall.",
    "Children learn languages by listening to the people who speak with them.",
    "The library kept a collection of maps drawn by travellers centuries ago.",
    "Farmers watched the sky for rain that would save the harvest of wheat.",
    "Engineers designed a bridge that could survive the strongest winds of winter.",
    "She wrote letters to her brother about the cities she had seen abroad.",
]


@dataclass
class KillPoint:
    stage: str
    where: str
    """``site:n (file)`` for a hook, ``after R metrics rows`` for a sweep kill."""
    killed: bool = False
    identical: bool = False
    problem: str = ""


# ---------------------------------------------------------------------- comparison


def _normalize(path: Path) -> Any:
    """What must be identical in ``path``: its bytes, less the timing fields."""
    if path.name in TIMED_JSON:
        return {k: v for k, v in json.loads(path.read_text()).items() if k not in TIMING}
    if path.name == "metrics.jsonl":
        return [{k: v for k, v in json.loads(line).items() if k not in TIMING}
                for line in path.read_text().splitlines()]
    if path.name == "study.csv":
        return [{k: v for k, v in row.items() if k not in TIMING}
                for row in csv.DictReader(io.StringIO(path.read_text()))]
    if path.suffix == ".pt":
        import torch

        state = torch.load(path, map_location="cpu", weights_only=True)
        return _canonical({k: v for k, v in state.items() if k not in TIMING})
    return path.read_bytes()


def _canonical(value: Any) -> Any:
    """Tensors as (dtype, shape, bytes), so that equality means bit-identical."""
    if hasattr(value, "numpy"):
        arr = value.detach().cpu().contiguous()
        return (str(arr.dtype), tuple(arr.shape), arr.view(-1).numpy().tobytes())
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def snapshot(directory: Path) -> dict[str, Any]:
    """Every file under ``directory`` (hidden ones, temporaries and locks too), normalized."""
    return {str(p.relative_to(directory)): _normalize(p)
            for p in sorted(directory.rglob("*")) if p.is_file()}


def differences(reference: dict[str, Any], got: dict[str, Any]) -> list[str]:
    out = [f"missing {k}" for k in reference if k not in got]
    out += [f"extra {k}" for k in got if k not in reference]
    out += [f"differs {k}" for k in reference if k in got and reference[k] != got[k]]
    return out


# ---------------------------------------------------------------------- the workspace


class Harness:
    """Runs the stages in ``root/ws``; ``root/ref`` keeps each stage's reference output."""

    def __init__(self, root: Path, seed: int = 0, python: str = sys.executable):
        self.root, self.ws, self.rng = Path(root), Path(root) / "ws", random.Random(seed)
        self.python = python
        self.src = str(Path(__file__).resolve().parents[2])
        self.ws.mkdir(parents=True, exist_ok=True)
        (self.root / "ref").mkdir(exist_ok=True)
        self.log: list[str] = []

    def env(self, fault: str | None) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": self.src, "OMP_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1"}  # one thread: tiny models, bit-identical sums
        env.pop("SCALINGLAB_FAULT", None)
        if fault:
            env["SCALINGLAB_FAULT"] = fault
        return env

    def run(self, args: list[str], fault: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([self.python, "-m", "scalinglab", *args], cwd=self.ws,
                              env=self.env(fault), capture_output=True, text=True, timeout=300)

    def reference(self, name: str, args: list[str]) -> tuple[dict[str, Any], list[str]]:
        """Run ``args`` cleanly, logging the fault sites; return the snapshot and the sites."""
        log = self.root / f"sites-{name}.log"
        log.unlink(missing_ok=True)
        done = self.run(args, fault=f"log:{log}")
        if done.returncode != 0:
            raise RuntimeError(f"reference {' '.join(args)} failed:\n{done.stderr[-2000:]}")
        sites = [line.split(" ", 2) for line in log.read_text().splitlines()]
        return snapshot(self.ws / name), [f"{s} {p}" for _, s, p in sites]

    def keep_reference(self, name: str) -> None:
        shutil.rmtree(self.root / "ref" / name, ignore_errors=True)
        shutil.copytree(self.ws / name, self.root / "ref" / name)


def choose(sites: list[str], k: int, rng: random.Random, ws: Path) -> list[tuple[str, str]]:
    """``k`` distinct ``(site:n, file)`` kill points from the sites one clean run reached:
    the first ones cover each kind of site present (checkpoints and renames included), the
    rest are drawn at random."""
    counts: Counter = Counter()
    points = []
    for entry in sites:
        site, _, path = entry.partition(" ")
        counts[site] += 1
        rel = os.path.relpath(path, ws) if path.startswith("/") else path
        points.append((f"{site}:{counts[site]}", rel))
    rng.shuffle(points)
    wanted = [lambda p: "checkpoints/" in p[1] and p[0].startswith("write:")]  # mid-checkpoint
    wanted += [lambda p, s=s: p[0].startswith(s + ":") for s in HOOK_SITES]
    chosen: list[tuple[str, str]] = []
    for want in wanted:
        hit = next((p for p in points if want(p) and p not in chosen), None)
        if hit and len(chosen) < k:
            chosen.append(hit)
    chosen += [p for p in points if p not in chosen][:k - len(chosen)]
    return chosen


# ---------------------------------------------------------------------- stages


def write_inputs(ws: Path, files: int = 3, docs_per_file: int = 12) -> None:
    """A few dozen short documents in ``files`` JSONL files (one resumable part each) and a
    byte-level BPE tokenizer with ``<|endoftext|>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    src = ws / "src"
    src.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        with open(src / f"part{f}.jsonl", "w") as fh:
            for i in range(docs_per_file):
                rng = random.Random(f * docs_per_file + i)
                text = "\n\n".join(rng.sample(SENTENCES, k=len(SENTENCES)))
                fh.write(json.dumps({"text": text, "id": f"d{f}-{i}"}) + "\n")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(SENTENCES, trainer)
    tok.save(str(ws / "tokenizer.json"))


COMMANDS = {
    # regex word splitting: spaCy's import alone would cost seconds per run
    "prepare": ["data", "prepare", "--source", "src", "--out", "corpus", "--quiet",
                "quality.word_splitter=regex", "repetition.word_splitter=regex",
                "shard_bytes=3000"],
    "tokenize": ["data", "tokenize", "--corpus", "corpus", "--tokenizer", "tokenizer.json",
                 "--out", "shards", "--quiet"],
    # 30 steps of 8 x 32 tokens, a checkpoint every 4 (2 kept): fp32 on the CPU
    "train": ["train", "--preset", "tiny", "--data", "shards", "--out", "run", "--tokens",
              "7680", "--peak-flops", "1e12", "--quiet", "seq_len=32", "batch_tokens=256",
              "checkpoint_every=4", "eval_tokens=512", "device=cpu", "dtype=fp32"],
}
OUTPUT = {"prepare": "corpus", "tokenize": "shards", "train": "run", "sweep": "study"}


def run_hooked_stage(h: Harness, stage: str, k: int) -> list[KillPoint]:
    """Reference run, then ``k`` seeded hook kill points, each killed, rerun and compared."""
    out = OUTPUT[stage]
    shutil.rmtree(h.ws / out, ignore_errors=True)
    ref, sites = h.reference(out, COMMANDS[stage])
    h.keep_reference(out)
    results = []
    for fault, rel in choose(sites, k, h.rng, h.ws):
        kp = KillPoint(stage, f"{fault} ({rel})")
        shutil.rmtree(h.ws / out)
        killed = h.run(COMMANDS[stage], fault=fault)
        kp.killed = killed.returncode == -signal.SIGKILL
        resumed = h.run(COMMANDS[stage])
        if not kp.killed:
            kp.problem = f"not killed (exit {killed.returncode}): {killed.stderr[-300:]}"
        elif resumed.returncode != 0:
            kp.problem = f"resume failed (exit {resumed.returncode}): {resumed.stderr[-500:]}"
        else:
            diff = differences(ref, snapshot(h.ws / out))
            kp.identical, kp.problem = not diff, "; ".join(diff[:5])
        results.append(kp)
    shutil.rmtree(h.ws / out)
    shutil.copytree(h.root / "ref" / out, h.ws / out)  # the next stage's input
    return results


# ---------------------------------------------------------------------- the sweep

SWEEP_PLAN = ["sweep", "plan", "--data", "shards", "study", "seq_len=32",
              "isoflop.budgets=[1.2e10]", "isoflop.sizes=3", "width_multiple=8",
              "batch.min_steps=16", "bracket_rounds=0",
              'train=["eval_tokens=512","checkpoint_every=3","device=cpu","peak_flops=1e12"]']
SWEEP_RUN = ["sweep", "run", "study", "--workers", "2", "--quiet", "--no-bracket"]


def _metrics_rows(study: Path) -> int:
    total = 0
    for f in study.glob("runs/*/metrics.jsonl"):
        try:
            total += f.read_bytes().count(b"\n")
        except OSError:  # being replaced right now
            pass
    return total


def _kill_sweep_at(h: Harness, rows: int) -> tuple[bool, str]:
    """Start the sweep, SIGKILL its parent once the runs hold ``rows`` metrics rows, and
    wait for its workers (same process group) to die with it."""
    proc = subprocess.Popen([h.python, "-m", "scalinglab", *SWEEP_RUN], cwd=h.ws,
                            env=h.env(None), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 240
    while proc.poll() is None and _metrics_rows(h.ws / "study") < rows:
        if time.time() > deadline:
            break
        time.sleep(0.002)
    if proc.poll() is not None:
        return False, f"sweep ended (exit {proc.returncode}) before {rows} metrics rows"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            os.killpg(proc.pid, 0)  # a worker of the killed sweep is still alive
        except ProcessLookupError:
            return True, ""
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)  # leave nothing running, whatever the outcome
    return False, "workers outlived their killed sweep"


def sweep_once(study: Path) -> list[str]:
    """Every planned run complete exactly once: one summary, one row per step."""
    plan = [r["run_id"] for r in json.loads((study / "plan.json").read_text())["runs"]]
    rows = list(csv.DictReader(open(study / "study.csv")))
    problems = [] if sorted(r["run_id"] for r in rows) == sorted(plan) else ["study.csv rows"]
    problems += [f"{r['run_id']} is {r['status']}" for r in rows if r["status"] != "complete"]
    for run_id in plan:
        steps = [json.loads(line)["step"]
                 for line in (study / "runs" / run_id / "metrics.jsonl").read_text().splitlines()]
        if steps != list(range(1, len(steps) + 1)):
            problems.append(f"{run_id}: steps not each once")
    return problems


def run_sweep_stage(h: Harness, k: int) -> list[KillPoint]:
    """Reference sweep, then one sweep killed ``k`` times at seeded points (each kill resumed
    by the next run), then compared with the reference."""
    shutil.rmtree(h.ws / "study", ignore_errors=True)
    planned = h.run(SWEEP_PLAN)
    if planned.returncode != 0:
        raise RuntimeError(f"sweep plan failed:\n{planned.stderr[-2000:]}")
    shutil.copytree(h.ws / "study", h.root / "pristine-study")
    done = h.run(SWEEP_RUN)
    if done.returncode != 0:
        raise RuntimeError(f"reference sweep failed:\n{done.stderr[-2000:]}")
    ref, total = snapshot(h.ws / "study"), _metrics_rows(h.ws / "study")
    shutil.rmtree(h.ws / "study")
    shutil.copytree(h.root / "pristine-study", h.ws / "study")
    shutil.rmtree(h.root / "pristine-study")
    # The sweep loses at most checkpoint_every - 1 rows per run at each kill: thresholds
    # that keep increasing by more than that are always reached by the next run.
    marks = sorted(h.rng.sample(range(2, int(0.8 * total)), k))
    points = [KillPoint("sweep", f"parent SIGKILL after {m} metrics rows") for m in marks]
    for kp, rows in zip(points, marks, strict=True):
        kp.killed, kp.problem = _kill_sweep_at(h, rows)
    final = h.run(SWEEP_RUN)
    problems = [] if final.returncode == 0 else [f"resume exit {final.returncode}"]
    problems += sweep_once(h.ws / "study") if final.returncode == 0 else []
    problems += differences(ref, snapshot(h.ws / "study"))
    for kp in points:
        kp.identical = kp.killed and not problems
        kp.problem = kp.problem or "; ".join(problems[:5])
    return points


# ---------------------------------------------------------------------- all stages


def split_points(total: int) -> dict[str, int]:
    """Kill points per stage: most where runs are cheap (data stages), at least 2 each."""
    weights = {"prepare": 0.34, "tokenize": 0.3, "train": 0.23, "sweep": 0.13}
    counts = {s: max(2, round(total * w)) for s, w in weights.items()}
    counts["prepare"] += total - sum(counts.values())
    return counts


def run_all(root: Path, points: int = 22, seed: int = 0,
            report=print) -> dict[str, list[KillPoint]]:
    """Every stage with its share of ``points``; ``report`` gets one line per kill point."""
    h = Harness(root, seed)
    write_inputs(h.ws)
    counts = split_points(points)
    results: dict[str, list[KillPoint]] = {}
    for stage in STAGES:
        start = time.perf_counter()
        if stage == "sweep":
            results[stage] = run_sweep_stage(h, counts[stage])
        else:
            results[stage] = run_hooked_stage(h, stage, counts[stage])
        for kp in results[stage]:
            mark = "identical" if kp.identical else f"FAILED: {kp.problem}"
            report(f"  {stage:9s} {kp.where}: {mark}")
        report(f"{stage}: {len(results[stage])} kill points, "
               f"{sum(kp.identical for kp in results[stage])} resumed identically "
               f"({time.perf_counter() - start:.0f}s)")
    return results


def count_line(results: dict[str, list[KillPoint]]) -> str:
    points = [kp for kps in results.values() for kp in kps]
    return f"{len(points)} kill points, {sum(kp.identical for kp in points)} resumed identically"
