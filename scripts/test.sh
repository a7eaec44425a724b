#!/usr/bin/env bash
# Install everything the test suite needs, lint, then run the tests (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --dev
.venv/bin/ruff check .
bash scripts/typecheck.sh
.venv/bin/python -m pytest -q "$@"
