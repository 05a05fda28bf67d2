"""``tokenize_corpus``: a prepared corpus + an HF ``tokenizer.json`` -> the trainer's shards.

Documents are split into train and validation by document id: the ``val_fraction`` of ids with
the smallest seeded hash are held out, so the split is deterministic, and copies of a document
made by the mixture land on the same side. Each document's tokens are followed by the
end-of-text token. Input file ``documents-NNNNN.jsonl`` becomes shards ``train-NNNNN`` and
``val-NNNNN`` (uint16 when the vocabulary fits, else uint32); a rerun skips input files whose
completion marker exists. The held-out documents are also written as ``val_docs.jsonl`` (one
``{"text", "id", "source"}`` per line) for evaluation, and ``meta.json`` (the stats: tokens,
documents, bytes per token, tokens/s) is written last.

With ``executor=local tasks=T`` (or ``slurm`` / ``ray``) the input files are tokenised by T
datatrove tasks, task r taking files r, r+T, ...; each file still becomes the shard pair of its
own index, with the held-out ids chosen once by the driver, so the shards are byte for byte
those of the one-process run. The tasks' datatrove logs and markers are in ``SHARDS/tasks/``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from scalinglab import io as sio
from scalinglab.config import Config
from scalinglab.data.corpus import STATS_FILE
from scalinglab.data.document import read_jsonl_docs
from scalinglab.data.executors import ExecutorKind, RayConfig, SlurmConfig
from scalinglab.data.shards import SHARD_TOKENIZER, write_shard
from scalinglab.errors import ScalinglabError
from scalinglab.io import AtomicLineWriter, atomic_write_bytes, locked

EOT_TOKEN = "<|endoftext|>"
TRAIN_INDEX_DIR = "ngram_index"


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


def _split_key(doc_id: str, seed: int) -> bytes:
    return hashlib.blake2b(f"{seed}:{doc_id}".encode(), digest_size=8).digest()


def choose_val_ids(files: list[Path], fraction: float, seed: int) -> set[str]:
    """The held-out document ids: the ``fraction`` (>= 1 id) with the smallest seeded hash."""
    if not 0 <= fraction < 1:
        raise ScalinglabError(f"val_fraction must be in [0, 1), got {fraction}")
    ids = sorted({d.id for f in files for d in read_jsonl_docs(f)})
    if fraction == 0:
        return set()
    n_val = max(1, round(fraction * len(ids)))
    if n_val >= len(ids):
        raise ScalinglabError(f"corpus has {len(ids)} document(s): too few to hold some out")
    return set(sorted(ids, key=lambda i: _split_key(i, seed))[:n_val])


def _encode_file(path: Path, tok, eot: int, val_ids: set[str], batch: int,
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


def tokenize_corpus(cfg: TokenizeConfig) -> dict[str, Any]:
    """Tokenize and pack a prepared corpus into train/val shards; returns the stats."""
    if not cfg.out:
        raise ScalinglabError("tokenize: no output directory given (--out)")
    out = Path(cfg.out)
    if (out / "meta.json").exists():
        return json.loads((out / "meta.json").read_text())
    files = corpus_files(cfg.corpus)
    tok, eot, vocab = load_tokenizer(cfg.tokenizer, cfg.eot_token)
    val_ids = choose_val_ids(files, cfg.val_fraction, cfg.seed)
    with locked(out, "a shard directory being tokenised"):
        return _tokenize(cfg, out, files, (tok, eot, vocab), val_ids)


def _tokenize(cfg: TokenizeConfig, out: Path, files: list[Path], tokenizer: tuple,
              val_ids: set[str]) -> dict[str, Any]:
    """The body of ``tokenize_corpus``, with ``out`` locked."""
    from tqdm import tqdm

    tok, eot, vocab = tokenizer
    sio.remove_stale_temps(out)  # a killed run's unfinished shard writes: never read, litter
    _check_settings(cfg, out, vocab)
    start = time.perf_counter()
    if cfg.executor != ExecutorKind.inprocess:
        from scalinglab.data.tokenize_tasks import tokenize_sharded

        before = _markers(out, len(files))
        tokenize_sharded(cfg, out, files, val_ids)
        new_tokens = sum(t for i, d in _markers(out, len(files)).items() if i not in before
                         for t in (d["train"]["tokens"], d["val"]["tokens"]))
    else:
        new_tokens = 0
        with tqdm(unit="doc", desc="tokenize", disable=not cfg.progress, file=sys.stderr,
                  mininterval=1.0) as bar:
            for index, path in enumerate(files):
                new_tokens += _tokenize_file(out, index, path, tokenizer, val_ids,
                                             cfg.batch_docs, bar)
    elapsed = time.perf_counter() - start
    markers = _markers(out, len(files))
    if len(markers) != len(files):  # a launched or failed stage: never a partial meta.json
        raise ScalinglabError(f"{out}: {len(files) - len(markers)} of {len(files)} input files "
                              "not tokenised; rerun to resume")
    totals = {s: {"tokens": 0, "docs": 0, "bytes": 0, "eot_removed_from_text": 0}
              for s in ("train", "val")}
    for done in markers.values():
        for split, counts in done.items():
            for k, v in counts.items():
                totals[split][k] += v
    _write_val_docs(out, files, val_ids)
    if cfg.ngram_index:
        _write_train_index(out, files, val_ids)
    _copy_tokenizer(Path(cfg.tokenizer), out)
    meta = _meta(cfg, vocab, eot, totals, elapsed, new_tokens)
    atomic_write_bytes(out / "meta.json", (sio.dumps(meta, indent=2) + "\n").encode())
    return meta


def _marker(out: Path, index: int) -> Path:
    return out / f".done-{index:05d}.json"  # written after both shards of input file ``index``


def _markers(out: Path, n_files: int) -> dict[int, dict]:
    """The completed input files' counts: ``index -> {split: counts}``."""
    return {i: json.loads(_marker(out, i).read_text()) for i in range(n_files)
            if _marker(out, i).exists()}


def _tokenize_file(out: Path, index: int, path: Path, tokenizer: tuple, val_ids: set[str],
                   batch: int, bar) -> int:
    """Shards ``train-{index}`` and ``val-{index}`` of input file ``path``, then its marker;
    returns the tokens written (0 when the marker says it is done)."""
    if _marker(out, index).exists():
        return 0
    tok, eot, vocab = tokenizer
    done, new_tokens = {}, 0
    for split, (tokens, docs, nbytes, removed) in _encode_file(path, tok, eot, val_ids, batch,
                                                               bar).items():
        write_shard(out, split, index, tokens, vocab_size=vocab, eot_id=eot, num_docs=docs)
        done[split] = {"tokens": int(tokens.size), "docs": docs, "bytes": nbytes,
                       "eot_removed_from_text": removed}
        new_tokens += int(tokens.size)
    atomic_write_bytes(_marker(out, index), sio.dumps(done).encode())
    return new_tokens


def _copy_tokenizer(src: Path, out: Path) -> None:
    """SHARDS/tokenizer.json: the shards carry their tokenizer, so a run (which copies it
    from here) evaluates from any directory even if the original file moves."""
    dst = out / SHARD_TOKENIZER
    if not (dst.exists() and dst.resolve() == src.resolve()):
        atomic_write_bytes(dst, src.read_bytes())


def _check_settings(cfg: TokenizeConfig, out: Path, vocab: int) -> None:
    """Refuse to resume into shards made from another corpus / tokenizer / split."""
    mine = {"corpus": str(Path(cfg.corpus).resolve()), "tokenizer_sha256": hashlib.sha256(
        Path(cfg.tokenizer).read_bytes()).hexdigest(), "vocab_size": vocab,
        "val_fraction": cfg.val_fraction, "seed": cfg.seed}
    path = out / ".tokenize-settings.json"
    if path.exists() and json.loads(path.read_text()) != mine:
        raise ScalinglabError(f"{out}: holds shards from other settings ({path}); "
                              "use another --out or delete it")
    atomic_write_bytes(path, sio.dumps(mine).encode())


def _write_val_docs(out: Path, files: list[Path], val_ids: set[str]) -> None:
    """The held-out documents, once each (not the extra copies a mixture made), for eval."""
    writer = AtomicLineWriter(out / "val_docs.jsonl")
    for f in files:
        for d in read_jsonl_docs(f):
            if d.id in val_ids and not d.metadata.get("copy"):
                writer.write(sio.dumps({"text": d.text, "id": d.id, "source": d.source},
                                        ensure_ascii=False))
    writer.commit()


def _write_train_index(out: Path, files: list[Path], val_ids: set[str]) -> None:
    """13-gram index of the TRAINING documents only (``SHARDS/ngram_index/``).

    Evaluation marks items clean or dirty against it. The corpus-wide index that ``prepare``
    writes also holds the held-out documents, so every held-out item would look dirty there.
    """
    from scalinglab.data.ngram_index import NgramIndex

    texts = (d.text for f in files for d in read_jsonl_docs(f) if d.id not in val_ids)
    NgramIndex.build(texts).save(out / TRAIN_INDEX_DIR)


def _meta(cfg: TokenizeConfig, vocab: int, eot: int, totals: dict, elapsed: float,
          new_tokens: int) -> dict[str, Any]:
    bytes_total = totals["train"]["bytes"] + totals["val"]["bytes"]
    tokens_total = totals["train"]["tokens"] + totals["val"]["tokens"]
    # absolute: a relative path means nothing once the shards are used from another directory
    return {"corpus": str(Path(cfg.corpus).resolve()),
            "tokenizer": str(Path(cfg.tokenizer).resolve()), "vocab_size": vocab,
            "eot_id": eot, "dtype": "uint16" if vocab <= 1 << 16 else "uint32",
            "val_fraction": cfg.val_fraction, "seed": cfg.seed, "splits": totals,
            "bytes_per_token": bytes_total / tokens_total if tokens_total else None,
            "ngram_index": TRAIN_INDEX_DIR if cfg.ngram_index else None,
            "elapsed_s": elapsed, "tokens_per_s": new_tokens / elapsed if elapsed else None}
