"""Train byte-level BPE tokenizers with HF ``tokenizers``, optionally with multi-word tokens.

Ordinary mode: GPT-2-style byte-level BPE (the byte-level pre-tokenizer splits text at
whitespace and punctuation, so no token crosses a word boundary).

Multi-word mode (Jurassic-1's multi-word vocabulary, trained the SuperBPE way):

1. Stage 1: ordinary BPE up to ``stage1_fraction`` of the vocabulary.
2. The training text is encoded with the stage-1 merges *without* the whitespace split (the
   pre-tokenizer keeps only the byte mapping, so a unit is a whole document or line), and each
   stage-1 token becomes one private-use character.
3. Stage 2: BPE over those character strings learns merges of stage-1 tokens, which freely
   cross spaces ("ĠofĠthe", "ĠsaidĠuntoĠhim,").
4. The stage-2 merges are written back as byte-level strings after the stage-1 merges, into
   one ordinary BPE ``tokenizer.json`` whose pre-tokenizer does not split at whitespace. BPE
   applies merges in rank order, so encoding runs stage 1 to completion and then stage 2:
   the two-stage segmentation (up to rare ties, see ``combine_stages``; tests check it).

``tokenizers.Tokenizer.from_file`` loads either kind; ``<|endoftext|>`` is a special token.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

from scalinglab.config import Config
from scalinglab.errors import ScalinglabError
from scalinglab.io import atomic_write, atomic_write_json

EOT = "<|endoftext|>"
_PUA = 0xF0000  # supplementary private-use plane: one character per stage-1 token id


class MultiwordUnit(enum.StrEnum):
    """How far a multi-word token may reach."""

    document = "document"  # anywhere within a document (or .txt paragraph group)
    line = "line"  # never across a newline (a token may end with newlines)


@dataclasses.dataclass
class TokenizerConfig(Config):
    """Tokenizer training settings."""

    vocab_size: int = 32000
    """Final vocabulary size, special tokens included."""
    multiword: bool = False
    """Let merges cross whitespace (two-stage training; see the module docstring)."""
    stage1_fraction: float = 0.5
    """Multi-word mode: share of the vocabulary trained as ordinary (within-word) BPE."""
    multiword_unit: MultiwordUnit = MultiwordUnit.document
    """Multi-word mode: the span a token may cover."""
    min_frequency: int = 2
    """Pairs seen fewer times than this are never merged."""
    special_tokens: list[str] = dataclasses.field(default_factory=lambda: [EOT])
    """Special tokens, first ids (``<|endoftext|>`` separates documents in token shards)."""
    progress: bool = False
    """Show the ``tokenizers`` trainer's progress bars on stderr (the CLI turns this on)."""


def _bytelevel_bpe() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def train_bpe(texts: Iterable[str], vocab_size: int, cfg: TokenizerConfig) -> Tokenizer:
    """Ordinary byte-level BPE of ``vocab_size`` tokens."""
    tok = _bytelevel_bpe()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=cfg.min_frequency,
        special_tokens=list(cfg.special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=cfg.progress,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def multiword_pre_tokenizer(unit: MultiwordUnit) -> pre_tokenizers.PreTokenizer:
    """Byte mapping without the whitespace split (optionally split after newlines)."""
    bytelevel = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if unit == MultiwordUnit.document:
        return bytelevel
    lines = pre_tokenizers.Split(Regex(r"[^\n]*\n*"), behavior="isolated")
    return pre_tokenizers.Sequence([lines, bytelevel])


def _units(stage1: Tokenizer, texts: list[str]) -> list[str]:
    """Training text as stage-1 token strings: one private-use character per token."""
    units = []
    for enc in stage1.encode_batch(texts, add_special_tokens=False):
        current, last = [], None
        for tid, word in zip(enc.ids, enc.word_ids, strict=True):
            if word != last and current:
                units.append("".join(current))
                current = []
            current.append(chr(_PUA + tid))
            last = word
        if current:
            units.append("".join(current))
    return units


def _model_json(tok: Tokenizer) -> dict:
    return json.loads(tok.to_str())


def train_stages(texts: list[str], cfg: TokenizerConfig) -> tuple[Tokenizer, Tokenizer]:
    """Stage 1 (ordinary BPE, set up with the multi-word pre-tokenizer) and stage 2 (BPE over
    private-use characters, one per stage-1 token)."""
    stage1 = train_bpe(texts, max(int(cfg.vocab_size * cfg.stage1_fraction), 300), cfg)
    stage1.pre_tokenizer = multiword_pre_tokenizer(cfg.multiword_unit)
    size1 = stage1.get_vocab_size()
    wanted = cfg.vocab_size - size1
    stage2 = Tokenizer(models.BPE())  # no normalizer / pre-tokenizer: units are whole "words"
    trainer = trainers.BpeTrainer(
        # margin: a few stage-2 merges rebuild a string stage 1 already has and add no token
        vocab_size=size1 + wanted + wanted // 8 + 16, min_frequency=cfg.min_frequency,
        initial_alphabet=[chr(_PUA + i) for i in range(size1)], show_progress=cfg.progress,
    )
    stage2.train_from_iterator(_units(stage1, texts), trainer)
    return stage1, stage2


def combine_stages(
    stage1: Tokenizer, stage2: Tokenizer, cfg: TokenizerConfig
) -> tuple[Tokenizer, int]:
    """One BPE tokenizer: stage-1 merges, then stage-2 merges spelled as byte-level strings.

    Returns the tokenizer and how many stage-2 merges it took (the first ones, by rank).

    NOTE: a stage-2 token whose string stage 1 already has maps to that stage-1 token, and a
    byte-level merge spelled twice keeps its first rank; in those rare cases the combined
    segmentation can differ from the literal two-stage one (the tests bound how often).
    """
    spec = _model_json(stage1)
    vocab: dict[str, int] = dict(spec["model"]["vocab"])
    id_to_str = {i: s for s, i in vocab.items()}
    merges = [tuple(m) for m in spec["model"]["merges"]]
    seen = set(merges)
    used = 0
    for merge in _model_json(stage2)["model"]["merges"]:
        if len(vocab) >= cfg.vocab_size:
            break
        used += 1
        a, b = merge if isinstance(merge, list) else merge.split(" ")
        pair = ("".join(id_to_str[ord(c) - _PUA] for c in a),
                "".join(id_to_str[ord(c) - _PUA] for c in b))
        if pair not in seen:
            seen.add(pair)
            merges.append(pair)
            vocab.setdefault(pair[0] + pair[1], len(vocab))
    spec["model"]["vocab"], spec["model"]["merges"] = vocab, [list(m) for m in merges]
    tok = Tokenizer.from_str(json.dumps(spec))
    tok.pre_tokenizer = multiword_pre_tokenizer(cfg.multiword_unit)
    return tok, used


def train_multiword(texts: list[str], cfg: TokenizerConfig) -> Tokenizer:
    """Two-stage multi-word BPE of ``cfg.vocab_size`` tokens (see the module docstring)."""
    return combine_stages(*train_stages(texts, cfg), cfg)[0]


def train_tokenizer(texts: list[str], cfg: TokenizerConfig) -> Tokenizer:
    """Train the tokenizer ``cfg`` describes on ``texts``."""
    if not texts:
        raise ScalinglabError("tokenizer training: the corpus has no documents")
    if cfg.vocab_size < 300:
        raise ScalinglabError(f"vocab_size={cfg.vocab_size}: need >= 300 (256 bytes + specials)")
    if not 0.0 < cfg.stage1_fraction <= 1.0:
        raise ScalinglabError(f"stage1_fraction={cfg.stage1_fraction}: must be in (0, 1]")
    if cfg.multiword:
        return train_multiword(texts, cfg)
    return train_bpe(texts, cfg.vocab_size, cfg)


def save_tokenizer(tok: Tokenizer, path: str | Path, stats: dict) -> None:
    """Write ``tokenizer.json`` atomically and its stats as ``<stem>.stats.json`` beside it."""
    path = Path(path)
    atomic_write(path, lambda tmp: tok.save(str(tmp)))
    atomic_write_json(path.with_name(path.stem + ".stats.json"), stats)
