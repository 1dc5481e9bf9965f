#!/usr/bin/env bash
# Write the wheels of a production station into a directory: scanstation-batchformat (package batchformat) and
# scanstation (packages scanstation, drivers, ui).  That is all a production station installs of this repository
# (the .deb of a later issue installs exactly these, with their third-party dependencies): no reference receiver,
# and no developer tools - no synthetic page generator, no demo, no `scanstation ocr` (tests/test_production.py).
#   bash installer/build-wheels.sh [OUT_DIR]        # default: dist/production
# The wheels are built from a copy of the files git knows (tracked or new, not ignored), so that a stale build/ or
# egg-info directory never slips into them.  Build tools: setuptools>=77 and wheel from $PYTHON (default
# .venv/bin/python, which `installer/setup.sh --dev` gives them) without network; else pip fetches them.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="$(realpath -m "${1:-dist/production}")"
PY="${PYTHON:-.venv/bin/python}"
PATHS=(pyproject.toml README.md scanstation drivers ui batchformat)

if [ -n "$(git status --porcelain -- "${PATHS[@]}")" ]; then
  echo "note: building from uncommitted changes (git status -- ${PATHS[*]})" >&2
fi
SRC="$(mktemp -d)"
trap 'rm -rf "$SRC"' EXIT
git ls-files -z --cached --others --exclude-standard -- "${PATHS[@]}" |
  while IFS= read -r -d '' f; do if [ -f "$f" ]; then printf '%s\0' "$f"; fi; done |
  tar --null -T - -cf - | tar -xf - -C "$SRC"

isolation=(--no-build-isolation)
if ! "$PY" -c 'import sys, setuptools, wheel; sys.exit(int(setuptools.__version__.split(".")[0]) < 77)' 2>/dev/null; then
  isolation=()   # pip installs the build requirements into a throw-away environment
fi
mkdir -p "$OUT"
rm -f "$OUT"/scanstation-*.whl "$OUT"/scanstation_*.whl
"$PY" -m pip wheel -q --no-deps "${isolation[@]}" -w "$OUT" "$SRC/batchformat" "$SRC"
ls -1 "$OUT"/*.whl
