"""Mixture: epochs implied by weights, sampling by weight, bad weights refused."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from scalinglab.data.mixture import MixtureError, plan_mixture, sample_counts, sample_mixture

CLEAN = {"web": {"docs": 100, "bytes": 1000}, "books": {"docs": 10, "bytes": 500}}


def test_natural_weights_mean_one_epoch_each() -> None:
    plan = plan_mixture(CLEAN, {"web": None, "books": None})
    assert plan["web"]["weight"] == pytest.approx(2 / 3)
    assert all(p["epochs"] == pytest.approx(1.0) for p in plan.values())


def test_weights_imply_epochs() -> None:
    plan = plan_mixture(CLEAN, {"web": 1.0, "books": 1.0}, total_bytes=3000)
    assert plan["web"]["epochs"] == pytest.approx(1.5)  # 1500 of 1000 bytes
    assert plan["books"]["epochs"] == pytest.approx(3.0)  # 1500 of 500 bytes


def test_sampling_follows_epochs() -> None:
    counts = sample_counts(10, 2.3, random.Random(0))
    assert sum(counts) == 23 and set(counts) == {2, 3}
    plan = plan_mixture(CLEAN, {"web": 0.2, "books": 0.8}, total_bytes=1000)
    picks = sample_mixture({"web": 100, "books": 10}, plan, seed=1)
    by_source = Counter(s for s, _, _ in picks)
    assert by_source == {"web": 20, "books": 16}  # 0.2 and 1.6 epochs
    assert picks == sample_mixture({"web": 100, "books": 10}, plan, seed=1)  # deterministic


def test_bad_weights() -> None:
    with pytest.raises(MixtureError, match="not for"):
        plan_mixture(CLEAN, {"web": 1.0, "books": None})
    with pytest.raises(MixtureError, match="negative"):
        plan_mixture(CLEAN, {"web": 1.0, "books": -1.0})
