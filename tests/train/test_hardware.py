"""The peak FLOP/s that MFU is quoted against: measured once on CPU, then cached."""

from __future__ import annotations

import json

import torch

from scalinglab.utils.hardware import measure_matmul_flops, peak_flops


def test_matmul_ceiling_is_positive_and_plausible():
    flops = measure_matmul_flops(torch.float32, size=128, seconds=0.05)
    assert 1e6 < flops < 1e15


def test_cpu_peak_is_measured_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = peak_flops(torch.device("cpu"), "fp32")
    cache = tmp_path / "scalinglab" / "peak_flops.json"
    stored = json.loads(cache.read_text())
    assert list(stored.values()) == [first]
    key = next(iter(stored))
    cache.write_text(json.dumps({key: 123.0}))  # a later call reads the cache, not the CPU
    assert peak_flops(torch.device("cpu"), "fp32") == 123.0
