"""The run's tokenizer as HF files: ``tokenizer.json`` + ``tokenizer_config.json`` +
``special_tokens_map.json``, loadable by ``AutoTokenizer`` as a ``PreTrainedTokenizerFast``
with ``<|endoftext|>`` (the run's end-of-text id) as bos and eos.

A byte-level run (the demo's 257 ids) gets an exact byte tokenizer: GPT-2's byte-to-unicode
alphabet in a BPE with no merges, each byte's character given the byte's own id, and
``<|endoftext|>`` as id 256, so HF and scalinglab encode every text to the same ids.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers

from scalinglab.eval.tokenizer import EOT_TOKEN, ByteTokenizer, HFTokenizer
from scalinglab.eval.tokenizer import Tokenizer as RunTokenizer
from scalinglab.io import atomic_write_json


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (what ByteLevel pre-tokenizes to)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


def byte_tokenizer() -> Tokenizer:
    """An HF ``tokenizers`` tokenizer whose ids are UTF-8 bytes, end-of-text 256."""
    chars = _bytes_to_unicode()
    tok = Tokenizer(models.BPE(vocab={chars[b]: b for b in range(256)}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([EOT_TOKEN])
    return tok


def hf_tokenizer_of(tok: RunTokenizer) -> tuple[Tokenizer, str]:
    """(the ``tokenizers`` object, its end-of-text token string) of a run's tokenizer."""
    if isinstance(tok, ByteTokenizer):
        return byte_tokenizer(), EOT_TOKEN
    assert isinstance(tok, HFTokenizer)
    inner = Tokenizer.from_file(tok.path)
    return inner, inner.id_to_token(tok.eot_id) or EOT_TOKEN


def write_tokenizer(out: Path, tok: RunTokenizer, max_len: int) -> None:
    """Write the three tokenizer files into directory ``out``."""
    inner, eot = hf_tokenizer_of(tok)
    inner.save(str(out / "tokenizer.json"))
    special = {"bos_token": eot, "eos_token": eot, "unk_token": eot}
    atomic_write_json(out / "special_tokens_map.json", special)
    atomic_write_json(out / "tokenizer_config.json", {
        "tokenizer_class": "PreTrainedTokenizerFast", **special,
        "model_max_length": max_len, "add_bos_token": False, "add_eos_token": False,
        "clean_up_tokenization_spaces": False})
