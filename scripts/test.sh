#!/usr/bin/env bash
# Install everything the test suite needs, lint, then run the tests (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --dev
# The real-model test's model (93 MB, sha256-pinned), once per machine.
export PATCHSMITH_MODELS="${PATCHSMITH_MODELS:-${XDG_CACHE_HOME:-$HOME/.cache}/patchsmith/models}"
.venv/bin/patchsmith models install smollm2-135m
.venv/bin/ruff check .
bash scripts/typecheck.sh
.venv/bin/python -m pytest -q "$@"
