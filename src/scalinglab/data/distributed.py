"""``prepare`` as sharded datatrove stages (``executor=local|slurm|ray tasks=T``).

The same steps as the in-process pipeline (``data/pipeline.py``), cut where a step needs the
whole corpus, each cut a datatrove stage with its own completion markers:

1. ``filter`` (T tasks): task r reads parts r, r+T, r+2T, ... (our readers), runs the Gopher
   quality and repetition filters, and per part writes the surviving documents, their exact-dedup
   digests (16 bytes each) and MinHash signatures ((N, P) uint32), the reader / filter stats and
   the evaluation-n-gram document counts of its raw documents (decontamination's frequency rule).
2. ``buckets`` (min(T, bands) tasks): task r finds the exact copies among the digests of shard r
   (first digest byte mod T) and, for LSH bands r, r+T, ..., the candidate pairs over the whole
   corpus (each bucket member with the bucket's first, in input order) that pass the verification
   check, reading the signatures memory-mapped, one band at a time.
3. ``clusters`` (1 task): connected components of all pairs; a document is a near duplicate when
   it is not the first of its cluster in input order (an exact copy is counted as exact). It
   also sums the n-gram counts once for every task of stage 4.
4. ``finish`` (T tasks): applies the verdicts, cuts evaluation n-grams out (Decontaminate with
   the shared counts) and writes ``parts/{key}.jsonl`` + ``{key}.done.json`` exactly as the
   in-process pipeline does.
5. ``mixture`` (1 task): the in-process summary, mixture, n-gram index and ``stats.json`` (last).

So the corpus is the same at any T: same documents (ids, text), same drops per reason. The
MinHash rule is the in-process one (``MinHashDedup.scan``): the clusters are the connected
components of the verified LSH pairs among all documents the filters keep, and each keeps its
first document in input order (source, file, line), whichever task read it; the pairs are the
same whether one process makes them for all bands or T tasks for T slices of the bands.
Intermediate files live in ``CORPUS/work/`` and the
datatrove logging directories (markers, ``logs/task_NNNNN.log``) in ``CORPUS/tasks/{stage}/``.
Within a task, a part whose output is complete is skipped too, so a killed task loses at most
the part it was writing; ``stats.json`` is written only by stage 4, so ``tokenize`` refuses a
corpus until every stage has finished.
"""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from datatrove.pipeline.base import PipelineStep as DatatroveStep

from scalinglab import io as sio
from scalinglab.data.contamination import finish_corpus
from scalinglab.data.corpus import (
    STATS_FILE,
    PrepareConfig,
    build_steps,
    corpus_parts,
    summarize,
    write_mixture,
)
from scalinglab.data.document import Document, doc_to_json, read_jsonl_docs, write_jsonl_docs
from scalinglab.data.executors import ExecutorKind, build_executor, run_stage
from scalinglab.data.sources import Part, ReadStats
from scalinglab.data.steps.base import StepStats
from scalinglab.data.steps.decontam import Decontaminate
from scalinglab.data.steps.dedup import (
    ExactDedup,
    MinHasher,
    band_pairs,
    components,
    has_shingles,
    not_first_of_cluster,
    verified,
)
from scalinglab.errors import ScalinglabError
from scalinglab.io import AtomicLineWriter, atomic_write_bytes, read_json_object

WORK, TASKS = "work", "tasks"
KEEP, EXACT, NEAR = 0, 1, 2  # per-document verdict of the dedup stage


def _cfg(cfg_dict: dict[str, Any]) -> PrepareConfig:
    return PrepareConfig.from_dict(cfg_dict)


def _parts(cfg) -> list[Part]:
    return corpus_parts(cfg.sources)


def _save_npy(path: Path, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def _json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, (sio.dumps(data) + "\n").encode())


def _decontam(cfg, work: Path, with_counts: bool) -> Decontaminate | None:
    """The decontamination step, from the evaluation sets read once by the driver."""
    if not cfg.decontam.eval_sets:
        return None
    sets = json.loads((work / "eval_sets.json").read_text())
    step = Decontaminate(cfg.decontam, sets)
    if with_counts:
        step.set_doc_freq(_doc_freq(work))
    return step


def _doc_freq(work: Path) -> Counter:
    """The corpus-wide evaluation-n-gram document counts summed by the dedup stage."""
    return Counter({(m, g): c for m, g, c in json.loads((work / "doc_freq.json").read_text())})


class _Stage(DatatroveStep):
    """A datatrove step that runs one of our stages for its rank (config held as a dict, so
    it pickles for datatrove's pools, Slurm's ``executor.pik`` and Ray)."""

    type = "scalinglab"

    def __init__(self, cfg_dict: dict[str, Any]) -> None:
        super().__init__()
        self.cfg_dict = cfg_dict

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator:
        cfg = _cfg(self.cfg_dict)
        parts = _parts(cfg)
        for i in range(rank, len(parts), world_size):
            self.part(cfg, Path(cfg.out), parts[i])
            self.stat_update("parts")
        yield from ()

    def part(self, cfg, out: Path, part: Part) -> None:
        raise NotImplementedError


# ----------------------------------------------------------------------------- stage 1


class FilterStage(_Stage):
    """Read, Gopher-filter, hash (exact digest, MinHash signature) and count eval n-grams."""

    name = "filter"

    def part(self, cfg, out: Path, part: Part) -> None:
        work = out / WORK / "filter"
        if (work / f"{part.key}.json").exists():
            return  # this part finished before a kill
        filters = [c.build() for c in (cfg.quality, cfg.repetition) if c.enabled]
        decontam = _decontam(cfg, out / WORK, with_counts=False)
        read_stats, doc_freq = ReadStats(), Counter()

        def raw() -> Iterator[Document]:
            for doc in part.read(read_stats):
                if decontam is not None:
                    doc_freq.update(decontam.doc_freq([doc]))
                yield doc

        stream = raw()
        for f in filters:
            stream = f.run(stream)
        writer = AtomicLineWriter(work / f"{part.key}.jsonl")
        digests, shingles = [], []
        hasher = MinHasher(cfg.dedup.minhash.num_perm, cfg.dedup.minhash.ngram,
                           cfg.dedup.minhash.seed)

        for doc in stream:
            writer.write(doc_to_json(doc))
            if cfg.dedup.exact:
                digests.append(np.frombuffer(ExactDedup._digest(doc), np.uint8))
            if cfg.dedup.near:
                shingles.append(hasher.shingles(doc.text))
        writer.commit()
        if cfg.dedup.exact:
            _save_npy(work / f"{part.key}.digest.npy",
                      np.stack(digests) if digests else np.zeros((0, 16), np.uint8))
        if cfg.dedup.near:
            _save_npy(work / f"{part.key}.sig.npy", hasher.signatures(shingles))
        _json(work / f"{part.key}.json", {  # last: the part is complete
            "source": part.source, "label": part.label, "docs": writer.lines,
            "read": read_stats.as_dict(),
            "steps": [{"name": f.name, "stats": f.stats.as_dict()} for f in filters],
            "doc_freq": [[m, g, c] for (m, g), c in sorted(doc_freq.items())]})


# ----------------------------------------------------------------------------- stage 2


def _part_sizes(work: Path, keys: list[str]) -> np.ndarray:
    """Row offsets of each part's filter output in the corpus-wide order: (parts + 1,)."""
    sizes = [read_json_object(work / "filter" / f"{k}.json", "filter stats")["docs"]
             for k in keys]
    return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])


def _rows(arrays: list[np.ndarray], offsets: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Rows ``idx`` (corpus-wide indices) of per-part arrays (memory-mapped)."""
    out = np.empty((len(idx), arrays[0].shape[1]), arrays[0].dtype)
    part = np.searchsorted(offsets, idx, side="right") - 1
    for p in np.unique(part).tolist():
        sel = part == p
        out[sel] = arrays[p][idx[sel] - offsets[p]]
    return out


def _mmap(path: Path) -> np.ndarray:
    """A signature file memory-mapped (numpy cannot map one with no rows: read that one)."""
    try:
        return np.load(path, mmap_mode="r")
    except ValueError:
        return np.load(path)


def _exact_copies(digests: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """Corpus-wide indices of the exact copies among the digests of this task's shard
    (first digest byte mod world_size): every occurrence after the first."""
    mine = np.flatnonzero(digests[:, 0] % world_size == rank)
    if not len(mine):
        return np.empty(0, np.int64)
    _, first = np.unique(digests[mine].view(np.uint64), axis=0, return_index=True)
    return np.setdiff1d(mine, mine[first]).astype(np.int64)


class BucketsStage(_Stage):
    """Task r of T: the exact copies of digest shard r and the verified MinHash candidate
    pairs of bands r, r+T, ... (over the whole corpus, read from memory-mapped signatures)."""

    name = "buckets"

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator:
        cfg = _cfg(self.cfg_dict)
        work, keys = Path(cfg.out) / WORK, [p.key for p in _parts(cfg)]
        offsets = _part_sizes(work, keys)
        if cfg.dedup.exact:
            digests = np.concatenate([np.load(work / "filter" / f"{k}.digest.npy")
                                      for k in keys])  # (N, 16) uint8
            _save_npy(work / "buckets" / f"exact-{rank:05d}.npy",
                      _exact_copies(digests, rank, world_size))
        if cfg.dedup.near:
            _save_npy(work / "buckets" / f"pairs-{rank:05d}.npy",
                      self.pairs(cfg.dedup.minhash, work, keys, offsets, rank, world_size))
        yield from ()

    def pairs(self, mh, work: Path, keys: list[str], offsets: np.ndarray, rank: int,
              world_size: int) -> np.ndarray:
        sigs = [_mmap(work / "filter" / f"{k}.sig.npy") for k in keys]
        valid = np.concatenate([has_shingles(s) for s in sigs])
        r, found = mh.rows_per_band, [np.empty((0, 2), np.int64)]
        for band in range(rank, mh.num_bands, world_size):
            block = np.concatenate([s[:, band * r : (band + 1) * r] for s in sigs])  # (N, r)
            pairs = band_pairs(block, band, valid)
            found.append(verified(pairs, _rows(sigs, offsets, pairs[:, 0]),
                                  _rows(sigs, offsets, pairs[:, 1]), mh.verify_threshold))
            self.stat_update("bands")
        return np.unique(np.concatenate(found), axis=0)


class ClustersStage(_Stage):
    """One task: connected components of all tasks' pairs; per part the keep / exact / near
    verdict of each document (near: not the first of its cluster in input order)."""

    name = "clusters"

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator:
        cfg = _cfg(self.cfg_dict)
        work, keys = Path(cfg.out) / WORK, [p.key for p in _parts(cfg)]
        offsets = _part_sizes(work, keys)
        n = int(offsets[-1])
        verdict = np.full(n, KEEP, np.int8)
        if cfg.dedup.near:
            pairs = [np.load(p) for p in sorted((work / "buckets").glob("pairs-*.npy"))]
            edges = np.concatenate(pairs) if pairs else np.empty((0, 2), np.int64)
            verdict[not_first_of_cluster(components(n, edges))] = NEAR
        if cfg.dedup.exact:  # a copy is never first of its cluster: it says which step drops it
            for p in sorted((work / "buckets").glob("exact-*.npy")):
                verdict[np.load(p)] = EXACT
        doc_freq: Counter = Counter()
        for i, key in enumerate(keys):
            _save_npy(work / "dedup" / f"{key}.npy", verdict[offsets[i] : offsets[i + 1]])
            info = read_json_object(work / "filter" / f"{key}.json", "filter stats")
            doc_freq.update({(m, g): c for m, g, c in info["doc_freq"]})
        _json(work / "doc_freq.json", [[m, g, c] for (m, g), c in sorted(doc_freq.items())])
        yield from ()


# ----------------------------------------------------------------------------- stage 3


def _dedup_stats(docs: list[Document], verdict: np.ndarray, cfg) -> list[dict]:
    """The exact / MinHash steps' stats of one part, as the in-process steps count them."""
    out = []
    for enabled, name, code, reason in ((cfg.dedup.exact, "exact_dedup", EXACT, "exact_duplicate"),
                                        (cfg.dedup.near, "minhash_dedup", NEAR,
                                         "near_duplicate")):
        if not enabled:
            continue
        st = StepStats()
        for doc, v in zip(docs, verdict.tolist(), strict=True):
            if v != KEEP and v < code:
                continue  # dropped by an earlier step: never reached this one
            nbytes = len(doc.text.encode("utf-8"))
            st.add("in", 1, nbytes)
            st.add(f"dropped.{reason}" if v == code else "out", 1, nbytes)
        out.append({"name": name, "stats": st.as_dict()})
    return out


class FinishStage(_Stage):
    """Apply the verdicts, decontaminate, write ``parts/{key}.jsonl`` and its marker."""

    name = "finish"

    def part(self, cfg, out: Path, part: Part) -> None:

        marker = out / "parts" / f"{part.key}.done.json"
        if marker.exists():
            return
        work = out / WORK
        info = read_json_object(work / "filter" / f"{part.key}.json", "filter stats")
        docs = list(read_jsonl_docs(work / "filter" / f"{part.key}.jsonl"))
        verdict = np.load(work / "dedup" / f"{part.key}.npy")
        steps = info["steps"] + _dedup_stats(docs, verdict, cfg)
        stream: Iterator[Document] = (d for d, v in zip(docs, verdict, strict=True) if v == KEEP)
        decontam = _decontam(cfg, work, with_counts=True)
        if decontam is not None:
            stream = decontam.run(stream)
        kept = write_jsonl_docs(out / "parts" / f"{part.key}.jsonl", stream)
        if decontam is not None:
            steps.append({"name": decontam.name, "stats": decontam.stats.as_dict()})
        _json(marker, {"source": part.source, "label": part.label, "read": info["read"],
                       "steps": steps, "clean": dict(kept)})  # after the output


# ----------------------------------------------------------------------------- stage 4


class MixtureStage(_Stage):
    """One task: the in-process summary, mixture, n-gram index and ``stats.json``."""

    name = "mixture"

    def run(self, data=None, rank: int = 0, world_size: int = 1) -> Iterator:

        cfg = _cfg(self.cfg_dict)
        out, keys = Path(cfg.out), [p.key for p in _parts(cfg)]
        part_stats = [read_json_object(out / "parts" / f"{k}.done.json", "part marker")
                      for k in keys]
        steps = build_steps(cfg)
        for step in steps:
            if isinstance(step, Decontaminate):  # its report comes from the shared counts
                step.set_doc_freq(_doc_freq(out / WORK))
        stats = summarize(cfg, keys, part_stats, steps)
        stats["output"] = write_mixture(cfg, out, keys, part_stats, stats["mixture"])
        stats.update(finish_corpus(out, steps, cfg.ngram_index))
        started = json.loads((out / WORK / "started.json").read_text())["time"]
        stats["elapsed_s"] = time.time() - started
        stats["executor"] = {"kind": str(cfg.executor), "tasks": cfg.tasks,
                             "workers": cfg.workers}
        atomic_write_bytes(out / STATS_FILE, (sio.dumps(stats, indent=2) + "\n").encode())
        yield from ()


# ----------------------------------------------------------------------------- driver

STAGES = (FilterStage, BucketsStage, ClustersStage, FinishStage, MixtureStage)


def _stage_tasks(stage: type[_Stage], cfg, n_parts: int) -> int:
    if stage in (ClustersStage, MixtureStage):
        return 1
    if stage is BucketsStage:  # a task per band at most
        return max(1, min(cfg.tasks, cfg.dedup.minhash.num_bands))
    return max(1, min(cfg.tasks, n_parts))  # a task without a part would do nothing


def build_stages(cfg, n_parts: int) -> list:
    """datatrove's executor for each stage, in order (Slurm ones depend on the previous)."""
    out, previous, executors = Path(cfg.out), None, []
    for stage in STAGES:
        tasks = _stage_tasks(stage, cfg, n_parts)
        ex = build_executor(cfg.executor, [stage(cfg.as_dict())], tasks=tasks,
                            workers=min(cfg.workers, tasks) if cfg.workers > 0 else -1,
                            logging_dir=out / TASKS / stage.name, name=stage.name,
                            slurm=cfg.slurm, ray=cfg.ray,
                            depends=previous if cfg.executor == ExecutorKind.slurm else None)
        executors.append((stage, tasks, ex))
        previous = ex
    return executors


def _docs_read(out: Path) -> int:
    """Documents read by finished parts of the filter stage (for docs/s)."""
    total = 0
    for p in (out / WORK / "filter").glob("*.json"):
        try:
            total += json.loads(p.read_text())["read"]["counts"].get("read.docs", 0)
        except (OSError, ValueError, KeyError):
            pass  # being renamed into place
    return total


def prepare_sharded(cfg, out: Path, parts: list[Part]) -> dict[str, Any]:
    """Run (or launch, on Slurm) the four stages; returns the stats (or what was launched)."""
    from scalinglab.data.steps.decontam import read_eval_set

    work = out / WORK
    for sub in ("filter", "buckets", "dedup"):
        (work / sub).mkdir(parents=True, exist_ok=True)
        sio.remove_stale_temps(work / sub)
    if not (work / "started.json").exists():
        _json(work / "started.json", {"time": time.time()})
    if cfg.decontam.eval_sets:  # read once; every task builds its grams from this copy
        _json(work / "eval_sets.json", {Path(p).stem: read_eval_set(p)
                                        for p in cfg.decontam.eval_sets})
    stages = build_stages(cfg, len(parts))
    if cfg.executor == ExecutorKind.slurm:
        stages[-1][2].run()  # launches the whole chain of sbatch array jobs
        return {"launched": "slurm", "stages": {s.name: t for s, t, _ in stages},
                "logs": str(out / TASKS), "job_id": stages[-1][2].job_id}
    for stage, tasks, ex in stages:
        run_stage(ex, stage.name, out / TASKS / stage.name, tasks, cfg.progress,
                  (lambda: _docs_read(out)) if stage is FilterStage else None)
    if not (out / STATS_FILE).exists():
        raise ScalinglabError(f"{out}: the sharded stages ended without {STATS_FILE}; "
                              f"see the logs under {out / TASKS}")
    return json.loads((out / STATS_FILE).read_text())

