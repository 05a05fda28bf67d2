"""The prepare pipeline's corpus-wide decontamination hooks and its n-gram index.

``scan_steps`` gives steps that need the whole corpus before they can stream (the
decontamination's document-frequency rule, the corpus-wide MinHash clusters) one pass over the
raw input (MinHash: the documents the filters before it keep). ``finish_corpus``
builds the 13-gram index of the finished corpus (``CORPUS/ngram_index/``, see
:mod:`scalinglab.data.ngram_index`) and, when evaluation sets were given, checks every item
against it: ``dirty_items_after`` should be 0 (items whose n-grams are too common to count are
not dirty by the same rule).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from scalinglab.data.document import Document, read_jsonl_docs
from scalinglab.data.ngram_index import NgramIndex
from scalinglab.data.sources import Part, ReadStats
from scalinglab.data.steps.base import Filter, PipelineStep
from scalinglab.data.steps.decontam import Decontaminate

INDEX_DIR = "ngram_index"


def _raw_documents(parts: list[Part]) -> Iterator[Document]:
    for part in parts:
        yield from part.read(ReadStats())  # skips are counted by the main pass


def scan_steps(steps: list[PipelineStep], parts: list[Part], progress: bool = True) -> None:
    """One pass over the raw input for every step with a ``scan`` method."""
    from tqdm import tqdm

    for i, step in enumerate(steps):
        if hasattr(step, "scan"):
            docs = tqdm(_raw_documents(parts), unit="doc", desc=f"{step.name}: scan",
                        disable=not progress, file=sys.stderr, mininterval=1.0)
            if getattr(step, "scan_after_filters", False):  # MinHash: clusters of survivors
                for f in steps[:i]:
                    if isinstance(f, Filter):
                        docs = f.decide_ahead(docs)  # decided once: the main pass counts
            step.scan(docs)


def finish_corpus(out: Path, steps: list[PipelineStep], build_index: bool) -> dict[str, Any]:
    """Index the finished corpus and report per evaluation set; returns the stats to add."""

    decontam = next((s for s in steps if isinstance(s, Decontaminate)), None)
    if not build_index and decontam is None:
        return {}
    texts = (d.text for f in sorted(out.glob("documents-*.jsonl")) for d in read_jsonl_docs(f))
    max_df = decontam.cfg.max_doc_freq if decontam else 10
    index = NgramIndex.build(texts, max_doc_freq=max_df)
    stats: dict[str, Any] = {"ngram_index": None}
    if build_index:
        index.save(out / INDEX_DIR)
        stats["ngram_index"] = {"path": INDEX_DIR, **index.header()}
    if decontam is not None:
        report = decontam.report()
        for name, texts_ in decontam.sets.items():
            report[name]["dirty_items_after"] = sum(index.dirty(t) for t in texts_)
        stats["decontamination"] = report
    return stats
