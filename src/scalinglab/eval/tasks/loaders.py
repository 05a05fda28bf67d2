"""Record -> :class:`Example` for public benchmarks stored as local JSONL.

Field names are those of the usual Hugging Face copies of each dataset, and the processing
follows lm-evaluation-harness's task definitions, so the same file gives the same prompts:

- ``lambada``: ``text``; the last space-separated word is the target.
- ``hellaswag``: ``activity_label``, ``ctx_a``, ``ctx_b``, ``endings`` (4), ``label``.
- ``piqa``: ``goal``, ``sol1``, ``sol2``, ``label``.
- ``winogrande``: ``sentence`` (with one ``_``), ``option1``, ``option2``, ``answer`` ("1"/"2").
- ``arc``: ``question``, ``choices`` {``text``, ``label``}, ``answerKey``.
- ``boolq``: ``passage``, ``question``, ``answer`` (bool) or ``label`` (0/1).
- generic ``mc``: ``query``, ``choices``, ``gold``; ``cloze``: ``context``, ``target``;
  ``text``: ``text`` (and optional ``source``).
"""

from __future__ import annotations

import re
from typing import Any

from scalinglab.eval.tasks.base import Example, Loader, TaskError


def _str(record: dict[str, Any], key: str) -> str:
    if key not in record:
        raise TaskError(f"missing field {key!r}")
    value = record[key]
    if not isinstance(value, str):
        raise TaskError(f"field {key!r} must be a string, got {type(value).__name__}")
    return value


def _index(value: Any, n: int, key: str) -> int:
    gold = int(value)
    if not 0 <= gold < n:
        raise TaskError(f"field {key!r} = {value!r} is not an index into {n} choices")
    return gold


def lambada(r: dict[str, Any]) -> Example:
    text = _str(r, "text")
    words = text.split(" ")
    if len(words) < 2:
        raise TaskError("field 'text' has no last word to predict")
    context = " ".join(words[:-1])
    return Example({"context": context}, [" " + words[-1]], 0, text=text)


def _hellaswag_clean(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def hellaswag(r: dict[str, Any]) -> Example:
    ctx = _str(r, "ctx_a") + " " + _str(r, "ctx_b").capitalize()
    query = _hellaswag_clean(_str(r, "activity_label") + ": " + ctx)
    endings = [_hellaswag_clean(e) for e in r["endings"]]
    gold = _index(r["label"], len(endings), "label")
    return Example({"query": query}, endings, gold, text=query + " " + endings[gold])


def piqa(r: dict[str, Any]) -> Example:
    goal, choices = _str(r, "goal"), [_str(r, "sol1"), _str(r, "sol2")]
    gold = _index(r["label"], 2, "label")
    return Example({"goal": goal}, choices, gold, text=goal + " " + choices[gold])


def winogrande(r: dict[str, Any]) -> Example:
    sentence = _str(r, "sentence")
    if "_" not in sentence:
        raise TaskError("field 'sentence' has no '_' blank")
    idx = sentence.index("_")
    options = [_str(r, "option1"), _str(r, "option2")]
    gold = {"1": 0, "2": 1}.get(str(r.get("answer")))
    if gold is None:
        raise TaskError(f"field 'answer' = {r.get('answer')!r} is not '1' or '2'")
    choices = [sentence[:idx] + o for o in options]
    continuation = sentence[idx + 1:].strip()
    return Example({}, choices, gold, continuation=continuation,
                   text=sentence.replace("_", options[gold]))


def arc(r: dict[str, Any]) -> Example:
    question = _str(r, "question")
    choices = r["choices"]
    texts, labels = list(choices["text"]), list(choices["label"])
    key = str(r["answerKey"])
    if key not in labels:
        raise TaskError(f"field 'answerKey' = {key!r} is not one of {labels}")
    gold = labels.index(key)
    return Example({"question": question}, texts, gold, text=question + " " + texts[gold])


def boolq(r: dict[str, Any]) -> Example:
    passage, question = _str(r, "passage"), _str(r, "question")
    answer = r["answer"] if "answer" in r else r["label"]
    gold = int(bool(answer))
    return Example({"passage": passage, "question": question}, ["no", "yes"], gold,
                   text=passage + " " + question)


def mc(r: dict[str, Any]) -> Example:
    query, choices = _str(r, "query"), [str(c) for c in r["choices"]]
    gold = _index(r["gold"], len(choices), "gold")
    return Example({"query": query}, choices, gold, text=query + " " + choices[gold],
                   source=str(r.get("source", "")))


def cloze(r: dict[str, Any]) -> Example:
    context, target = _str(r, "context"), _str(r, "target")
    return Example({"context": context}, [target], 0, text=context + target,
                   source=str(r.get("source", "")))


def text(r: dict[str, Any]) -> Example:
    body = _str(r, "text")
    return Example({}, [], 0, text=body, source=str(r.get("source", "")))


LOADERS: dict[str, Loader] = {
    "lambada": lambada, "hellaswag": hellaswag, "piqa": piqa, "winogrande": winogrande,
    "arc": arc, "boolq": boolq, "mc": mc, "cloze": cloze, "text": text,
}
