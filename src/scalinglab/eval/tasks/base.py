"""Tasks: a task file (template and settings), examples, and loading from JSONL.

A task is a dataset, a prompt renderer and a scorer. Its *task file* (YAML, see the ``*.yaml``
files beside this module) holds the template and delimiters; a *format* names the loader that
turns one JSONL record into an :class:`Example`; the examples to score and the few-shot pool
come from separate files (or, for built-in tasks, separate parts of the held-out documents).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from scalinglab.config import Config
from scalinglab.errors import ScalinglabError


class TaskError(ScalinglabError, ValueError):
    """A task file or task data that cannot be used; the message names the file/line/field."""


class TaskType(enum.StrEnum):
    multiple_choice = "multiple_choice"
    """Pick the choice with the highest log-likelihood (acc, acc_norm, acc_bytes)."""
    cloze = "cloze"
    """Score one target continuation: greedy exact match and perplexity."""
    rolling = "rolling"
    """Log-likelihood of whole documents: bits per byte, byte and word perplexity."""
    generate = "generate"
    """Generate until a stop sequence; exact match of the stripped text with the target."""


@dataclasses.dataclass
class TaskSpec(Config):
    """A task file."""

    name: str = ""
    """Task name used in results.json."""
    type: TaskType = TaskType.multiple_choice
    """How examples are scored."""
    format: str = ""
    """Loader for the JSONL records (lambada, hellaswag, piqa, winogrande, arc, boolq, mc,
    cloze, text) or a built-in held-out task (heldout_bpb, heldout_cloze,
    heldout_continuation)."""
    template: str = "{query}"
    """Python format string over the example's fields that renders the query."""
    target_delimiter: str = " "
    """Between the query and an answer."""
    fewshot_delimiter: str = "\n\n"
    """Between solved shots, and between the last shot and the query."""
    description: str = ""
    """Text put before the shots."""
    data: str = ""
    """JSONL file of examples to score (relative paths are relative to the task file)."""
    fewshot_data: str = ""
    """JSONL file the shots are drawn from; empty: other examples of ``data`` (or the
    training split, when there is one)."""
    train_data: str = ""
    """JSONL file of the training split (``scalinglab finetune``), same loader as ``data``."""
    valid_data: str = ""
    """JSONL file of the validation split (early stopping); empty: a seeded tenth of the
    training split is held out for it."""
    limit: int = 0
    """Score at most this many examples (0: all)."""
    until: list[str] = dataclasses.field(default_factory=lambda: ["\n"])
    """Generation tasks: stop sequences."""
    max_new_tokens: int = 32
    """Generation tasks: most tokens generated per example."""
    temperature: float = 0.0
    """Generation tasks: 0 is greedy; above 0, sampled with the task seed."""
    context_len: int = 1
    """Rolling tasks: tokens every prediction sees at least when a document is longer than
    the model's context (1: disjoint windows, as lm-evaluation-harness; larger: sliding
    windows that overlap by context_len - 1 tokens)."""


@dataclasses.dataclass
class Example:
    """One normalised example.

    ``fields`` fill the template; ``choices`` are the answers (cloze: the one target);
    ``continuation`` is set for partial-scoring tasks, whose choices end the context;
    ``text`` is what the contamination check looks at; ``source`` groups rolling results.
    """

    fields: dict[str, Any]
    choices: list[str]
    gold: int = 0
    continuation: str | None = None
    text: str = ""
    source: str = ""


@dataclasses.dataclass
class Task:
    """A task file with its examples and few-shot pool loaded."""

    spec: TaskSpec
    examples: list[Example]
    fewshot_pool: list[Example]
    train: list[Example] = dataclasses.field(default_factory=list)
    """Training split (fine-tuning); empty when the task has none."""
    valid: list[Example] = dataclasses.field(default_factory=list)
    """Validation split (early stopping of fine-tuning)."""


Loader = Callable[[dict[str, Any]], Example]


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) for each non-empty line; a bad line is an error naming it."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise TaskError(f"{path}: cannot read: {e}") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise TaskError(f"{path}:{lineno}: not valid JSON: {e.msg}") from None
        if not isinstance(record, dict):
            raise TaskError(f"{path}:{lineno}: expected a JSON object")
        yield lineno, record


def load_examples(path: str | Path, loader: Loader, limit: int = 0) -> list[Example]:
    """Examples of a JSONL file through ``loader``; errors name the file and line."""
    out = []
    for lineno, record in read_jsonl(path):
        try:
            out.append(loader(record))
        except TaskError as e:
            raise TaskError(f"{path}:{lineno}: {e}") from None
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise TaskError(f"{path}:{lineno}: bad or missing field: {e!r}") from None
        if limit and len(out) >= limit:
            break
    if not out:
        raise TaskError(f"{path}: no examples")
    return out
