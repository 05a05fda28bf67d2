"""Gopher (MassiveText) quality and repetition filters, Rae et al. 2021, Appendix A1.

Our own implementation, written to make the same keep/drop decisions as datatrove's
``GopherQualityFilter`` / ``GopherRepetitionFilter`` (tests/data/test_filters_parity.py checks
that on the default corpus). Why not call datatrove: it pulls a large dependency tree (hub
clients, loguru, ...) into the core install for a few dozen lines of rules, and it fixes the
word splitter to spaCy. Here ``word_splitter`` chooses how text is cut into words:

* ``spacy``: spaCy's blank English tokenizer, what datatrove uses (identical decisions);
* ``regex``: no dependency and 2-3x faster, but about 4% of the default corpus's
  decisions differ (mostly the alphabetic-word ratio of punctuation-heavy plays);
* ``auto`` (default): spacy if installed, else regex. The stats record which one ran.

Every drop names its rule (e.g. ``gopher_quality.too_few_words``) and the Filter base counts
documents and bytes per reason.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import re
import unicodedata
from collections import Counter

from scalinglab.config import Config
from scalinglab.data.document import Document
from scalinglab.data.steps.base import Filter
from scalinglab.errors import ScalinglabError

GOPHER_STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]


class WordSplitter(enum.StrEnum):
    auto = "auto"  # spacy when installed (scalinglab[data]), else regex
    regex = "regex"  # dependency-free approximation of spaCy's English tokenizer
    spacy = "spacy"  # spacy.blank("en") tokenizer (what datatrove uses)


@dataclasses.dataclass
class QualityConfig(Config):
    """Gopher quality rules; a threshold set to None disables its rule."""

    enabled: bool = True
    min_words: int | None = 50
    """Fewer non-symbol words than this: dropped."""
    max_words: int | None = 100_000
    """More non-symbol words than this: dropped."""
    min_mean_word_length: float | None = 3
    max_mean_word_length: float | None = 10
    max_symbol_word_ratio: float | None = 0.1
    """'#' per word, and '...' / '…' per word, each at most this."""
    max_bullet_lines_ratio: float | None = 0.9
    """Fraction of lines starting with a bullet ('•' or '-')."""
    max_ellipsis_lines_ratio: float | None = 0.3
    """Fraction of lines ending with an ellipsis."""
    min_alpha_words_ratio: float | None = 0.8
    """Fraction of words holding at least one alphabetic character."""
    min_stop_words: int | None = 2
    """Distinct stop words the document must contain."""
    stop_words: list[str] = dataclasses.field(default_factory=lambda: list(GOPHER_STOP_WORDS))
    word_splitter: WordSplitter = WordSplitter.auto
    """How text is cut into words (the resolved choice is recorded in the stats)."""

    def build(self) -> GopherQualityFilter:
        return GopherQualityFilter(self)


@dataclasses.dataclass
class RepetitionConfig(Config):
    """Gopher repetition rules (fractions are maxima; None disables a rule)."""

    enabled: bool = True
    max_dup_line_frac: float | None = 0.30
    max_dup_para_frac: float | None = 0.30
    max_dup_line_char_frac: float | None = 0.20
    max_dup_para_char_frac: float | None = 0.20
    top_ngram_char_frac: list[float] = dataclasses.field(
        default_factory=lambda: [0.20, 0.18, 0.16])
    """Character fraction of the most frequent n-gram, for n = 2, 3, 4, ..."""
    dup_ngram_char_frac: list[float] = dataclasses.field(
        default_factory=lambda: [0.15, 0.14, 0.13, 0.12, 0.11, 0.10])
    """Character fraction of duplicated n-grams, for n = 5, 6, 7, ..."""
    word_splitter: WordSplitter = WordSplitter.auto
    """How text is cut into words (the resolved choice is recorded in the stats)."""

    def build(self) -> GopherRepetitionFilter:
        return GopherRepetitionFilter(self)


# ----------------------------------------------------------------------------- words

# Order matters: split English clitics off a word ("do|n't", "king|'s") as spaCy does, keep
# inner apostrophes and dots ("o'er", "5.00"), and make each other symbol its own token.
_WORD_RE = re.compile(
    r"[^\W_]+(?=n['’]t\b)"
    r"|n['’]t\b"
    r"|[^\W_]+(?=['’](?:s|S|ll|re|ve|m|d)\b)"
    r"|['’](?:s|S|ll|re|ve|m|d)\b"
    r"|[^\W_]+(?:['’.][^\W_]+)*"
    r"|\.\.\.+|--+|[^\w\s]|_"
)


def resolve_splitter(splitter: WordSplitter) -> WordSplitter:
    """``auto`` -> ``spacy`` if spaCy is importable, else ``regex``."""
    if splitter != WordSplitter.auto:
        return WordSplitter(splitter)
    try:
        import spacy  # noqa: F401
    except ImportError:
        return WordSplitter.regex
    return WordSplitter.spacy


@functools.lru_cache(maxsize=1)
def _spacy_english():
    try:
        import spacy
    except ImportError:
        raise ScalinglabError("word_splitter=spacy needs `pip install spacy` "
                              "(scalinglab[data])") from None
    return spacy.blank("en")


@functools.lru_cache(maxsize=4)  # quality and repetition filters split the same text twice
def split_words(text: str, splitter: WordSplitter = WordSplitter.regex) -> tuple[str, ...]:
    """The document's words (punctuation tokens included, whitespace dropped)."""
    splitter = resolve_splitter(splitter)
    if splitter == WordSplitter.spacy:
        nlp = _spacy_english()
        # memory_zone frees the lexemes this text added (else the vocabulary grows forever)
        with nlp.memory_zone():
            return tuple(s for t in nlp.tokenizer(text) if (s := t.text.strip()))
    return tuple(_WORD_RE.findall(text))


@functools.lru_cache(maxsize=4096)
def _is_symbol_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PSC"  # punctuation, symbols, control characters


def is_symbol_word(word: str) -> bool:
    return all(_is_symbol_char(ch) for ch in word)


# ----------------------------------------------------------------------------- quality


class GopherQualityFilter(Filter):
    """Word-count, word-length, symbol, bullet, ellipsis, alphabetic and stop-word rules."""

    name = "gopher_quality"

    def __init__(self, cfg: QualityConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or QualityConfig()
        self.cfg = dataclasses.replace(self.cfg,
                                       word_splitter=resolve_splitter(self.cfg.word_splitter))
        self.stop_words = frozenset(self.cfg.stop_words)

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        reason = self.check(doc.text)
        return True if reason is None else (False, f"{self.name}.{reason}")

    def check(self, text: str) -> str | None:
        """The first rule ``text`` breaks, or None to keep it."""
        c = self.cfg
        words = split_words(text, c.word_splitter)
        n = len(words)
        real = [w for w in words if not is_symbol_word(w)]
        if c.min_words is not None and len(real) < c.min_words:
            return "too_few_words"
        if c.max_words is not None and len(real) > c.max_words:
            return "too_many_words"
        if not real:
            return "too_few_words"
        mean_len = sum(map(len, real)) / len(real)
        if c.min_mean_word_length is not None and mean_len < c.min_mean_word_length:
            return "mean_word_length_low"
        if c.max_mean_word_length is not None and mean_len > c.max_mean_word_length:
            return "mean_word_length_high"
        if c.max_symbol_word_ratio is not None:
            if text.count("#") / n > c.max_symbol_word_ratio:
                return "hash_ratio"
            if (text.count("...") + text.count("…")) / n > c.max_symbol_word_ratio:
                return "ellipsis_ratio"
        return self._check_lines(text) or self._check_words(words)

    def _check_lines(self, text: str) -> str | None:
        c = self.cfg
        lines = text.splitlines() or [""]
        if c.max_bullet_lines_ratio is not None:
            bullets = sum(ln.lstrip().startswith(("•", "-")) for ln in lines)
            if bullets / len(lines) > c.max_bullet_lines_ratio:
                return "bullet_lines"
        if c.max_ellipsis_lines_ratio is not None:
            ends = sum(ln.rstrip().endswith(("...", "…")) for ln in lines)
            if ends / len(lines) > c.max_ellipsis_lines_ratio:
                return "ellipsis_lines"
        return None

    def _check_words(self, words: tuple[str, ...]) -> str | None:
        c = self.cfg
        if c.min_alpha_words_ratio is not None:
            alpha = sum(any(ch.isalpha() for ch in w) for w in words)
            if alpha / len(words) < c.min_alpha_words_ratio:
                return "alpha_words_low"
        if c.min_stop_words is not None:
            if len(self.stop_words.intersection(words)) < c.min_stop_words:
                return "too_few_stop_words"
        return None


# ----------------------------------------------------------------------------- repetition


def duplicate_stats(items: list[str]) -> tuple[int, int]:
    """(items, characters) that repeat an earlier item; the first occurrence is not counted."""
    seen: set[str] = set()
    dup_items = dup_chars = 0
    for item in items:
        if item in seen:
            dup_items += 1
            dup_chars += len(item)
        else:
            seen.add(item)
    return dup_items, dup_chars


def top_ngram_chars(words: tuple[str, ...], n: int) -> int:
    """Characters covered by the most frequent word n-gram (count x its length, space-joined).

    Ties go to the n-gram seen first, as in datatrove (Counter.most_common).
    """
    counts = Counter(" ".join(words[i:i + n]) for i in range(len(words) - n + 1))
    if not counts:
        return 0
    gram, count = counts.most_common(1)[0]
    return len(gram) * count


def duplicate_ngram_chars(words: tuple[str, ...], n: int) -> int:
    """Characters in n-grams that repeat an earlier one; after a repeat, skip past it."""
    seen: set[str] = set()
    chars = i = 0
    while i < len(words) - n + 1:
        gram = "".join(words[i:i + n])  # NOTE: joined without spaces, as datatrove counts
        if gram in seen:
            chars += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


_PARA_RE = re.compile(r"\n{2,}")
_LINE_RE = re.compile(r"\n+")


class GopherRepetitionFilter(Filter):
    """Duplicate lines / paragraphs, top n-gram and duplicate n-gram character fractions."""

    name = "gopher_repetition"

    def __init__(self, cfg: RepetitionConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or RepetitionConfig()
        self.cfg = dataclasses.replace(self.cfg,
                                       word_splitter=resolve_splitter(self.cfg.word_splitter))

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        reason = self.check(doc.text)
        return True if reason is None else (False, f"{self.name}.{reason}")

    def check(self, text: str) -> str | None:
        """The first rule ``text`` breaks, or None to keep it."""
        if not text:
            return "empty"
        c = self.cfg
        for unit, parts in (("para", _PARA_RE.split(text.strip())), ("line", _LINE_RE.split(text))):
            dup_items, dup_chars = duplicate_stats(parts)
            max_frac = getattr(c, f"max_dup_{unit}_frac")
            max_char_frac = getattr(c, f"max_dup_{unit}_char_frac")
            if max_frac is not None and dup_items / len(parts) > max_frac:
                return f"dup_{unit}_frac"
            if max_char_frac is not None and dup_chars / len(text) > max_char_frac:
                return f"dup_{unit}_char_frac"
        return self._check_ngrams(text)

    def _check_ngrams(self, text: str) -> str | None:
        words = split_words(text, self.cfg.word_splitter)
        for n, frac in enumerate(self.cfg.top_ngram_char_frac, start=2):
            if top_ngram_chars(words, n) / len(text) > frac:
                return f"top_{n}_gram"
        for n, frac in enumerate(self.cfg.dup_ngram_char_frac, start=5):
            if duplicate_ngram_chars(words, n) / len(text) > frac:
                return f"dup_{n}_gram"
        return None
