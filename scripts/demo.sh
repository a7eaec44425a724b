#!/usr/bin/env bash
# Install patchsmith and run the example campaign on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# examples/unitconv depends on unitreg, which is not in patchsmith's venv: build its wheel
# offline (from a copy of the vendored source, so the source stays clean) for the
# campaign's find_links; patchsmith then builds that instance's environment in the sandbox.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r examples/unitconv/vendor/unitreg "$tmp/"
.venv/bin/pip wheel -q --no-deps --no-build-isolation "$tmp/unitreg" -w examples/wheels
.venv/bin/patchsmith run examples/campaign.yaml --out out/example
