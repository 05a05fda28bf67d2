"""Tokenizers for evaluation: text <-> token ids, plus the end-of-text id.

Two kinds: the built-in byte tokenizer (UTF-8 bytes, vocab 257, end-of-text 256, what the demo
trains on) and an HF ``tokenizers`` ``tokenizer.json`` (with ``<|endoftext|>``) that the data
stage writes beside its shards. :func:`tokenizer_for_run` finds the one a run was trained with.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from scalinglab.errors import ScalinglabError

EOT_TOKEN = "<|endoftext|>"


class TokenizerError(ScalinglabError, ValueError):
    """No usable tokenizer for a model; the message names the file or the missing piece."""


class Tokenizer(Protocol):
    """What the harness needs from a tokenizer."""

    eot_id: int
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255 and end-of-text as 256 (vocab 257)."""

    eot_id = 256
    vocab_size = 257

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids: list[int]) -> str:
        # The end-of-text id is not text; undecodable byte runs become U+FFFD, as HF does.
        return bytes(i for i in ids if i < 256).decode("utf-8", errors="replace")


class HFTokenizer:
    """A ``tokenizers`` JSON file; end-of-text is ``<|endoftext|>``."""

    def __init__(self, path: str | Path, eot_id: int | None = None):
        from tokenizers import Tokenizer as _HF

        try:
            self._tok = _HF.from_file(str(path))
        except Exception as e:  # noqa: BLE001 - any unreadable file gets one clear message
            raise TokenizerError(f"{path}: cannot load tokenizer: {e}") from None
        eot = self._tok.token_to_id(EOT_TOKEN) if eot_id is None else eot_id
        if eot is None:
            raise TokenizerError(f"{path}: tokenizer has no {EOT_TOKEN} token")
        self.eot_id = eot
        self.vocab_size = self._tok.get_vocab_size()
        self.path = str(path)

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=True)


def load_tokenizer(spec: str | Path) -> Tokenizer:
    """``"bytes"`` -> :class:`ByteTokenizer`; a path -> :class:`HFTokenizer`."""
    if str(spec) == "bytes":
        return ByteTokenizer()
    if not Path(spec).is_file():
        raise TokenizerError(f"{spec}: tokenizer file not found (or use --tokenizer bytes)")
    return HFTokenizer(spec)


def tokenizer_for_run(path: str | Path, vocab_size: int) -> Tokenizer:
    """The tokenizer of the run at ``path`` (a run directory or its ``.safetensors`` file).

    Looks at the run's ``config.json`` ``data`` field, then that shard directory's
    ``meta.json`` (key ``tokenizer``) or ``tokenizer.json``; a model with vocabulary 257 and no
    tokenizer file is taken to be byte-level, like the demo's.
    """
    run_dir = Path(path) if Path(path).is_dir() else Path(path).parent
    found, eot_id = _tokenizer_file(run_dir)
    if found is not None:
        return HFTokenizer(found, eot_id)
    if vocab_size == ByteTokenizer.vocab_size:
        return ByteTokenizer()
    raise TokenizerError(
        f"{run_dir}: cannot find the run's tokenizer (config.json data -> meta.json "
        "'tokenizer' or tokenizer.json); pass --tokenizer PATH"
    )


def _tokenizer_file(run_dir: Path) -> tuple[Path | None, int | None]:
    """(tokenizer file, the shards' end-of-text id) found from the run's config, if any."""
    candidates, eot_id = [run_dir / "tokenizer.json"], None
    data_dir = _read_json(run_dir / "config.json").get("data") or ""
    if data_dir:
        shard_dir = Path(data_dir)
        tok = _read_json(shard_dir / "meta.json").get("tokenizer")
        if tok:  # as given to the data stage: absolute, or relative to where it ran
            candidates[:0] = [Path(tok), shard_dir / tok]
        candidates.append(shard_dir / "tokenizer.json")
        headers = sorted(shard_dir.glob("*-00000.json"))
        if headers:  # the shard header's id wins (the data stage may use another token name)
            eot_id = _read_json(headers[0]).get("eot_id")
    return next((c for c in candidates if c.is_file()), None), eot_id


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise TokenizerError(f"{path}: unreadable: {e}") from None
    return data if isinstance(data, dict) else {}
