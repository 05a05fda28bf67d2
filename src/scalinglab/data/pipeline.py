"""``prepare``: sources -> steps (filters, then dedup / decontamination) -> mixture -> corpus.

The executor walks the sources' parts (one per input file or dataset slice) in a fixed order.
Each part is read, passed through the steps built by :func:`build_steps`, and its clean
documents written to ``CORPUS/parts/{key}.jsonl`` (atomically) followed by a completion marker
``{key}.done.json`` holding that part's statistics. A rerun skips parts with a marker, so a
killed run continues where it stopped. Steps that keep state across documents (deduplication)
may define ``restore(doc)``: a resumed run feeds them the clean output of completed parts
before processing new ones. A step's ``stats`` (a StepStats) is reset before each part and
saved in that part's marker; ``stats.json`` sums them, so keys a step adds (beyond in / out /
dropped.*) are summed too and appear under its ``counts``.

With ``workers > 1`` and only stateless steps, parts are completed by a process pool instead.
Then the mixture samples the clean documents by source weight into ``documents-NNNNN.jsonl``,
and ``stats.json`` is written last: a corpus directory without it is unfinished, and
``scalinglab data tokenize`` refuses it.

Corpus layout::

    CORPUS/config.json              the PrepareConfig used
    CORPUS/parts/{key}.jsonl        clean documents of one input part (+ {key}.done.json)
    CORPUS/documents-00000.jsonl    the mixed corpus: {"text", "id", "source", "metadata"}
    CORPUS/ngram_index/             13-gram index of the whole corpus (decontamination report);
                                    eval uses SHARDS/ngram_index/ (training split only)
    CORPUS/stats.json               reader skips (with file:line examples), per-step docs and
                                    bytes in/out and per drop reason, mixture epochs, output,
                                    decontamination per evaluation set
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from concurrent.futures import as_completed as futures_as_completed
from pathlib import Path
from typing import Any

from scalinglab import io as sio
from scalinglab.data.contamination import finish_corpus, scan_steps
from scalinglab.data.corpus import (
    STATS_FILE,
    PrepareConfig,
    build_steps,
    corpus_parts,
    summarize,
    write_mixture,
)
from scalinglab.data.document import Document, read_jsonl_docs, write_jsonl_docs
from scalinglab.data.executors import ExecutorKind
from scalinglab.data.sources import Part, ReadStats
from scalinglab.data.steps.base import PipelineStep, StepStats
from scalinglab.errors import ScalinglabError
from scalinglab.io import (
    atomic_write_bytes,
    locked,
    read_json_object,
    require_fields,
)

# ----------------------------------------------------------------------------- executor


def _progress(cfg: PrepareConfig, total_parts: int):
    from tqdm import tqdm

    return tqdm(total=None, unit="doc", desc=f"prepare 0/{total_parts} parts",
                disable=not cfg.progress, file=sys.stderr, mininterval=1.0)


def _run_part(part: Part, steps: list[PipelineStep], out: Path, bar) -> dict[str, Any]:
    """Read one part, run it through the steps, write its clean documents; return its stats."""
    read_stats = ReadStats()
    for step in steps:
        step.stats = StepStats()  # stats are per part; the totals are summed from markers

    def counted(docs: Iterator[Document]) -> Iterator[Document]:
        for doc in docs:
            if bar is not None:
                bar.update(1)
            yield doc

    stream: Iterator[Document] = counted(part.read(read_stats))
    for step in steps:
        stream = step.run(stream)
    kept = write_jsonl_docs(out / "parts" / f"{part.key}.jsonl", stream)
    return {"source": part.source, "label": part.label, "read": read_stats.as_dict(),
            "steps": [{"name": s.name, "stats": s.stats.as_dict()} for s in steps],
            "clean": dict(kept)}


def _done_stats(part: Part, out: Path) -> dict[str, Any] | None:
    """The stats of an already completed part (checked to be the same input), or None."""
    marker = out / "parts" / f"{part.key}.done.json"
    if not marker.exists():
        return None
    # A marker is written whole, after its output; a hand-edited or foreign one is refused.
    done = read_json_object(marker, "part marker")
    require_fields(done, {"label": str, "source": str, "read": dict, "steps": list, "clean": dict},
                   f"{marker}: part marker")
    if done["label"] != part.label:
        raise ScalinglabError(f"{marker}: part {part.key} was {done['label']}, now "
                              f"{part.label}: the inputs changed; use a new --out")
    return {**done, "resumed": True}


def _run_and_mark(part: Part, steps: list[PipelineStep], out: Path, bar) -> dict[str, Any]:
    stats = _run_part(part, steps, out, bar)
    marker = out / "parts" / f"{part.key}.done.json"
    atomic_write_bytes(marker, (sio.dumps(stats) + "\n").encode())  # after the output
    return stats


def _worker(cfg_dict: dict[str, Any], index: int) -> dict[str, Any]:
    """One part in a worker process: the parts and steps are rebuilt from the config (parts
    hold reader closures, which do not pickle; their order is deterministic)."""
    cfg = PrepareConfig.from_dict(cfg_dict)
    parts = corpus_parts(cfg.sources)
    return _run_and_mark(parts[index], build_steps(cfg), Path(cfg.out), None)


def _run_parallel(cfg: PrepareConfig, parts: list[Part], out: Path, bar) -> list[dict]:
    """Run the unfinished parts in ``cfg.workers`` processes (steps must be stateless)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    results: list[dict[str, Any] | None] = [_done_stats(p, out) for p in parts]
    todo = [i for i, r in enumerate(results) if r is None]
    ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
    with ProcessPoolExecutor(min(cfg.workers, max(1, len(todo))), mp_context=ctx) as pool:
        futures = {pool.submit(_worker, cfg.as_dict(), i): i for i in todo}
        for n, fut in enumerate(futures_as_completed(futures), start=1):
            results[futures[fut]] = stats = fut.result()
            bar.update(stats["read"]["counts"].get("read.docs", 0))
            bar.set_description(f"prepare {len(parts) - len(todo) + n}/{len(parts)} parts")
    return [r for r in results if r is not None]


def _restore(steps: list[PipelineStep], out: Path, key: str) -> None:
    """Feed a completed part's clean documents to steps that keep cross-document state."""
    restorers = [s.restore for s in steps if hasattr(s, "restore")]
    if restorers:
        for doc in read_jsonl_docs(out / "parts" / f"{key}.jsonl"):
            for restore in restorers:
                restore(doc)


def _check_config(cfg: PrepareConfig, out: Path) -> None:
    """Refuse to resume a corpus directory that was started with a different config."""
    path = out / "config.json"
    mine = cfg.as_dict()
    how = ("progress", "workers", "executor", "tasks", "slurm", "ray")  # not the result
    for key in how:
        mine.pop(key)
    if path.exists():
        theirs = read_json_object(path, "corpus config")
        for key in how:
            theirs.pop(key, None)
        if theirs != mine:
            raise ScalinglabError(f"{out}: holds a corpus prepared with another config "
                                  f"({path}); use another --out or delete it")
    else:
        atomic_write_bytes(path, (sio.dumps(cfg.as_dict(), indent=2) + "\n").encode())


def prepare(cfg: PrepareConfig) -> dict[str, Any]:
    """Build (or finish, or just return) the clean corpus ``cfg.out``; returns its stats."""
    if not cfg.sources:
        raise ScalinglabError("prepare: no sources given (--source PATH or sources: in config)")
    if not cfg.out:
        raise ScalinglabError("prepare: no output directory given (--out)")
    out = Path(cfg.out)
    if (out / STATS_FILE).exists():
        _check_config(cfg, out)
        return json.loads((out / STATS_FILE).read_text())
    names = [s.resolved_name() for s in cfg.sources]
    if len(set(names)) != len(names):
        raise ScalinglabError(f"prepare: two sources share a name in {names}; set `name:`")
    parts = corpus_parts(cfg.sources)
    with locked(out, "a corpus being prepared"):  # one writer: a second would delete our temps
        return _prepare(cfg, out, parts)


def _prepare(cfg: PrepareConfig, out: Path, parts: list[Part]) -> dict[str, Any]:
    """The body of ``prepare``, with ``out`` locked."""
    (out / "parts").mkdir(parents=True, exist_ok=True)
    _check_config(cfg, out)
    for d in (out, out / "parts"):
        sio.remove_stale_temps(d)  # unfinished writes of a killed run
    if cfg.executor != ExecutorKind.inprocess:
        from scalinglab.data.distributed import prepare_sharded

        return prepare_sharded(cfg, out, parts)
    steps = build_steps(cfg)
    start = time.perf_counter()
    scan_steps(steps, parts, cfg.progress)  # corpus-wide counts needed before streaming
    part_stats = []
    # state lives in this process: cross-part (restore) or corpus-wide scans (decontamination)
    stateful = any(hasattr(s, "restore") or hasattr(s, "scan") for s in steps)
    with _progress(cfg, len(parts)) as bar:
        if cfg.workers > 1 and not stateful:
            part_stats = _run_parallel(cfg, parts, out, bar)
        else:
            for i, part in enumerate(parts):
                part_stats.append(_done_stats(part, out) or _run_and_mark(part, steps, out, bar))
                if part_stats[-1].get("resumed"):
                    _restore(steps, out, part.key)
                bar.set_description(f"prepare {i + 1}/{len(parts)} parts")
    stats = summarize(cfg, [p.key for p in parts], part_stats, steps)
    stats["output"] = write_mixture(cfg, out, [p.key for p in parts], part_stats,
                                    stats["mixture"])
    stats.update(finish_corpus(out, steps, cfg.ngram_index))
    stats["elapsed_s"] = time.perf_counter() - start
    atomic_write_bytes(out / STATS_FILE, (sio.dumps(stats, indent=2) + "\n").encode())
    return stats
