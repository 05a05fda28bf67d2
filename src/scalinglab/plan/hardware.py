"""Accelerator catalogue: peak dense bf16 FLOP/s, memory, link bandwidths, GPUs per node.

Bandwidths are per GPU and per direction, in GB/s (1e9 bytes/s): ``nvlink_gbs`` inside a node
(A100 NVLink 3: 600 GB/s bidirectional = 300 each way; H100/H200 NVLink 4: 450 each way) and
``internode_gbs`` across nodes (DGX A100: one 200 Gb/s HDR NIC per GPU = 25 GB/s; DGX H100/H200:
one 400 Gb/s NDR NIC per GPU = 50 GB/s). Users add or override kinds with a YAML/JSON file
mapping a name to the fields of :class:`GPUSpec`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from scalinglab.config import Config, ConfigError, read_yaml

GIB = 2**30


@dataclasses.dataclass
class GPUSpec(Config):
    """One accelerator kind as the planner sees it."""

    name: str = "gpu"
    """Catalogue key, e.g. ``a100-80gb``."""
    peak_bf16_tflops: float = 312.0
    """Dense (no sparsity) bf16 tensor-core peak, TFLOP/s."""
    memory_gib: float = 80.0
    """Device memory in GiB (what ``nvidia-smi`` shows, / 1024)."""
    nvlink_gbs: float = 300.0
    """Intra-node GPU-to-GPU bandwidth per GPU, per direction, GB/s."""
    internode_gbs: float = 25.0
    """Inter-node bandwidth per GPU, per direction, GB/s."""
    gpus_per_node: int = 8
    """GPUs sharing one NVLink domain (tensor parallelism stays inside it)."""
    hbm_gbs: float = 2039.0
    """Device-memory bandwidth, GB/s (memory-bound kernels: norms, activations, AdamW)."""
    sms: int = 108
    """Streaming multiprocessors: a GEMM's output tiles run in waves of this many."""
    matmul_ceiling: float = 0.859
    """Fraction of the peak the best-shaped bf16 GEMM reaches (measured "MAMF")."""
    attention_efficiency: float = 0.55
    """Fraction of the peak fused (flash) attention reaches, forward and backward."""
    power_limit_w: float = 0.0
    """Board power limit when set below ``tdp_w`` (0: none); it lowers the sustained clock."""
    tdp_w: float = 400.0
    """Rated board power (the power the ceiling above was measured at)."""

    @property
    def peak_flops(self) -> float:
        return self.peak_bf16_tflops * 1e12

    @property
    def memory_bytes(self) -> float:
        return self.memory_gib * GIB

    @property
    def clock_scale(self) -> float:
        """Sustained-clock factor under a power cap: dynamic power ~ f V^2 with V ~ f, so
        f ~ P^(1/3) (first-order DVFS; static power makes the real drop larger)."""
        if not self.power_limit_w or self.power_limit_w >= self.tdp_w:
            return 1.0
        return (self.power_limit_w / self.tdp_w) ** (1 / 3)


# Vendor datasheets (SXM parts, dense bf16). H200's "141 GB" is 143771 MiB = 140.4 GiB.
# HBM bandwidth: A100-40GB 1555, A100-80GB 2039, H100 SXM 3350, H200 4800 GB/s (datasheets).
# matmul_ceiling: Bekman, "Machine Learning Engineering", Maximum Achievable Matmul FLOPS
# table (A100 SXM 267.9 of 312 = 85.9%, H100 SXM 792.1 of 989 = 80.1%; H200 taken as H100).
# attention_efficiency: FlashAttention-2 (Dao 2023), forward+backward, head dim 128, causal:
# ~190 of 312 TFLOP/s on A100 (0.6) and ~335 of 989 on H100 (0.34).
# h100-96gb-500w: torchtitan's benchmark machines (docs/performance.md, December 2024):
# H100 with 96 GB HBM2e at 2.4 TB/s, run at the default 500 W limit (TDP 700 W), 400 Gb/s
# RDMA per GPU. "96 GB" shows as ~95 GiB; 94.0 GiB usable is assumed here.
CATALOGUE: dict[str, GPUSpec] = {
    spec.name: spec
    for spec in (
        GPUSpec("a100-40gb", 312.0, 40.0, 300.0, 25.0, 8, 1555.0, 108, 0.859, 0.6, 0.0, 400.0),
        GPUSpec("a100-80gb", 312.0, 80.0, 300.0, 25.0, 8, 2039.0, 108, 0.859, 0.6, 0.0, 400.0),
        GPUSpec("h100-80gb", 989.0, 80.0, 450.0, 50.0, 8, 3350.0, 132, 0.801, 0.34, 0.0, 700.0),
        GPUSpec("h100-96gb-500w", 989.0, 94.0, 450.0, 50.0, 8, 2400.0, 132, 0.801, 0.34, 500.0,
                700.0),
        GPUSpec("h200-141gb", 989.0, 140.4, 450.0, 50.0, 8, 4800.0, 132, 0.801, 0.34, 0.0,
                700.0),
    )
}


def load_catalogue(path: str | Path | None = None) -> dict[str, GPUSpec]:
    """The built-in catalogue, extended (or overridden) by the kinds in ``path``.

    The file maps a kind name to :class:`GPUSpec` fields; omitted fields keep the defaults
    (or the built-in kind's values when the name overrides one).
    """
    catalogue = dict(CATALOGUE)
    if path is None:
        return catalogue
    path = Path(path)
    data = read_yaml(path, "GPU catalogue")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of GPU kind -> fields")
    for name, fields in data.items():
        if not isinstance(fields, dict):
            raise ConfigError(f"{path}: entry {name!r} must be a mapping of GPUSpec fields")
        base = catalogue.get(str(name), GPUSpec())
        try:
            spec = base.merge({**fields, "name": str(name)})
        except ConfigError as e:
            raise ConfigError(f"{path}: {name}: {e}") from None
        _check_spec(spec, f"{path}: {name}")
        catalogue[spec.name] = spec
    return catalogue


def _check_spec(spec: GPUSpec, where: str) -> None:
    for field in ("peak_bf16_tflops", "memory_gib", "nvlink_gbs", "internode_gbs",
                  "gpus_per_node", "hbm_gbs", "sms", "matmul_ceiling", "attention_efficiency",
                  "tdp_w"):
        if getattr(spec, field) <= 0:
            raise ConfigError(f"{where}: {field} must be positive, got {getattr(spec, field)}")


def get_gpu(name: str, catalogue_path: str | Path | None = None) -> GPUSpec:
    """The spec of GPU kind ``name``; a one-line error lists the known kinds."""
    catalogue = load_catalogue(catalogue_path)
    key = name.lower()
    if key not in catalogue:
        raise ConfigError(f"unknown GPU kind {name!r}; known: {', '.join(catalogue)}")
    return catalogue[key]
