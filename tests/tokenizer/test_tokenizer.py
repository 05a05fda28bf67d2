"""Tokenizer lab: byte-level and multi-word BPE training, loading, comparison and the CLI."""

from __future__ import annotations

import json
import random

import pytest
from tokenizers import Tokenizer

from scalinglab.cli import main
from scalinglab.errors import ScalinglabError
from scalinglab.tokenizer.compare import compare
from scalinglab.tokenizer.corpus import read_texts
from scalinglab.tokenizer.train import (
    EOT,
    TokenizerConfig,
    combine_stages,
    train_stages,
    train_tokenizer,
)

NOUNS = ["king", "lord", "house", "people", "land", "city", "son", "servant", "river", "sword"]
VERBS = ["said unto", "came to", "went up to", "spake unto", "looked upon", "sent for"]
ADJS = ["great", "holy", "old", "young", "wise", "wicked"]


def _docs(n: int, seed: int) -> list[str]:
    """Synthetic documents with recurring multi-word phrases, as in scripture and plays."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n):
        lines = []
        for _ in range(12):
            lines.append(f"And the {rng.choice(ADJS)} {rng.choice(NOUNS)} {rng.choice(VERBS)} "
                         f"the {rng.choice(NOUNS)} of the {rng.choice(NOUNS)}, and said, "
                         f"Behold, I am the {rng.choice(NOUNS)} of {rng.randint(1, 99)}.")
        docs.append("\n".join(lines))
    return docs


@pytest.fixture(scope="module")
def corpus():
    return _docs(150, seed=0), _docs(30, seed=1)


def test_bytelevel_bpe(corpus, tmp_path):
    train, held = corpus
    tok = train_tokenizer(train, TokenizerConfig(vocab_size=400))
    assert tok.get_vocab_size() == 400 and tok.token_to_id(EOT) == 0
    assert not any("Ġ" in t[1:] for t in tok.get_vocab())  # no token crosses a space
    tok.save(str(tmp_path / "t.json"))
    loaded = Tokenizer.from_file(str(tmp_path / "t.json"))
    enc = loaded.encode(held[0] + EOT)
    assert enc.ids[-1] == 0 and loaded.decode(enc.ids[:-1]) == held[0]
    assert loaded.decode(loaded.encode("Ünïcode ✓ text").ids) == "Ünïcode ✓ text"  # byte fallback


def test_multiword_crosses_spaces_and_saves_tokens(corpus, tmp_path):
    train, held = corpus
    cfg = TokenizerConfig(vocab_size=600, multiword=True)
    stage1, stage2 = train_stages(train, cfg)
    tok, used = combine_stages(stage1, stage2, cfg)
    spec = json.loads(stage2.to_str())  # stage 2 as far as the combined tokenizer took it
    spec["model"]["merges"] = spec["model"]["merges"][:used]
    stage2 = Tokenizer.from_str(json.dumps(spec))
    assert tok.get_vocab_size() == 600
    assert any("Ġ" in t[1:] for t in tok.get_vocab())  # multi-word tokens exist
    for text in held:
        assert tok.decode(tok.encode(text).ids) == text
    # The combined tokenizer reproduces the literal two-stage segmentation.
    same = sum(_two_stage_tokens(stage1, stage2, t) == tok.encode(t).tokens for t in held)
    assert same >= 0.9 * len(held)  # NOTE: measured: all of them
    tok.save(str(tmp_path / "mw.json"))
    train_tokenizer(train, TokenizerConfig(vocab_size=600)).save(str(tmp_path / "bpe.json"))
    rows = compare([str(tmp_path / "bpe.json"), str(tmp_path / "mw.json")], held)
    assert rows[1]["tokens"] < 0.85 * rows[0]["tokens"]
    assert rows[1]["saving_vs_first"] == pytest.approx(1 - rows[1]["tokens"] / rows[0]["tokens"])


def _two_stage_tokens(stage1: Tokenizer, stage2: Tokenizer, text: str) -> list[str]:
    """Encode with stage 1, then stage 2 over private-use characters; byte-level strings."""
    enc = stage1.encode(text)
    id_to_str = {i: s for s, i in stage1.get_vocab().items()}
    units: dict[int, list[int]] = {}
    for tid, word in zip(enc.ids, enc.word_ids, strict=True):
        units.setdefault(word, []).append(tid)
    out = []
    for ids in units.values():
        for piece in stage2.encode("".join(chr(0xF0000 + i) for i in ids)).tokens:
            out.append("".join(id_to_str[ord(c) - 0xF0000] for c in piece))
    return out


def test_cli_train_and_compare(corpus, tmp_path, capsys):
    train, held = corpus
    (tmp_path / "train.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in train))
    (tmp_path / "held.txt").write_text("\n\n".join(held))
    for name, extra in (("bpe", []), ("mw", ["--multiword", "multiword_unit=line"])):
        assert main(["tokenizer", "train", "--corpus", str(tmp_path / "train.jsonl"),
                     "--vocab-size", "500", "--out", str(tmp_path / f"{name}.json"), *extra]) == 0
    stats = json.loads((tmp_path / "mw.stats.json").read_text())
    assert stats["documents"] == 150 and stats["config"]["multiword_unit"] == "line"
    mw = Tokenizer.from_file(str(tmp_path / "mw.json"))
    assert not any("Ċ" in t.rstrip("Ċ") for t in mw.get_vocab())  # line mode: newlines end tokens
    capsys.readouterr()
    assert main(["tokenizer", "compare", "--tokenizers", str(tmp_path / "bpe.json"),
                 str(tmp_path / "mw.json"), "--text", str(tmp_path / "held.txt"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    # ordinary BPE runs out of pairs on this tiny corpus before 500; multi-word does not
    assert rows[0]["vocab_size"] <= 500 and rows[1]["vocab_size"] == 500
    assert rows[1]["bytes_per_token"] > rows[0]["bytes_per_token"]
    # --task: solved examples per context; a shot costs the tokens of "query answer\n\n"
    items = [{"query": " ".join(h.split()[:12]), "choices": ["yes", "no"], "gold": 0}
             for h in held[:30]]
    (tmp_path / "mc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    capsys.readouterr()
    assert main(["tokenizer", "compare", "--tokenizers", str(tmp_path / "bpe.json"),
                 str(tmp_path / "mw.json"), "--text", str(tmp_path / "held.txt"), "--json",
                 "--task", f"mc={tmp_path / 'mc.jsonl'}", "--context", "64,256"]) == 0
    fit = [r["in_context"] for r in json.loads(capsys.readouterr().out)]
    bpe = Tokenizer.from_file(str(tmp_path / "bpe.json"))
    cost = [len(bpe.encode(r["query"] + " yes\n\n", add_special_tokens=False).ids)
            for r in items]
    assert fit[0]["shot_tokens"] == pytest.approx(sum(cost) / len(cost))
    assert fit[1]["shot_tokens"] < fit[0]["shot_tokens"]  # multi-word: shorter shots
    assert fit[1]["fit"]["256"] >= fit[0]["fit"]["256"] > fit[0]["fit"]["64"]


def test_bad_inputs_are_clear_errors(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"body": "no text"}\n')
    with pytest.raises(ScalinglabError, match=r"bad.jsonl:2"):
        list(read_texts([str(bad)]))
    assert main(["tokenizer", "train", "--corpus", str(tmp_path / "missing"), "--vocab-size",
                 "400", "--out", str(tmp_path / "t.json")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "junk.json").write_text("{}")
    assert main(["tokenizer", "compare", "--tokenizers", str(tmp_path / "junk.json"),
                 "--text", str(bad)]) == 2
