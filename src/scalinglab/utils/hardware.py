"""Peak FLOP/s of the device a run uses, for MFU.

On a known GPU the vendor's dense peak is used; on a CPU (or an unknown GPU) the matmul
ceiling is measured once and cached in ``~/.cache/scalinglab/peak_flops.json``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from scalinglab.io import StorageError, atomic_write_json

# Dense (no sparsity) peak FLOP/s by GPU name fragment: (bf16, fp32/tf32).
GPU_PEAKS = {
    "H200": (989e12, 494e12),
    "H100": (989e12, 494e12),
    "A100": (312e12, 156e12),
    "A10G": (125e12, 62.5e12),
    "L4": (121e12, 60e12),
    "V100": (125e12, 15.7e12),
}


def measure_matmul_flops(dtype: torch.dtype = torch.float32, device: str = "cpu",
                         size: int = 1024, seconds: float = 0.5, burst: int = 4) -> float:
    """Sustained FLOP/s of square ``size`` matmuls in ``dtype`` on ``device``.

    The best rate over bursts of ``burst`` matmuls within ``seconds`` is returned: on a
    machine shared with other work, the best burst is the closest to the hardware's ceiling.
    """
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    for _ in range(3):
        a @ b
    _sync(device)
    best, start = 0.0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        for _ in range(burst):
            a @ b
        _sync(device)
        best = max(best, 2 * size**3 * burst / (time.perf_counter() - t0))
    return best


def _sync(device: str) -> None:
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def _cache_path() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return root / "scalinglab" / "peak_flops.json"


def peak_flops(device: torch.device, dtype: str) -> float:
    """Peak FLOP/s to quote MFU against for ``device`` computing in ``dtype`` (fp32/bf16)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for fragment, (bf16, fp32) in GPU_PEAKS.items():
            if fragment in name:
                return bf16 if dtype == "bf16" else fp32
    key = f"{device.type}:{dtype}:{torch.get_num_threads()}"
    path = _cache_path()
    try:
        cache = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        cache = {}
    if key not in cache:
        torch_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
        cache[key] = measure_matmul_flops(torch_dtype, str(device))
        try:
            atomic_write_json(path, cache)  # two processes measuring at once: no torn cache
        except StorageError:
            pass  # a read-only home only costs a re-measurement next time
    return float(cache[key])
