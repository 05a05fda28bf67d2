"""One input file of ``data tokenize`` -> its shard pair, shared by the one-process path
(``data/tokenize.py``) and the tasks of the sharded one (``data/tokenize_tasks.py``).

``tokenize_file`` encodes ``documents-NNNNN.jsonl`` into ``train-NNNNN`` / ``val-NNNNN`` and
then writes its completion marker ``.done-NNNNN.json`` (the counts); a marked file is skipped.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from scalinglab import io as sio
from scalinglab.config import Config
from scalinglab.data.corpus import STATS_FILE
from scalinglab.data.document import read_jsonl_docs
from scalinglab.data.executors import ExecutorKind, RayConfig, SlurmConfig
from scalinglab.data.shards import write_shard
from scalinglab.errors import ScalinglabError
from scalinglab.io import atomic_write_bytes

EOT_TOKEN = "<|endoftext|>"


@dataclasses.dataclass
class TokenizeConfig(Config):
    """Inputs and knobs of ``scalinglab data tokenize``."""

    corpus: str = ""
    """A directory written by ``scalinglab data prepare`` (must hold stats.json)."""
    tokenizer: str = ""
    """An HF ``tokenizers`` tokenizer.json holding the end-of-text token."""
    out: str = ""
    """Shard directory."""
    val_fraction: float = 0.05
    """Fraction of documents held out for validation (at least one)."""
    seed: int = 0
    """Seed of the train/validation split."""
    eot_token: str = EOT_TOKEN
    batch_docs: int = 256
    """Documents per ``encode_batch`` call."""
    progress: bool = True
    ngram_index: bool = True
    """Write SHARDS/ngram_index/: 13-grams of the training split, to mark eval items dirty."""
    executor: ExecutorKind = ExecutorKind.inprocess
    """``inprocess`` (one process), or datatrove's ``local`` / ``slurm`` / ``ray``: ``tasks``
    tasks, each tokenising every T-th input file into its own shard pair (same shards)."""
    tasks: int = 1
    """Tasks of the sharded executors; ``workers`` of them run at once."""
    workers: int = 1
    slurm: SlurmConfig = dataclasses.field(default_factory=SlurmConfig)
    ray: RayConfig = dataclasses.field(default_factory=RayConfig)


def load_tokenizer(path: str | Path, eot_token: str = EOT_TOKEN):
    """The tokenizer, its end-of-text id and vocabulary size; one-line errors otherwise."""
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises its own Exception type for bad files
        raise ScalinglabError(f"{path}: cannot load tokenizer: {e}") from None
    eot = tok.token_to_id(eot_token)
    if eot is None:
        raise ScalinglabError(f"{path}: tokenizer has no end-of-text token {eot_token!r}")
    return tok, int(eot), int(tok.get_vocab_size(with_added_tokens=True))


def corpus_files(corpus: str | Path) -> list[Path]:
    """The mixed document files of a complete corpus."""
    corpus = Path(corpus)
    if not (corpus / STATS_FILE).exists():
        raise ScalinglabError(f"{corpus}: not a complete prepared corpus (no {STATS_FILE}); "
                              "run or finish `scalinglab data prepare` first")
    files = sorted(corpus.glob("documents-*.jsonl"))
    if not files:
        raise ScalinglabError(f"{corpus}: corpus has no documents-*.jsonl")
    return files


def encode_file(path: Path, tok, eot: int, val_ids: set[str], batch: int,
                 bar) -> dict[str, tuple[np.ndarray, int, int, int]]:
    """``split -> (tokens, docs, text bytes, end-of-text tokens removed from texts)``."""
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": []}
    docs = {"train": 0, "val": 0}
    nbytes = {"train": 0, "val": 0}
    removed = {"train": 0, "val": 0}
    buf: list = []

    def flush() -> None:
        for d, enc in zip(buf, tok.encode_batch([d.text for d in buf]), strict=True):
            split = "val" if d.id in val_ids else "train"
            ids = enc.ids
            if eot in ids:  # the literal "<|endoftext|>" in a text must not end a document
                removed[split] += ids.count(eot)
                ids = [i for i in ids if i != eot]
            parts[split].append(np.asarray(ids + [eot], dtype=np.uint32))
            docs[split] += 1
            nbytes[split] += len(d.text.encode("utf-8"))
        bar.update(len(buf))
        buf.clear()

    for doc in read_jsonl_docs(path):
        buf.append(doc)
        if len(buf) >= batch:
            flush()
    flush()
    return {s: (np.concatenate(parts[s]) if parts[s] else np.zeros(0, np.uint32), docs[s],
                nbytes[s], removed[s]) for s in parts}


def _marker(out: Path, index: int) -> Path:
    return out / f".done-{index:05d}.json"  # written after both shards of input file ``index``


def file_markers(out: Path, n_files: int) -> dict[int, dict]:
    """The completed input files' counts: ``index -> {split: counts}``."""
    return {i: json.loads(_marker(out, i).read_text()) for i in range(n_files)
            if _marker(out, i).exists()}


def tokenize_file(out: Path, index: int, path: Path, tokenizer: tuple, val_ids: set[str],
                   batch: int, bar) -> int:
    """Shards ``train-{index}`` and ``val-{index}`` of input file ``path``, then its marker;
    returns the tokens written (0 when the marker says it is done)."""
    if _marker(out, index).exists():
        return 0
    tok, eot, vocab = tokenizer
    done, new_tokens = {}, 0
    for split, (tokens, docs, nbytes, removed) in encode_file(path, tok, eot, val_ids, batch,
                                                               bar).items():
        write_shard(out, split, index, tokens, vocab_size=vocab, eot_id=eot, num_docs=docs)
        done[split] = {"tokens": int(tokens.size), "docs": docs, "bytes": nbytes,
                       "eot_removed_from_text": removed}
        new_tokens += int(tokens.size)
    atomic_write_bytes(_marker(out, index), sio.dumps(done).encode())
    return new_tokens
