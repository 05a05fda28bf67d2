"""Public tasks with a training split, read from the Hugging Face hub with ``datasets``.

``--tasks boolq=hf`` reads the usual hub copy of a task (``HUB`` below), ``boolq=hf:ORG/NAME``
or ``arc=hf:allenai/ai2_arc:ARC-Challenge`` another dataset id and configuration, and
``boolq=hf:DIR`` a local ``DatasetDict.save_to_disk`` directory (how the tests and an offline
machine use it). The records go through the same loaders as the JSONL files (the field names
are the hub copies'), the evaluation split is one with labels (the hub's test splits of BoolQ,
PIQA, HellaSwag and WinoGrande have none), and the training split is what
``scalinglab finetune`` trains on.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from scalinglab.eval.tasks.base import Example, Loader, TaskError

PREFIX = "hf"


@dataclasses.dataclass(frozen=True)
class HubSource:
    dataset: str
    config: str | None
    test: str
    """Split that is scored (one with labels)."""
    train: str | None = "train"
    valid: str | None = None
    """Validation split for early stopping; None: a seeded tenth of train (as for JSONL)."""


HUB: dict[str, HubSource] = {
    "boolq": HubSource("google/boolq", None, test="validation"),
    "piqa": HubSource("ybisk/piqa", None, test="validation"),
    "arc": HubSource("allenai/ai2_arc", "ARC-Easy", test="test", valid="validation"),
    "hellaswag": HubSource("Rowan/hellaswag", None, test="validation"),
    "winogrande": HubSource("allenai/winogrande", "winogrande_xl", test="validation"),
    "lambada": HubSource("EleutherAI/lambada_openai", "default", test="test", train=None),
}


def is_hub(data: str) -> bool:
    return data == PREFIX or data.startswith(PREFIX + ":")


def hub_source(task: str, data: str) -> tuple[HubSource, str]:
    """(splits to read, dataset reference: a hub id or a local directory) of ``hf[:REF]``."""
    if task not in HUB:
        raise TaskError(f"task {task}: no hub copy is known; hub tasks: {', '.join(sorted(HUB))}")
    base, ref = HUB[task], data.partition(":")[2]
    if not ref or Path(ref).expanduser().is_dir():
        return base, ref or base.dataset
    dataset, _, config = ref.partition(":")
    return dataclasses.replace(base, dataset=dataset, config=config or None), dataset


def _open(source: HubSource, ref: str):
    import datasets  # the [data] extra

    try:
        if Path(ref).expanduser().is_dir():
            return datasets.load_from_disk(str(Path(ref).expanduser()))
        return datasets.load_dataset(source.dataset, source.config)
    except (ConnectionError, OSError, ValueError, FileNotFoundError) as e:
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise TaskError(f"{ref}: cannot load the dataset (offline? save it with "
                        f"DatasetDict.save_to_disk and pass hf:DIR): {first}") from None


def hub_splits(task: str, data: str, loader: Loader,
               limit: int = 0) -> tuple[list[Example], list[Example], list[Example]]:
    """(scored examples, training split, validation split) of ``task`` from ``data``."""
    source, ref = hub_source(task, data)
    ds = _open(source, ref)

    def split(name: str | None, n: int = 0) -> list[Example]:
        if name is None:
            return []
        if name not in ds:
            raise TaskError(f"{ref}: no split {name!r} (has {', '.join(ds)})")
        return _examples(ds[name], loader, f"{ref}[{name}]", n)

    return split(source.test, limit), split(source.train), split(source.valid)


def _examples(rows, loader: Loader, where: str, limit: int) -> list[Example]:
    out = []
    for i, record in enumerate(rows):
        out.append(_example(loader, record, f"{where} row {i}"))
        if limit and len(out) >= limit:
            break
    if not out:
        raise TaskError(f"{where}: no examples")
    return out


def _example(loader: Loader, record: dict[str, Any], where: str) -> Example:
    try:
        return loader(record)
    except TaskError as e:
        raise TaskError(f"{where}: {e}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise TaskError(f"{where}: bad or missing field: {e!r}") from None
