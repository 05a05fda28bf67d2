#!/usr/bin/env bash
# The README's main job: set up .venv, then run `scalinglab demo` (a small end-to-end study).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/scalinglab demo "$@"
