"""Compare tokenizers on held-out text: bytes per token, tokens per document, savings.

The first tokenizer is the baseline: ``saving`` is 1 - tokens / baseline tokens, the share by
which a model's sequences (and so its attention and per-token compute for the same text)
get shorter.
"""

from __future__ import annotations

import time
from pathlib import Path

from tokenizers import Tokenizer

from scalinglab.errors import ScalinglabError


def load_tokenizer(path: str | Path) -> Tokenizer:
    """``tokenizers.Tokenizer.from_file`` with a one-line error for a bad file."""
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # tokenizers raises plain Exception subclasses for any bad file
        raise ScalinglabError(f"{path}: not a tokenizer.json: {str(e).splitlines()[0]}") from None


def count_tokens(tok: Tokenizer, texts: list[str], batch: int = 256) -> int:
    """Tokens of all ``texts`` (no special tokens added)."""
    total = 0
    for i in range(0, len(texts), batch):
        total += sum(len(e.ids) for e in tok.encode_batch(texts[i : i + batch],
                                                          add_special_tokens=False))
    return total


def compare(paths: list[str], texts: list[str]) -> list[dict]:
    """One row per tokenizer: sizes, tokens, bytes/token, tokens/doc, saving vs the first."""
    if not texts:
        raise ScalinglabError("tokenizer compare: the held-out text has no documents")
    nbytes = sum(len(t.encode("utf-8")) for t in texts)
    rows: list[dict] = []
    for path in paths:
        tok = load_tokenizer(path)
        start = time.perf_counter()
        tokens = count_tokens(tok, texts)
        secs = time.perf_counter() - start
        base = rows[0]["tokens"] if rows else tokens
        rows.append({
            "tokenizer": str(path), "vocab_size": tok.get_vocab_size(), "documents": len(texts),
            "bytes": nbytes, "tokens": tokens, "bytes_per_token": nbytes / max(tokens, 1),
            "tokens_per_doc": tokens / len(texts), "saving_vs_first": 1 - tokens / base,
            "encode_mb_per_s": nbytes / 1e6 / secs if secs > 0 else float("inf"),
        })
    return rows
