"""Exact and MinHash dedup steps, and the planted near-duplicate benchmark goals."""

from __future__ import annotations

import numpy as np

from scalinglab.data.document import Document
from scalinglab.data.planted import jaccard, make_planted_pairs, score_clusters
from scalinglab.data.steps.dedup import (
    ExactDedup,
    MinHashConfig,
    MinHashDedup,
    MinHasher,
    cluster_texts,
)


def _docs(texts):
    return [Document(t, f"d{i}") for i, t in enumerate(texts)]


def test_exact_dedup_normalises_case_and_whitespace():
    step = ExactDedup()
    texts = ["Hello  World\n", "hello world", "HELLO WORLD!", "other"]
    kept = [d.id for d in step.run(_docs(texts))]
    assert kept == ["d0", "d2", "d3"]
    stats = step.stats.as_dict()
    assert stats["dropped.exact_duplicate.docs"] == 1
    assert stats["dropped.exact_duplicate.bytes"] == len("hello world")
    assert stats["in.docs"] == 4 and stats["out.docs"] == 3


def test_minhash_estimates_jaccard():
    planted = make_planted_pairs(num_pairs=40, seed=3)
    hasher = MinHasher(num_perm=256, seed=5)
    sig = hasher.signatures([hasher.shingles(t) for t in planted.texts])
    est = (sig[0::2] == sig[1::2]).mean(axis=1)
    # standard error at P=256 is <= 0.031; 5 sigma bounds every pair
    assert np.abs(est - planted.jaccard).max() < 0.16
    assert abs(np.mean(est - planted.jaccard)) < 0.03


def test_planted_benchmark_meets_goals():
    planted = make_planted_pairs(num_pairs=1500, seed=1)
    assert (planted.jaccard >= 0.8).sum() > 100 and (planted.jaccard <= 0.5).sum() > 300
    score = score_clusters(planted, cluster_texts(planted.texts))
    assert score["recall_j_ge_0.8"] >= 0.95
    assert score["flagged_j_le_0.5"] <= 0.01
    assert score["unrelated_merges"] == 0


def test_banding_alone_flags_low_jaccard_pairs():
    # Why the verification exists: without it b=20 x r=6 flags many J<=0.5 pairs.
    planted = make_planted_pairs(num_pairs=600, seed=2)
    labels = cluster_texts(planted.texts, MinHashConfig(verify_threshold=0.0))
    assert score_clusters(planted, labels)["flagged_j_le_0.5"] > 0.02


def test_minhash_step_keeps_one_per_cluster_in_order():
    base = " ".join(f"word{i % 97} tok{i}" for i in range(300))
    near = base.replace("tok5 ", "changed ", 1)
    other = " ".join(f"else{i}" for i in range(300))
    texts = [other, base, near, base + " tail", "", "short text"]
    assert jaccard(base, near) > 0.9
    step = MinHashDedup()
    kept = [d.id for d in step.run(_docs(texts))]
    assert kept == ["d0", "d1", "d4", "d5"]
    stats = step.stats.as_dict()
    assert stats["dropped.near_duplicate.docs"] == 2
    assert stats["out.docs"] == 4


def test_minhash_state_spans_runs_and_restore():
    base = " ".join(f"word{i % 97} tok{i}" for i in range(300))
    near = base.replace("tok7 ", "edit ", 1)
    step = MinHashDedup()
    assert [d.id for d in step.run(_docs([base]))] == ["d0"]
    assert list(step.run(_docs(["x " * 5, near]))) == [Document("x " * 5, "d0")]
    resumed = MinHashDedup()  # a resumed run: the first part's output is restored
    resumed.restore(Document(base, "d0"))
    assert [d.id for d in resumed.run(_docs([near, "fresh words " * 20]))] == ["d1"]
    exact = ExactDedup()
    exact.restore(Document("Same text", "a"))
    assert list(exact.run(_docs(["same  TEXT"]))) == []


def test_empty_inputs():
    assert list(MinHashDedup().run([])) == []
    assert len(cluster_texts([])) == 0
    assert cluster_texts(["", "a b"]).tolist() == [0, 1]


def test_long_documents_hash_in_chunks(monkeypatch):
    import scalinglab.data.steps.dedup as dedup

    planted = make_planted_pairs(num_pairs=5, seed=4)
    hasher = MinHasher()
    shingles = [hasher.shingles(t) for t in planted.texts]
    whole = hasher.signatures(shingles)
    monkeypatch.setattr(dedup, "_BATCH_SHINGLES", 64)  # every document is now "long"
    np.testing.assert_array_equal(hasher.signatures(shingles), whole)


def test_bad_minhash_config_is_a_clear_error(capsys, tmp_path):
    import pytest

    from scalinglab.cli import main
    from scalinglab.config import ConfigError

    with pytest.raises(ConfigError, match="rows_per_band"):
        MinHashConfig(rows_per_band=0)
    (tmp_path / "a.jsonl").write_text('{"text": "x"}\n')
    code = main(["data", "prepare", "--source", str(tmp_path / "a.jsonl"), "--out",
                 str(tmp_path / "c"), "--quiet", "dedup.minhash.verify_threshold=2"])
    assert code == 2 and "verify_threshold" in capsys.readouterr().err
