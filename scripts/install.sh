#!/usr/bin/env bash
# Install patchsmith into ./.venv, with the system packages it needs (bubblewrap).
#   scripts/install.sh          core (what `patchsmith run` needs)
#   scripts/install.sh --models core + the hf extra (real models on CPU: the demo)
#   scripts/install.sh --dev    core + test tools + the hf/openai/docker extras and dockerd
#                               (the test suite)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap) \
      >/dev/null || true
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get install -y -qq bubblewrap >/dev/null || true
  fi
fi
if ! command -v bwrap >/dev/null 2>&1; then
  # In CI the sandbox tests must run, not skip: no bubblewrap fails the install.
  if [ "${CI:-}" = true ]; then
    echo "error: bubblewrap (bwrap) could not be installed and CI=true; install it" \
      "(apt-get install bubblewrap, as root) and run this again" >&2
    exit 1
  fi
  echo "warning: bubblewrap (bwrap) is not installed; the sandbox will not isolate and" \
    "its tests will skip (install it with: sudo apt-get install bubblewrap)" >&2
fi

# The docker sandbox backend's tests start a private dockerd (Debian's docker.io): the test
# install adds it where it can (root); without it those tests skip and say why.
if [ "${1:-}" = "--dev" ] && ! command -v dockerd >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io) \
    >/dev/null || echo "warning: docker.io could not be installed; docker sandbox tests skip" >&2
fi

PY=${PYTHON:-python3}
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "patchsmith needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip

extras=""
if [ "${1:-}" = "--dev" ]; then extras="[dev,hf,openai,docker]"; fi
if [ "${1:-}" = "--models" ]; then extras="[hf]"; fi
# torch==2.13.0 is pinned in the hf extra: an unpinned torch would pull GB of CUDA wheels.
.venv/bin/python -m pip install -q -e ".${extras}"
.venv/bin/python -m pip check >/dev/null || { .venv/bin/python -m pip check; exit 1; }
