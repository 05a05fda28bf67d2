"""FSDP2's precision policy: bf16 parameters with fp32 reduction only on GPU in bf16."""

from __future__ import annotations

import torch

from scalinglab.parallel.fsdp import mixed_precision


def test_bf16_on_gpu_reduces_in_fp32() -> None:
    policy = mixed_precision("bf16", "cuda")
    assert policy.param_dtype == torch.bfloat16 and policy.reduce_dtype == torch.float32


def test_fp32_and_cpu_keep_full_precision() -> None:
    for dtype, device in (("fp32", "cuda"), ("bf16", "cpu"), ("fp32", "cpu")):
        policy = mixed_precision(dtype, device)
        assert policy.param_dtype is None and policy.reduce_dtype is None
