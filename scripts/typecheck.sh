#!/usr/bin/env bash
# mypy over the whole package as it installs: patchsmith/ plus the root folders that
# pyproject's package-dir maps into it (flows/ tasks/ adapters/ infra/). mypy cannot follow
# setuptools' editable finder, so it checks a tree of links shaped like the installed package.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TREE=$(mktemp -d)
trap 'rm -rf "$TREE"' EXIT
mkdir "$TREE/patchsmith"
for entry in "$ROOT"/patchsmith/*; do ln -s "$entry" "$TREE/patchsmith/"; done
for folder in flows tasks adapters infra; do ln -s "$ROOT/$folder" "$TREE/patchsmith/$folder"; done
cd "$TREE"
# Paths in the report are shown as they are in the checkout.
"$ROOT/.venv/bin/mypy" --config-file "$ROOT/pyproject.toml" --cache-dir "$ROOT/.mypy_cache" \
  "$@" patchsmith | sed -E 's#^patchsmith/(flows|tasks|adapters|infra)/#\1/#'
exit "${PIPESTATUS[0]}"
