#!/usr/bin/env bash
# Create (or reuse) the project virtualenv in .venv and install scalinglab into it.
# torch is installed first and pinned to the CPU build that the PyPI mirror / local disk holds,
# so pip does not pull a multi-GB CUDA build; pyproject only asks for torch>=2.6, so GPU users
# who install their own torch first keep it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
EXTRAS=dev,data,eval,slurm,tox,hf,tensorboard,wandb,bias

# pip's own per-package lines ("Collecting ...", "Installing collected packages ...") are the
# progress: a fresh install takes a minute or two and should not look hung.
say() { echo "setup: $*" >&2; }
pip_install() {
    .venv/bin/python -m pip install --progress-bar off "$@" 2>&1 \
        | { grep --line-buffered -E '^(Collecting|Installing collected|Successfully|ERROR|error)' \
            || true; } | sed -u 's/^/  pip: /' >&2
}

if [ ! -x .venv/bin/python ]; then
    say "creating .venv with $("$PY" --version)"
    "$PY" -m venv .venv
fi
stamp=.venv/.scalinglab-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    start=$(date +%s)
    say "upgrading pip"
    .venv/bin/python -m pip install -q --upgrade pip
    if ! .venv/bin/python -c "import torch" 2>/dev/null; then
        say "installing torch==${SCALINGLAB_TORCH_VERSION:-2.13.0} (CPU build)"
        pip_install "torch==${SCALINGLAB_TORCH_VERSION:-2.13.0}"
    fi
    say "installing scalinglab[$EXTRAS] and its dependencies"
    pip_install -e ".[$EXTRAS]"
    touch "$stamp"
    say "done in $(( $(date +%s) - start )) s"
else
    say ".venv is up to date (delete $stamp to reinstall)"
fi
