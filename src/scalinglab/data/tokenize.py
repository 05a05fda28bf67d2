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

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from scalinglab import io as sio
from scalinglab.data.document import read_jsonl_docs
from scalinglab.data.executors import ExecutorKind
from scalinglab.data.shards import SHARD_TOKENIZER
from scalinglab.data.token_files import (  # noqa: F401 (re-exported: callers import them from here)
    EOT_TOKEN,
    TokenizeConfig,
    corpus_files,
    file_markers,
    load_tokenizer,
    tokenize_file,
)
from scalinglab.errors import ScalinglabError
from scalinglab.io import AtomicLineWriter, atomic_write_bytes, locked

TRAIN_INDEX_DIR = "ngram_index"


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

        before = file_markers(out, len(files))
        tokenize_sharded(cfg, out, files, val_ids)
        new_tokens = sum(t for i, d in file_markers(out, len(files)).items() if i not in before
                         for t in (d["train"]["tokens"], d["val"]["tokens"]))
    else:
        new_tokens = 0
        with tqdm(unit="doc", desc="tokenize", disable=not cfg.progress, file=sys.stderr,
                  mininterval=1.0) as bar:
            for index, path in enumerate(files):
                new_tokens += tokenize_file(out, index, path, tokenizer, val_ids,
                                             cfg.batch_docs, bar)
    elapsed = time.perf_counter() - start
    markers = file_markers(out, len(files))
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
