"""Public tasks with training splits through ``datasets`` (``NAME=hf[:REF]``): a local
``save_to_disk`` directory stands in for the hub; an unreachable hub id is one line."""

from __future__ import annotations

import pytest

from scalinglab.cli import main
from scalinglab.eval.tasks import TaskError, resolve_task
from scalinglab.train.checkpoint import export_model
from tests.eval.conftest import byte_model

datasets = pytest.importorskip("datasets", reason="pip install '.[data]'")


def boolq_rows(n: int, start: int = 0) -> list[dict]:
    return [{"question": f"is {i} even", "passage": f"The number {i}.", "answer": i % 2 == 0}
            for i in range(start, start + n)]


def arc_rows(n: int, start: int = 0) -> list[dict]:
    return [{"id": str(i), "question": f"What is {i} + 1?",
             "choices": {"text": [str(i + 1), str(i + 2), str(i)], "label": ["A", "B", "C"]},
             "answerKey": "A"} for i in range(start, start + n)]


def save(tmp_path, name: str, splits: dict[str, list[dict]]):
    path = tmp_path / name
    datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in splits.items()}
                         ).save_to_disk(str(path))
    return path


def test_boolq_scores_the_labelled_split_and_trains_on_train(tmp_path):
    path = save(tmp_path, "boolq", {"train": boolq_rows(40), "validation": boolq_rows(7, 100),
                                    "test": [{**r, "answer": False} for r in boolq_rows(3, 200)]})
    task = resolve_task(f"boolq=hf:{path}", seed=1)
    # scored: the validation split (BoolQ's hub test split has no labels)
    assert [e.fields["question"] for e in task.examples] == [f"is {i} even"
                                                              for i in range(100, 107)]
    assert [e.gold for e in task.examples] == [int(i % 2 == 0) for i in range(100, 107)]
    # a seeded tenth of train held out for early stopping, the rest trained on, disjoint
    assert (len(task.train), len(task.valid)) == (36, 4)
    assert not {e.fields["question"] for e in task.train} & {e.fields["question"]
                                                              for e in task.valid}
    assert task.fewshot_pool == task.train


def test_arc_uses_its_own_validation_split_and_limit(tmp_path):
    path = save(tmp_path, "arc", {"train": arc_rows(5), "validation": arc_rows(2, 50),
                                  "test": arc_rows(9, 100)})
    task = resolve_task(f"arc=hf:{path}", limit=4)
    assert [e.fields["question"] for e in task.examples] == [f"What is {i} + 1?"
                                                              for i in range(100, 104)]
    assert len(task.train) == 5 and len(task.valid) == 2
    assert task.examples[0].choices[task.examples[0].gold] == "101"


def test_bad_hub_input_is_one_line(tmp_path, monkeypatch):
    path = save(tmp_path, "nolabels", {"train": boolq_rows(3)})
    with pytest.raises(TaskError, match=r"no split 'validation' \(has train\)"):
        resolve_task(f"boolq=hf:{path}")
    bad = save(tmp_path, "bad", {"train": boolq_rows(3),
                                 "validation": [{"question": "q", "answer": True}]})
    with pytest.raises(TaskError, match=r"\[validation\] row 0: missing field 'passage'"):
        resolve_task(f"boolq=hf:{bad}")
    with pytest.raises(TaskError, match="no hub copy is known; hub tasks: arc, boolq"):
        resolve_task("mc=hf")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # an empty cache
    with pytest.raises(TaskError, match=r"some-org/no-such-set: cannot load the dataset"):
        resolve_task("boolq=hf:some-org/no-such-set")


def test_finetune_without_a_training_split_names_the_hub_form(tmp_path, capsys):
    """lambada's hub copy has no training split: fine-tuning on it is one line."""
    path = save(tmp_path, "lambada", {"test": [{"text": "the cat sat on the mat"}]})
    task = resolve_task(f"lambada=hf:{path}")
    assert task.train == [] and len(task.examples) == 1
    model = byte_model(max_seq_len=64)
    export_model(tmp_path / "run", model, model.config)
    capsys.readouterr()  # save_to_disk's progress bars
    assert main(["finetune", str(tmp_path / "run"), "--task", f"lambada=hf:{path}",
                 "--out", str(tmp_path / "ft")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "task lambada has no training split" in err
