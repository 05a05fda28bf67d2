#!/usr/bin/env bash
# The README's test command: set up .venv, then run the whole test suite (slow and
# distributed tests included; pass e.g. `-m "not slow"` for the quick subset).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec .venv/bin/python -m pytest -q "$@"
