#!/usr/bin/env bash
# Set up (with test tools) and run the whole test suite. Idempotent; what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash installer/setup.sh --dev
export QT_QPA_PLATFORM=offscreen
.venv/bin/python -m ruff check .
.venv/bin/python -m mypy
.venv/bin/lint-imports   # the dependency contracts in pyproject.toml: a wrong arrow between packages fails here
exec .venv/bin/python -m pytest -q -n 2 "$@"
