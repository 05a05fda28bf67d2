"""``scalinglab data prepare`` with exact / MinHash dedup, decontamination and the n-gram index."""

from __future__ import annotations

import json
import random

import numpy as np
from tokenizers import Tokenizer

from scalinglab.cli import main
from scalinglab.data.ngram_index import NgramIndex
from scalinglab.data.shards import open_split

STOP = ["the", "and", "of", "to", "with", "that", "be", "have"]


def _doc(rng: random.Random, vocab: list[str], words: int = 160) -> str:
    out = [rng.choice(STOP) if rng.random() < 0.3 else rng.choice(vocab) for _ in range(words)]
    return " ".join(out).capitalize() + "."


def _corpus(tmp_path):
    rng = random.Random(0)
    vocab = ["".join(rng.choice("abcdefghilmnoprstu") for _ in range(rng.randint(3, 8)))
             for _ in range(3000)]
    docs = [_doc(rng, vocab) for _ in range(40)]
    words = docs[5].split()
    near = " ".join(words[:100] + ["changed"] + words[101:])  # Jaccard ~0.94 with docs[5]
    leak = " ".join(docs[9].split()[60:90])  # a 30-word passage of docs[9]
    rows = docs + [docs[3].replace(" ", "  "), near]  # an exact (normalised) and a near dup
    (tmp_path / "src.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in rows))
    eval_items = [{"question": leak, "choices": ["a", "b"]},
                  {"question": "an unrelated question with quite a few words in it here now"}]
    (tmp_path / "quiz.jsonl").write_text("".join(json.dumps(x) + "\n" for x in eval_items))
    return leak


def test_prepare_dedups_decontaminates_and_indexes(tmp_path, capsys):
    leak = _corpus(tmp_path)
    out = tmp_path / "corpus"
    args = ["data", "prepare", "--source", f"web={tmp_path / 'src.jsonl'}", "--out", str(out),
            "--quiet", "--json", f"decontam.eval_sets=[{tmp_path / 'quiz.jsonl'}]"]
    assert main(args) == 0
    stats = json.loads(capsys.readouterr().out)
    steps = {s["name"]: s for s in stats["steps"]}
    assert steps["exact_dedup"]["dropped"]["exact_duplicate"]["docs"] == 1
    assert steps["minhash_dedup"]["dropped"]["near_duplicate"]["docs"] == 1
    assert steps["decontaminate"]["counts"]["contaminated.docs"] == 1
    quiz = stats["decontamination"]["quiz"]
    assert quiz == {"items": 2, "too_short_items": 0, "collided_items": 1,
                    "grams_ignored_frequent": 0, "dirty_items_after": 0}
    corpus_text = " ".join(json.loads(line)["text"]
                           for line in (out / "documents-00000.jsonl").read_text().splitlines())
    assert leak not in corpus_text and len(corpus_text) > 0
    index = NgramIndex.load(out / "ngram_index")
    assert index.num_docs == stats["output"]["documents"] and not index.dirty(leak)
    assert main(args) == 0  # a finished corpus is returned as is
    assert json.loads(capsys.readouterr().out)["decontamination"]["quiz"] == quiz


def test_prepare_without_dedup_or_eval_sets(tmp_path, capsys):
    _corpus(tmp_path)
    out = tmp_path / "plain"
    assert main(["data", "prepare", "--source", str(tmp_path / "src.jsonl"), "--out", str(out),
                 "--quiet", "--json", "dedup.exact=false", "dedup.near=false",
                 "ngram_index=false"]) == 0
    stats = json.loads(capsys.readouterr().out)
    names = [s["name"] for s in stats["steps"]]
    assert not {"exact_dedup", "minhash_dedup", "decontaminate"} & set(names)
    assert "decontamination" not in stats and not (out / "ngram_index").exists()


def test_tokenizer_reads_prepared_corpus(tmp_path, capsys):
    from scalinglab.tokenizer.corpus import read_texts

    _corpus(tmp_path)
    out = tmp_path / "c"
    assert main(["data", "prepare", "--source", str(tmp_path / "src.jsonl"), "--out", str(out),
                 "--quiet", "ngram_index=false"]) == 0
    stats = json.loads((out / "stats.json").read_text())
    texts = list(read_texts([str(out)]))  # documents-*.jsonl only, not parts/ as well
    assert len(texts) == stats["output"]["documents"]
    assert main(["tokenizer", "train", "--corpus", str(out), "--vocab-size", "600", "--quiet",
                 "--multiword", "--out", str(tmp_path / "tok.json")]) == 0
    # the multi-word tokenizer packs into shards that decode back to the documents
    assert main(["data", "tokenize", "--corpus", str(out), "--tokenizer",
                 str(tmp_path / "tok.json"), "--out", str(tmp_path / "shards"), "--quiet",
                 "val_fraction=0.1"]) == 0
    tok = Tokenizer.from_file(str(tmp_path / "tok.json"))
    eot = tok.token_to_id("<|endoftext|>")
    ids = np.concatenate([np.asarray(s.tokens) for split in ("train", "val")
                          for s in open_split(tmp_path / "shards", split)])
    cuts = np.flatnonzero(ids == eot)
    starts = np.r_[0, cuts[:-1] + 1]
    decoded = [tok.decode(ids[a:b].tolist()) for a, b in zip(starts, cuts, strict=True)]
    assert sorted(decoded) == sorted(texts)


def test_resumed_prepare_still_dedups_across_parts(tmp_path, monkeypatch):
    import pytest

    from scalinglab.data import pipeline
    from scalinglab.data.pipeline import PrepareConfig, prepare, read_jsonl_docs
    from scalinglab.data.sources import SourceConfig
    from scalinglab.data.steps.base import PipelineStep

    rng = random.Random(1)
    vocab = ["".join(rng.choice("abcdefghilmnoprstu") for _ in range(rng.randint(3, 8)))
             for _ in range(3000)]
    docs = [_doc(rng, vocab) for _ in range(12)]
    words = docs[2].split()
    near = " ".join(words[:50] + ["changed"] + words[51:])
    web = tmp_path / "web"
    web.mkdir()
    for f, texts in enumerate([docs[:6], docs[6:] + [near, docs[4].replace(" ", "  ")]]):
        (web / f"p{f}.jsonl").write_text("".join(
            json.dumps({"text": t, "id": f"{f}-{i}"}) + "\n" for i, t in enumerate(texts)))

    class Crash(PipelineStep):
        name = "crash"
        armed = True

        def process(self, doc):
            if Crash.armed and doc.id.endswith("1-3"):
                raise KeyboardInterrupt
            yield doc

    def cfg(out):
        return PrepareConfig(sources=[SourceConfig(path=str(web), name="web")],
                             out=str(tmp_path / out), progress=False, ngram_index=False)

    build = pipeline.build_steps
    monkeypatch.setattr(pipeline, "build_steps", lambda c: [*build(c), Crash()])
    with pytest.raises(KeyboardInterrupt):
        prepare(cfg("corpus"))
    Crash.armed = False  # same steps (the stats of finished parts list them), no crash
    stats = prepare(cfg("corpus"))  # resumed: part 0 is restored into the dedup steps
    steps = {s["name"]: s for s in stats["steps"]}
    assert steps["minhash_dedup"]["dropped"]["near_duplicate"]["docs"] == 1
    assert steps["exact_dedup"]["dropped"]["exact_duplicate"]["docs"] == 1

    def ids(out):
        return sorted(d.id for f in (tmp_path / out).glob("documents-*.jsonl")
                      for d in read_jsonl_docs(f))

    prepare(cfg("fresh"))
    assert ids("corpus") == ids("fresh") and len(ids("fresh")) == 12


def test_workers_keep_the_frequency_rule_corpus_wide(tmp_path, capsys):
    # The leak is in 11 documents over 2 parts: more than max_doc_freq=10 corpus-wide (left
    # alone), though no single part has more than 10 (per-part workers would cut it).
    rng = random.Random(2)
    vocab = ["".join(rng.choice("abcdefghilmnoprstu") for _ in range(rng.randint(3, 8)))
             for _ in range(3000)]
    leak = " ".join(_doc(rng, vocab, 20).split())
    web = tmp_path / "web"
    web.mkdir()
    for f, count in enumerate((6, 5)):
        rows = [f"{_doc(rng, vocab)} {leak} {_doc(rng, vocab)}" for _ in range(count)]
        (web / f"p{f}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in rows))
    (tmp_path / "quiz.jsonl").write_text(json.dumps({"text": leak}) + "\n")
    assert main(["data", "prepare", "--source", str(web), "--quiet", "--json",
                 "--out", str(tmp_path / "w2"), f"decontam.eval_sets=[{tmp_path / 'quiz.jsonl'}]",
                 "dedup.exact=false", "dedup.near=false", "ngram_index=false", "workers=2"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["decontamination"]["quiz"]["grams_ignored_frequent"] > 0
    text = (tmp_path / "w2" / "documents-00000.jsonl").read_text()
    assert text.count(leak) == 11
