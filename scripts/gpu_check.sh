#!/usr/bin/env bash
# The GPU check (scripts/gpu_check.py): one table, under 8 minutes on one GPU.
#   bash scripts/gpu_check.sh [--dry-run] [--peak-tflops T] [--out DIR]
# Run from the repository root with the project's environment (.venv when present).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
[ -x .venv/bin/python ] && PY=.venv/bin/python
exec timeout 480 "$PY" scripts/gpu_check.py "$@"
