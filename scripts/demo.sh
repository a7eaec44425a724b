#!/usr/bin/env bash
# Install patchsmith and run the example campaign on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/patchsmith run examples/campaign.yaml --out out/example
