"""Decontamination (GPT-3 Appendix C): cuts, windows, fragments, splits, frequency, stats."""

from __future__ import annotations

import json

import pytest

from scalinglab.data.document import Document
from scalinglab.data.steps.decontam import DecontamConfig, Decontaminate, item_text
from scalinglab.errors import ScalinglabError

LEAK = "the wizard of the northern tower cast a spell that turned every river to silver"


def _filler(tag: str, words: int) -> str:
    return " ".join(f"{tag}{i}" for i in range(words))


def _write_jsonl(path, items):
    path.write_text("".join(json.dumps(x) + "\n" for x in items))
    return str(path)


def _run(docs, tmp_path, items, **kw):
    cfg = DecontamConfig(eval_sets=[_write_jsonl(tmp_path / "qa.jsonl", items)], **kw)
    step = Decontaminate(cfg)
    out = list(step.run(docs))
    stats = step.stats.as_dict()
    for name, counts in step.report().items():
        stats.update({f"eval.{name}.{k}": v for k, v in counts.items()})
    return out, stats


def test_item_text_uses_all_strings():
    item = {"question": "Q?", "choices": ["a", "b"], "answer": 1, "meta": {"context": "C"}}
    assert item_text(item) == "Q?\na\nb\nC"


def test_cut_with_window_and_fragments(tmp_path):
    left, right = _filler("left", 200), _filler("right", 200)
    text = f"{left} {LEAK.upper()}. {right}"
    items = [{"question": f"Which wizard? {LEAK}", "answer": "x"}, {"text": _filler("zz", 20)}]
    out, stats = _run([Document(text, "doc")], tmp_path, items)
    assert [d.id for d in out] == ["doc#0", "doc#1"]
    start = text.index(LEAK.upper())
    assert out[0].text == text[: start - 200].strip()
    assert out[1].text == text[start + len(LEAK) + 1 + 200 :].strip()
    assert all("wizard" not in d.text.lower() for d in out)
    assert stats["eval.qa.items"] == 2 and stats["eval.qa.collided_items"] == 1
    assert stats["removed_chars"] == len(LEAK) + 1 + 400


def test_short_fragments_and_too_many_splits_dropped(tmp_path):
    short = Document(f"{_filler('a', 70)} {LEAK} {_filler('b', 300)}", "short")
    many = Document(" ".join(f"{LEAK} {_filler(f'p{k}_', 80)}" for k in range(12)), "many")
    clean = Document(_filler("clean", 100), "clean")
    out, stats = _run([short, many, clean], tmp_path, [{"text": LEAK}])
    assert [d.id for d in out] == ["short#1", "clean"]
    assert stats["dropped.short_fragment.docs"] == 1
    assert stats["dropped.too_many_splits.docs"] == 1
    assert stats["contaminated.docs"] == 2


def test_short_eval_items_use_whole_length(tmp_path):
    eight = "silver swans sing softly beside the old mill"  # 8 words
    doc = Document(f"{_filler('x', 150)} {eight} {_filler('y', 150)}", "d")
    out, stats = _run([doc], tmp_path, [{"text": eight}, {"text": "too short item"}])
    assert [d.id for d in out] == ["d#0", "d#1"]
    assert stats["eval.qa.collided_items"] == 1 and stats["eval.qa.too_short_items"] == 1


def test_frequent_grams_are_not_cut(tmp_path):
    docs = [Document(f"{_filler(f'd{i}_', 60)} {LEAK} {_filler('e', 60)}", f"d{i}")
            for i in range(11)]
    out, stats = _run(docs, tmp_path, [{"text": LEAK}])
    assert [d.id for d in out] == [d.id for d in docs]
    assert stats["eval.qa.grams_ignored_frequent"] > 0 and stats["eval.qa.collided_items"] == 0
    out, _ = _run(docs[:10], tmp_path, [{"text": LEAK}])
    assert all("#" in d.id for d in out)


def test_bad_eval_set_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{not json\n')
    with pytest.raises(ScalinglabError, match=r"bad.jsonl:2: invalid JSON"):
        Decontaminate(DecontamConfig(eval_sets=[str(path)]))
    with pytest.raises(ScalinglabError, match="not found"):
        Decontaminate(DecontamConfig(eval_sets=[str(tmp_path / "nope.jsonl")]))


def test_scan_then_stream(tmp_path):
    docs = [Document(f"{_filler(f'd{i}_', 100)} {LEAK} {_filler('e', 150)}", f"d{i}")
            for i in range(3)]
    cfg = DecontamConfig(eval_sets=[_write_jsonl(tmp_path / "qa.jsonl", [{"text": LEAK}])],
                         max_doc_freq=2)
    step = Decontaminate(cfg)
    step.scan(docs)  # the corpus has the leak in 3 > 2 documents: too common to cut
    assert [d.id for d in step.run(iter(docs[:1]))] == ["d0"]
    assert step.report() == {"qa": {"items": 1, "too_short_items": 0, "collided_items": 0,
                                    "grams_ignored_frequent": 3}}  # 15 words: 3 13-grams
    step.scan(docs[:2])
    assert [d.id for d in step.run(iter(docs[:1]))] == ["d0#0", "d0#1"]
    assert step.report()["qa"]["collided_items"] == 1
