"""What a corpus directory is, and how both executors finish one.

``PrepareConfig`` (saved as ``CORPUS/config.json``), the ordered steps it builds, and the
summary and mixture written at the end: ``pipeline`` (in process) and ``distributed``
(datatrove's executors) both complete parts and then call ``summarize`` and
``write_mixture`` here, so a corpus is the same whichever executor made it. The layout is
described in ``data/pipeline.py``.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

from scalinglab.config import Config
from scalinglab.data.default_corpus import default_corpus_sources
from scalinglab.data.document import doc_from_json, doc_to_json
from scalinglab.data.executors import ExecutorKind, RayConfig, SlurmConfig
from scalinglab.data.mixture import MixtureConfig, plan_mixture, sample_mixture
from scalinglab.data.sources import Part, ReadStats, SourceConfig, SourceKind, list_parts
from scalinglab.data.steps.base import PipelineStep
from scalinglab.data.steps.decontam import DecontamConfig, Decontaminate
from scalinglab.data.steps.dedup import DedupConfig
from scalinglab.data.steps.filters import QualityConfig, RepetitionConfig
from scalinglab.errors import ScalinglabError
from scalinglab.io import AtomicLineWriter

STATS_FILE = "stats.json"


@dataclasses.dataclass
class PrepareConfig(Config):
    """Everything ``prepare`` needs; saved as CORPUS/config.json."""

    sources: list[SourceConfig] = dataclasses.field(default_factory=list)
    """Input sources (each with its own reader settings and mixture weight)."""
    out: str = ""
    """Corpus directory."""
    quality: QualityConfig = dataclasses.field(default_factory=QualityConfig)
    repetition: RepetitionConfig = dataclasses.field(default_factory=RepetitionConfig)
    dedup: DedupConfig = dataclasses.field(default_factory=DedupConfig)
    decontam: DecontamConfig = dataclasses.field(default_factory=DecontamConfig)
    """Evaluation-set decontamination; runs when ``decontam.eval_sets`` lists JSONL files."""
    ngram_index: bool = True
    """Write CORPUS/ngram_index/ (13-grams of the corpus, to mark eval items clean / dirty)."""
    mixture: MixtureConfig = dataclasses.field(default_factory=MixtureConfig)
    shard_bytes: int = 256 * 2**20
    """Maximum text bytes per output ``documents-NNNNN.jsonl`` file."""
    workers: int = 1
    """Processes that complete parts in parallel (used only when no step keeps state across
    documents, i.e. none defines ``restore``; dedup runs in one process)."""
    progress: bool = True
    """Show a progress bar (documents/s) on stderr."""
    executor: ExecutorKind = ExecutorKind.inprocess
    """``inprocess`` (this module), or datatrove's ``local`` / ``slurm`` / ``ray`` executors
    running the same steps as sharded stages (data/distributed.py); the corpus is the same."""
    tasks: int = 1
    """Tasks of each sharded stage (not ``inprocess``); ``workers`` of them run at once."""
    slurm: SlurmConfig = dataclasses.field(default_factory=SlurmConfig)
    ray: RayConfig = dataclasses.field(default_factory=RayConfig)


def corpus_parts(sources: list[SourceConfig]) -> list[Part]:
    """Every part of the sources, in a fixed order; a ``kind=default`` source stands for the
    bundled corpus's sources (fetched into its cache if needed, ``path`` naming the cache)."""
    expanded = [s for src in sources
                for s in (default_corpus_sources(src.path or None)
                          if src.kind == SourceKind.default else [src])]
    return [p for src in expanded for p in list_parts(src)]


def build_steps(cfg: PrepareConfig) -> list[PipelineStep]:
    """The ordered steps every document goes through. The one place to add a step."""
    steps: list[PipelineStep] = []
    if cfg.quality.enabled:
        steps.append(cfg.quality.build())
    if cfg.repetition.enabled:
        steps.append(cfg.repetition.build())
    steps += cfg.dedup.build()
    if cfg.decontam.eval_sets:
        steps.append(Decontaminate(cfg.decontam))
    return steps


# ----------------------------------------------------------------------------- stats + mixture


def summarize(cfg: PrepareConfig, keys: list[str], part_stats: list[dict],
              steps: list[PipelineStep]) -> dict[str, Any]:
    """Sum the per-part statistics into per-source reader stats, per-step stats and a plan."""
    reads: dict[str, ReadStats] = {}
    step_counts = [Counter() for _ in steps]
    by_source: list[dict[str, Counter]] = [{} for _ in steps]
    clean: dict[str, dict[str, int]] = {}
    for ps in part_stats:
        reads.setdefault(ps["source"], ReadStats()).merge(ps["read"])
        for i, st in enumerate(ps["steps"]):
            step_counts[i].update(st["stats"])
            by_source[i].setdefault(ps["source"], Counter()).update(st["stats"])
        c = clean.setdefault(ps["source"], {"docs": 0, "bytes": 0})
        c["docs"] += ps["clean"].get("docs", 0)
        c["bytes"] += ps["clean"].get("bytes", 0)
    for name, rs in reads.items():
        if rs.counts["read.docs"] == 0:
            raise ScalinglabError(f"source {name!r}: no readable documents "
                                  f"(skips: {dict(rs.counts) or 'none'})")
    weights = _weights(cfg, clean)
    return {
        "sources": {name: rs.as_dict() for name, rs in reads.items()},
        "steps": [{"name": s.name, **_step_summary(c),
                   "per_source": {src: _step_summary(sc, counts=False)
                                  for src, sc in sorted(by_source[i].items())}}
                  for i, (s, c) in enumerate(zip(steps, step_counts, strict=True))],
        "word_splitter": cfg.quality.build().cfg.word_splitter.value,
        "clean": clean,
        "mixture": plan_mixture(clean, weights, cfg.mixture.total_bytes),
        "parts": len(keys),
    }


def _weights(cfg: PrepareConfig, clean: dict[str, dict[str, int]]) -> dict[str, float | None]:
    """Mixture weight per source name. The default source fans out into its own sources
    (kjv, milton, shakespeare); its weight is shared among them by their clean bytes."""
    weights: dict[str, float | None] = {}
    for src in cfg.sources:
        if src.kind != "default":
            weights[src.resolved_name()] = src.weight
            continue
        subs = [name for name in clean if name not in weights and name not in
                {s.resolved_name() for s in cfg.sources}]
        total = sum(clean[n]["bytes"] for n in subs) or 1
        for name in subs:
            weights[name] = None if src.weight is None else \
                src.weight * clean[name]["bytes"] / total
    return weights


def _step_summary(raw: Counter, counts: bool = True) -> dict[str, Any]:
    """In / out / dropped-per-reason documents and bytes of one step, from its raw counts
    (which other steps may extend with keys of their own, kept under ``counts``)."""
    drops = {k.removeprefix("dropped.").rsplit(".", 1)[0] for k in raw if
             k.startswith("dropped.")}
    summary = {"in": {"docs": raw["in.docs"], "bytes": raw["in.bytes"]},
               "out": {"docs": raw["out.docs"], "bytes": raw["out.bytes"]},
               "dropped": {r: {"docs": raw[f"dropped.{r}.docs"],
                               "bytes": raw[f"dropped.{r}.bytes"]} for r in sorted(drops)}}
    if counts:
        summary["counts"] = dict(sorted(raw.items()))
    return summary


def _line_offsets(path: Path) -> list[int]:
    offsets, pos = [], 0
    with open(path, "rb") as f:
        for line in f:
            if line.strip():
                offsets.append(pos)
            pos += len(line)
    return offsets


def write_mixture(cfg: PrepareConfig, out: Path, keys: list[str], part_stats: list[dict],
                  plan: dict) -> dict[str, Any]:
    """Sample clean documents by the plan and write them to ``documents-NNNNN.jsonl``."""
    index: dict[str, list[tuple[str, int]]] = {}  # source -> [(part key, byte offset)]
    for key, ps in zip(keys, part_stats, strict=True):
        offs = _line_offsets(out / "parts" / f"{key}.jsonl")
        index.setdefault(ps["source"], []).extend((key, o) for o in offs)
    picks = sample_mixture({s: len(v) for s, v in index.items()}, plan, cfg.mixture.seed,
                           cfg.mixture.shuffle)
    for old in out.glob("documents-*.jsonl"):
        old.unlink()  # left by a killed mixture stage
    files, handles = [], {}
    writer, size, per_source = None, 0, Counter()
    try:
        for source, i, copy in picks:
            key, offset = index[source][i]
            if key not in handles:
                handles[key] = open(out / "parts" / f"{key}.jsonl", "rb")  # noqa: SIM115
            handles[key].seek(offset)
            doc = doc_from_json(handles[key].readline())
            if copy:
                doc.metadata = {**doc.metadata, "copy": copy}
            if writer is None or size >= cfg.shard_bytes:
                if writer is not None:
                    writer.commit()
                writer = AtomicLineWriter(out / f"documents-{len(files):05d}.jsonl")
                files.append(writer.path.name)
                size = 0
            writer.write(doc_to_json(doc))
            nbytes = len(doc.text.encode("utf-8"))
            size += nbytes
            per_source[f"{source}.docs"] += 1
            per_source[f"{source}.bytes"] += nbytes
        if writer is not None:
            writer.commit()
    finally:
        for h in handles.values():
            h.close()
    return {"documents": len(picks), "bytes": sum(v for k, v in per_source.items()
                                                  if k.endswith(".bytes")),
            "per_source": dict(sorted(per_source.items())), "files": files}
