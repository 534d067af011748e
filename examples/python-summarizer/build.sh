#!/usr/bin/env bash
# Builds codecarbon_py.wasm, an energy-star summarizer plugin written in Python.
# Needs python3 (>= 3.10) and network access to PyPI on first run (for componentize-py).
set -euo pipefail
cd "$(dirname "$0")"

WIT=../../wit/energy-star-plugin@0.1.0
WORLD=summarizer-plugin
VENV=${VENV:-.venv}
CPY_VERSION=${CPY_VERSION:-0.25.1}

if [ ! -x "$VENV/bin/componentize-py" ]; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet "componentize-py==$CPY_VERSION"
fi
CPY="$VENV/bin/componentize-py"
"$CPY" --version

# Bindings are only for editors and type checkers; `componentize` generates its own.
rm -rf bindings
"$CPY" -d "$WIT" -w "$WORLD" bindings bindings

# VIRTUAL_ENV would make componentize-py bundle the venv's site-packages; the app needs only
# the standard library, so keep it out.
env -u VIRTUAL_ENV "$CPY" -d "$WIT" -w "$WORLD" componentize -p . app -o codecarbon_py.wasm
ls -l codecarbon_py.wasm
