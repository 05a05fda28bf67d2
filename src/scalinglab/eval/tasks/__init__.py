"""Task files and their loading: built-in names, ``NAME=FILE.jsonl`` or a task YAML file.

``resolve_task("piqa=data/piqa.jsonl")`` uses the built-in ``piqa.yaml`` on that file;
``resolve_task("heldout_cloze", heldout="SHARDS/val_docs.jsonl")`` builds a held-out task;
``resolve_task("my_task.yaml")`` reads a task file (its ``data`` is relative to it);
``resolve_task("boolq=hf")`` reads the task's splits from the Hugging Face hub (``hub.py``).
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from scalinglab.eval.tasks.base import Example, Task, TaskError, TaskSpec, TaskType, load_examples
from scalinglab.eval.tasks.heldout import heldout_task
from scalinglab.eval.tasks.hub import hub_splits, is_hub
from scalinglab.eval.tasks.loaders import LOADERS
from scalinglab.eval.tasks.source import source_task

__all__ = ["BUILTIN", "Example", "Task", "TaskError", "TaskSpec", "TaskType", "builtin_spec",
           "load_task", "resolve_task"]

_HERE = Path(__file__).parent
BUILTIN = sorted(p.stem for p in _HERE.glob("*.yaml"))
"""Names of the task files shipped with scalinglab."""


def builtin_spec(name: str) -> TaskSpec:
    if name not in BUILTIN:
        raise TaskError(f"unknown task {name!r}; built-in tasks: {', '.join(BUILTIN)} "
                        "(or a task .yaml file)")
    return TaskSpec.from_file(_HERE / f"{name}.yaml")


def resolve_task(arg: str, heldout: str | Path | None = None, seed: int = 0,
                 limit: int = 0) -> Task:
    """Load the task named by a CLI argument (see the module docstring)."""
    if arg.endswith((".yaml", ".yml")):
        path = Path(arg)
        if not path.is_file():
            raise TaskError(f"{arg}: task file not found")
        spec = TaskSpec.from_file(path)
        base = path.parent
    else:
        name, _, data = arg.partition("=")
        spec = builtin_spec(name)
        if data:
            spec = dataclasses.replace(spec, data=data)
        base = Path(".")
    if limit:
        spec = dataclasses.replace(spec, limit=limit)
    return load_task(spec, base, heldout, seed)


def load_task(spec: TaskSpec, base: Path = Path("."), heldout: str | Path | None = None,
              seed: int = 0) -> Task:
    """Examples and few-shot pool of ``spec`` (paths relative to ``base``)."""
    if spec.format == "heldout_source":
        path = spec.data or heldout
        if not path:
            raise TaskError(f"task {spec.name}: needs the held-out documents "
                            "(SHARDS/val_docs.jsonl): pass --heldout FILE")
        test, train, valid = source_task(_rel(base, path), seed)
        if not (test and train and valid):
            raise TaskError(f"task {spec.name}: {path} gives too few passages per source "
                            f"(test {len(test)}, train {len(train)}, valid {len(valid)})")
        return Task(spec, test[: spec.limit or None], train, train, valid)
    if spec.format.startswith("heldout_"):
        path = spec.data or heldout
        if not path:
            raise TaskError(f"task {spec.name}: needs the held-out documents "
                            "(SHARDS/val_docs.jsonl): pass --heldout FILE")
        examples, pool = heldout_task(spec.format, _rel(base, path), seed)
        if not examples:
            raise TaskError(f"task {spec.name}: {path} gives no examples (too few/short docs)")
        return Task(spec, examples[: spec.limit or None], pool)
    if spec.format not in LOADERS:
        raise TaskError(f"task {spec.name}: unknown format {spec.format!r}; "
                        f"known: {', '.join(sorted(LOADERS))}")
    if not spec.data:
        raise TaskError(f"task {spec.name}: no data file; use --tasks {spec.name}=FILE.jsonl "
                        f"(or {spec.name}=hf for the Hugging Face hub's copy)")
    loader = LOADERS[spec.format]
    if is_hub(spec.data):
        examples, train, valid = hub_splits(spec.format, spec.data, loader, spec.limit)
    else:
        examples = load_examples(_rel(base, spec.data), loader, spec.limit)
        train = load_examples(_rel(base, spec.train_data), loader) if spec.train_data else []
        valid = load_examples(_rel(base, spec.valid_data), loader) if spec.valid_data else []
    if train and not valid:
        train, valid = _hold_out_tenth(train, seed)
    pool = load_examples(_rel(base, spec.fewshot_data), loader) if spec.fewshot_data else train
    return Task(spec, examples, pool, train, valid)


def _hold_out_tenth(train: list[Example], seed: int) -> tuple[list[Example], list[Example]]:
    """(train, validation): a seeded tenth of the training split held out for early stopping."""
    order = list(range(len(train)))
    random.Random(f"{seed}:valid").shuffle(order)
    cut = max(1, len(train) // 10)
    return [train[i] for i in sorted(order[cut:])], [train[i] for i in order[:cut]]


def _rel(base: Path, path: str | Path) -> Path:
    return Path(path) if Path(path).is_absolute() else base / path
