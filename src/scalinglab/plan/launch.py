"""From a planned layout to a run: the TrainConfig, the ``torchrun`` command and a Slurm script.

The planner's ``Layout`` becomes the trainer's ``parallel`` config through
:func:`scalinglab.plan.layout.to_parallel` (exact and tested both ways), so what the planner
estimated is what ``scalinglab train`` runs. The command carries everything that differs from
the defaults as dotlist overrides, so it is ready to paste without a config file; with
``--write-config run.yaml`` the same settings go to a file and the command reads it.
"""

from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

from scalinglab.io import atomic_write_text
from scalinglab.layout.config import ParallelConfig
from scalinglab.model.config import ModelConfig
from scalinglab.model.presets import PRESETS, get_preset
from scalinglab.plan.hardware import GPUSpec
from scalinglab.plan.layout import Layout, run_overrides, to_parallel
from scalinglab.train.config import TrainConfig

DATA, OUT = "$DATA", "$OUT"  # filled in by the user (or the Slurm script's environment)


def run_config(cfg: ModelConfig, layout: Layout, seq_len: int, preset: str = "",
               tokens: float = 0) -> TrainConfig:
    """The TrainConfig that trains ``cfg`` under ``layout`` (bf16, on the GPUs)."""
    model = dataclasses.replace(cfg, **run_overrides(cfg, layout))
    return TrainConfig(model=model, preset=preset, seq_len=seq_len,
                       batch_tokens=layout.global_batch * seq_len,
                       micro_batch_size=layout.micro_batch, tokens=int(tokens), dtype="bf16",
                       parallel=to_parallel(layout))


def _diff(now: dict, base: dict, prefix: str) -> list[str]:
    """Dotlist ``prefix.key=value`` for every key where ``now`` differs from ``base``."""
    out = []
    for key, value in now.items():
        if base.get(key) != value:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            out.append(f"{prefix}{key}={text}")
    return out


def train_args(run: TrainConfig, config_path: str | None = None) -> list[str]:
    """``scalinglab train`` arguments for ``run``: its file, or preset + overrides."""
    p = run.parallel
    args = ["-m", "scalinglab", "train"]
    if config_path:
        args += ["--config", config_path]
    elif run.preset:
        args += ["--preset", run.preset]
    args += ["--data", DATA, "--out", OUT]
    args += ["--parallel", f"dp={p.dp},fsdp={p.fsdp},tp={p.tp},pp={p.pp}"]
    if config_path:
        # The data's vocabulary replaces the model's unless it is given on the command line.
        return args + [f"model.vocab_size={run.model.vocab_size}"]
    base_model = get_preset(run.preset) if run.preset else ModelConfig()
    others = {k: v for k, v in run.as_dict().items() if k not in ("model", "parallel", "preset")}
    pdict = {k: v for k, v in p.as_dict().items() if k not in ("dp", "fsdp", "tp", "pp")}
    overrides = (_diff(others, TrainConfig().as_dict(), "")
                 + _diff(pdict, ParallelConfig().as_dict(), "parallel.")
                 + _diff(run.model.as_dict(), base_model.as_dict(), "model."))
    if any(o.startswith(("model.d_model=", "model.n_heads=")) for o in overrides):
        # Give the derived sizes too: train would otherwise derive them again from d_model.
        overrides += [f"model.d_head={run.model.head_dim}", f"model.d_ff={run.model.ff_dim}"]
    overrides = [o for o in overrides if not o.startswith("model.vocab_size=")]
    return args + [f"model.vocab_size={run.model.vocab_size}", *dict.fromkeys(overrides)]


def torchrun_command(run: TrainConfig, gpu: GPUSpec, config_path: str | None = None) -> str:
    """The ``torchrun`` line for every node (``--standalone`` on one node)."""
    gpus = run.parallel.dp * run.parallel.fsdp * run.parallel.tp * run.parallel.pp
    per_node = min(gpus, gpu.gpus_per_node)
    nodes = -(-gpus // per_node)
    if nodes == 1:
        launch = ["torchrun", "--standalone", f"--nproc-per-node={per_node}"]
    else:
        launch = ["torchrun", f"--nnodes={nodes}", f"--nproc-per-node={per_node}",
                  "--rdzv-backend=c10d", "--rdzv-endpoint=$MASTER_ADDR:29500",
                  "--rdzv-id=$SLURM_JOB_ID"]
    words = [*launch, *train_args(run, config_path)]
    # Keep $DATA / $MASTER_ADDR... expandable by the shell: quote everything else.
    return " ".join(w if "$" in w else shlex.quote(w) for w in words)


def slurm_script(run: TrainConfig, gpu: GPUSpec, config_path: str | None = None,
                 job_name: str = "scalinglab") -> str:
    """An sbatch script: one task per node, each running torchrun over its GPUs."""
    gpus = run.parallel.dp * run.parallel.fsdp * run.parallel.tp * run.parallel.pp
    per_node = min(gpus, gpu.gpus_per_node)
    nodes = -(-gpus // per_node)
    return "\n".join([
        "#!/bin/bash",
        f"#SBATCH --job-name={job_name}",
        f"#SBATCH --nodes={nodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --gpus-per-node={per_node}",
        "#SBATCH --exclusive",
        "set -euo pipefail",
        ': "${DATA:?set DATA to the token shard directory}"',
        ': "${OUT:?set OUT to the run directory}"',
        'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        "export MASTER_ADDR",
        f"srun {torchrun_command(run, gpu, config_path)}",
        "",
    ])


def write_config(run: TrainConfig, path: str | Path) -> Path:
    """Write ``run`` as YAML (atomically); ``scalinglab train --config`` reads it back."""
    import yaml

    return atomic_write_text(path, yaml.safe_dump(run.as_dict(), sort_keys=False))


def preset_name(spec: str) -> str:
    """``spec`` when it names a preset (``plan --model``), else "" (a LAYERS/WIDTH/HEADS)."""
    return spec if spec in PRESETS else ""
