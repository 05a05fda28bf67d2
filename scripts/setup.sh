#!/usr/bin/env bash
# Create (or reuse) the project virtualenv in .venv and install scalinglab into it.
# torch is installed first and pinned to the CPU build that the PyPI mirror / local disk holds,
# so pip does not pull a multi-GB CUDA build; pyproject only asks for torch>=2.6, so GPU users
# who install their own torch first keep it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.scalinglab-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    if ! .venv/bin/python -c "import torch" 2>/dev/null; then
        .venv/bin/python -m pip install -q "torch==${SCALINGLAB_TORCH_VERSION:-2.13.0}"
    fi
    .venv/bin/python -m pip install -q -e ".[dev,data,eval,slurm,tox,hf,tensorboard,wandb,bias]"
    touch "$stamp"
fi
