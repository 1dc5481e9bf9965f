#!/usr/bin/env bash
# Set up (with test tools) and run the whole test suite. Idempotent; what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."
bash installer/setup.sh --dev
export QT_QPA_PLATFORM=offscreen
.venv/bin/python -m ruff check .
.venv/bin/python -m mypy
.venv/bin/lint-imports   # the dependency contracts in pyproject.toml: a wrong arrow between packages fails here
if [ "$#" -eq 0 ]; then
  # The core-dump tests first, in a process of their own: they need to allow cores (ulimit -c unlimited),
  # and a station command run in-process by another test lowers that limit for good in its process.
  .venv/bin/python -m pytest -q tests/test_process_guard.py tests/test_service_crash.py
  # --durations: the slowest tests are named in every CI log (the suite aims at 15 minutes on 2 cores)
  exec .venv/bin/python -m pytest -q -n 2 --durations=30 --ignore=tests/test_process_guard.py --ignore=tests/test_service_crash.py
fi
exec .venv/bin/python -m pytest -q -n 2 "$@"
