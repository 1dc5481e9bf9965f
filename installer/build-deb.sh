#!/usr/bin/env bash
# Build the station's Debian package: dist/scanstation_<version>_amd64.deb.
#   bash installer/build-deb.sh [--version V] [--out DIR] [--compress gzip|zstd|xz|none] [--level N]
# It holds the station in a Python venv of its own under /opt/scanstation/venv, made with Debian's
# /usr/bin/python3.11 (the target's interpreter: Depends python3.11) from the production wheels
# (installer/build-wheels.sh: scanstation-batchformat + scanstation, no developer tools, no receiver) and their
# third-party wheels at the versions this checkout's .venv runs (what the tests ran), so the target needs no
# network beyond Debian's archive for the declared dependencies.  installer/system/ is copied as it is to the
# target root (its etc/** become conffiles), plus installer/deb/station.toml as /etc/scanstation/station.toml
# and the maintainer scripts of installer/deb/.  Build-time needs: dpkg-deb, git, python3.11 (Debian's),
# $PYTHON's pip (default .venv/bin/python) and the PyPI index or pip's cache.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"

VERSION=""
OUT="$REPO/dist"
# zstd -3: the fastest to build and to unpack at less than gzip -6's size.  dpkg-deb on this ~565 MiB tree, 2
# busy cores (2026-12): zstd -3 176 MiB, 22 s build, 1.3 s unpack; gzip -1 209 MiB 21 s / 12 s; gzip -6 187 MiB
# 125 s / 5 s; zstd -9 157 MiB 63 s / 3.5 s; xz -1 150 MiB 195 s / 35 s.  dpkg and apt of Debian 12 read zstd.
COMPRESS="zstd"
LEVEL="3"
while [ $# -gt 0 ]; do
  case "$1" in
    --version) VERSION="$2"; shift 2 ;;
    --out) OUT="$(realpath -m "$2")"; shift 2 ;;
    --compress) COMPRESS="$2"; shift 2 ;;
    --level) LEVEL="$2"; shift 2 ;;
    -h|--help) sed -n '2,3p' "$0"; exit 0 ;;
    *) echo "build-deb.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

PY="${PYTHON:-.venv/bin/python}"           # runs pip (and the wheel build); not what the package holds
TARGET_PY=/usr/bin/python3.11               # the interpreter the venv links to, on the build host and the target
PREFIX=/opt/scanstation
VENV_TARGET=$PREFIX/venv
[ -x "$TARGET_PY" ] || { echo "build-deb.sh: $TARGET_PY missing (apt-get install python3.11)" >&2; exit 1; }
command -v dpkg-deb >/dev/null || { echo "build-deb.sh: dpkg-deb missing" >&2; exit 1; }

PYPROJECT_VERSION="$("$TARGET_PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
VERSION="${VERSION:-$PYPROJECT_VERSION}"
case "$VERSION" in
  [0-9]*) ;;
  *) echo "build-deb.sh: version $VERSION must start with a digit (Debian policy)" >&2; exit 2 ;;
esac
# Timestamps inside the package: the last commit's.  With the RECORDs rewritten (step 4), two builds of one tree
# are byte-identical.
SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}"
export SOURCE_DATE_EPOCH
umask 022

WORK="$(mktemp -d "${TMPDIR:-/tmp}/scanstation-deb.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
ROOT="$WORK/root"
VENV="$ROOT$VENV_TARGET"
started=$(date +%s)

# --- 1. the wheels: ours (production only) and the third-party ones at the tested versions
bash installer/build-wheels.sh "$WORK/wheels" >/dev/null
# Constraints: the third-party versions of the development venv, which the test suite ran against.  Our own
# distributions (editable installs there) are left out: they come from the wheels just built.
"$PY" -m pip freeze --exclude-editable --all 2>/dev/null |
  grep -v -i -E '^(scanstation|scanstation-batchformat|scanstation-receiver|scanstation-tools|pip|setuptools|wheel)==' |
  grep -E '^[A-Za-z0-9._-]+==' > "$WORK/constraints.txt" || true

# --- 2. the venv, in the staging root at its target path below it (relocated to /opt/... in step 4)
# --without-pip: a station installs nothing at run time, and pip would be one more tool for the kiosk account.
mkdir -p "$ROOT$PREFIX"
"$TARGET_PY" -m venv --without-pip "$VENV"
# (pip's notes about this machine's extra local indexes that lack a project are noise here: filtered out)
"$PY" -m pip --python "$VENV/bin/python" install -q --no-compile --no-warn-script-location \
  --disable-pip-version-check -c "$WORK/constraints.txt" "$WORK"/wheels/*.whl \
  2> >(grep -v -F "is ignored: it is neither a file nor a directory" >&2)

SITE="$VENV/lib/python3.11/site-packages"
[ -d "$SITE" ] || { echo "build-deb.sh: $SITE missing (venv not made with Python 3.11?)" >&2; exit 1; }
# Our two wheels were installed by file (never by name: a same-named project on an index must not win); pip
# records that file's build-time path in direct_url.json, which means nothing on a station.
rm -f "$SITE"/scanstation-*.dist-info/direct_url.json "$SITE"/scanstation_*.dist-info/direct_url.json

# --- 3. what a station never runs and must not offer.  Each removal is a developer tool or a way out:
# - Qt's VNC platform plugin would serve the screen over the network (QT_QPA_PLATFORM=vnc);
# - the QML debugger plugins open a listening port (-qmljsdebugger);
# - print support plugins: the kiosk has no print (issue 17); the designer plugin, the Qt/PySide tools
#   (designer, linguist, assistant, qmlls, uic, rcc, ...) and their pyside6-* launchers, headers and
#   binding-generator inputs (include/, typesystems/, glue/) are for developers only;
# - type stubs (*.pyi): for mypy, not for a station;
# - the venv's activation scripts: for interactive shells, which neither the service nor the kiosk has.
# None of these is imported by PySide6's modules (tests/test_deb.py imports QtWidgets from the package).
PYSIDE="$SITE/PySide6"
rm -f "$PYSIDE/Qt/plugins/platforms/libqvnc.so"
rm -rf "$PYSIDE/Qt/plugins/qmltooling" "$PYSIDE/Qt/plugins/printsupport" "$PYSIDE/Qt/plugins/designer" \
       "$PYSIDE/Qt/libexec" "$PYSIDE/include" "$PYSIDE/typesystems" "$PYSIDE/glue" "$PYSIDE/doc" \
       "$PYSIDE/scripts" "$SITE/shiboken6/include" "$SITE/shiboken6_generator" 2>/dev/null || true
for tool in assistant designer linguist lrelease lupdate qmlformat qmllint qmlls svgtoqml; do
  rm -f "$PYSIDE/$tool"
done
# The station runs one command: the other launchers in bin/ (pyside6-*, f2py, pygmentize, typer, ...) are the
# distributions' developer tools; their modules stay.
find "$VENV/bin" -type f ! -name scanstation -delete
find "$SITE" -name '*.pyi' -delete
# indic-transliteration's wheel installs its test suite as a top-level package named "tests": never imported,
# and a station holds no tests (tests/test_deb.py).
rm -rf "$SITE/tests"
# Bytecode is compiled on the target by postinst (with the target's paths) and removed by prerm: none here.
find "$ROOT" -name __pycache__ -type d -prune -exec rm -rf {} +
find "$ROOT" -name '*.py[co]' -delete

# --- 4. relocate: every mention of the staging directory becomes /opt/scanstation/venv (script shebangs,
# pyvenv.cfg's "command" line).  A binary file naming it would be a build we cannot relocate: stop.
while IFS= read -r -d '' f; do
  if grep -Iq . "$f"; then
    sed -i "s|$VENV|$VENV_TARGET|g" "$f"
  else
    echo "build-deb.sh: binary file names the staging directory: $f" >&2; exit 1
  fi
done < <(grep -rlZ --fixed-strings "$WORK" "$ROOT" || true)
if grep -rq --fixed-strings "$WORK" "$ROOT"; then
  echo "build-deb.sh: the staging directory is still named in the package" >&2; exit 1
fi
head -1 "$VENV/bin/scanstation" | grep -qx "#!$VENV_TARGET/bin/python" || {
  echo "build-deb.sh: bin/scanstation's shebang is $(head -1 "$VENV/bin/scanstation")" >&2; exit 1; }
# Each distribution's RECORD as the package holds it: rows of files removed above dropped, hashes of rewritten
# ones (the launchers' shebangs named the random staging directory) recomputed.  True to what is installed,
# and the same from one build of a commit to the next.
"$TARGET_PY" - "$SITE" <<'PY'
import base64, csv, hashlib, io, os, sys
from pathlib import Path

site = Path(sys.argv[1])
for record in sorted(site.glob("*.dist-info/RECORD")):
    rows = []
    for row in csv.reader(io.StringIO(record.read_text(encoding="utf-8"))):
        if not row:
            continue
        path = os.path.normpath(site / row[0])
        if not os.path.lexists(path):
            continue
        if len(row) >= 3 and row[1] and os.path.isfile(path) and not os.path.islink(path):
            data = Path(path).read_bytes()
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            row = [row[0], f"sha256={digest}", str(len(data))]
        rows.append(row)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    record.write_text(out.getvalue(), encoding="utf-8")
PY

# --- 5. the rest of the target root
mkdir -p "$ROOT/usr/bin" "$ROOT/etc/scanstation" "$ROOT/usr/share/doc/scanstation"
# (/usr/bin/scanstation is installer/system/usr/bin/scanstation: the venv's command with the station's configuration)
# installer/system/: other parts of issue 17 (units, sysctl, modprobe, polkit, kiosk session) at their target
# paths; the files git knows only (no editor leftovers).
git ls-files -z --cached --others --exclude-standard -- installer/system |
  while IFS= read -r -d '' f; do
    rel="${f#installer/system/}"
    if [ -L "$f" ]; then
      # symlinks as they are: e.g. the units masked by a link to /dev/null under etc/systemd/system
      mkdir -p "$(dirname "$ROOT/$rel")"
      ln -sfn "$(readlink "$f")" "$ROOT/$rel"
      continue
    fi
    [ -f "$f" ] || continue
    case "$rel" in
      opt/scanstation/libexec/*|usr/lib/scanstation/*|usr/libexec/*|usr/sbin/*|usr/bin/*) mode=0755 ;;
      *) if [ -x "$f" ]; then mode=0755; else mode=0644; fi ;;
    esac
    install -D -m "$mode" "$f" "$ROOT/$rel"
  done
# The production configuration: a conffile, so the admin's edits (and `scanstation init`'s values) survive
# upgrades.  0750/0640 as shipped; postinst gives them to group scanstation-kiosk (dpkg-statoverride).
install -m 0640 installer/deb/station.toml "$ROOT/etc/scanstation/station.toml"
chmod 0750 "$ROOT/etc/scanstation"
for doc in README.md docs/lockdown.md docs/kiosk.md; do
  if [ -f "$doc" ]; then install -m 0644 "$doc" "$ROOT/usr/share/doc/scanstation/$(basename "$doc")"; fi
done
install -m 0644 installer/deb/copyright "$ROOT/usr/share/doc/scanstation/copyright"

# Units with an [Install] section: postinst enables them (chroot-safe, deb-systemd-helper), postrm purges them.
UNITS=""
if [ -d "$ROOT/lib/systemd/system" ]; then
  for u in "$ROOT"/lib/systemd/system/*; do
    [ -f "$u" ] && grep -q '^\[Install\]' "$u" && UNITS="$UNITS $(basename "$u")"
  done
fi
UNITS="${UNITS# }"

# --- 6. DEBIAN/
DEB="$ROOT/DEBIAN"
mkdir -p "$DEB"
# Modes: dirs 0755 and files 0644/0755 whatever the checkout's umask was, except the two set above.
find "$ROOT" -path "$DEB" -prune -o -type d ! -path "$ROOT/etc/scanstation" -exec chmod 0755 {} +
find "$ROOT" -path "$DEB" -prune -o -type f ! -perm -u+x ! -path "$ROOT/etc/scanstation/*" -exec chmod 0644 {} +
find "$ROOT" -path "$DEB" -prune -o -type f -perm -u+x -exec chmod 0755 {} +
# Files that are group-writable or world-writable in a wheel would stay so on the target: refuse them.
if find "$ROOT" -path "$DEB" -prune -o \( -type f -o -type d \) -perm /022 -print | grep -q .; then
  echo "build-deb.sh: group/world-writable files in the package" >&2; exit 1
fi
for script in postinst prerm postrm; do
  sed -e "s|@UNITS@|$UNITS|g" "installer/deb/$script" > "$DEB/$script"
  chmod 0755 "$DEB/$script"
done
(cd "$ROOT" && find etc -type f | sort | sed 's|^|/|') > "$DEB/conffiles"
installed_size=$(du -sk --apparent-size --exclude=DEBIAN "$ROOT" | cut -f1)
sed -e "s|@VERSION@|$VERSION|g" -e "s|@INSTALLED_SIZE@|$installed_size|g" installer/deb/control.in > "$DEB/control"
(cd "$ROOT" && find . -path ./DEBIAN -prune -o -type f -print0 | sort -z | xargs -0 md5sum | sed 's|  \./|  |') \
  > "$DEB/md5sums"
chmod 0644 "$DEB/control" "$DEB/conffiles" "$DEB/md5sums"
find "$ROOT" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

# --- 7. the package (every file root:root: postinst hands out what belongs to the station's users)
mkdir -p "$OUT"
DEBFILE="$OUT/scanstation_${VERSION}_amd64.deb"
rm -f "$DEBFILE"
staged=$(date +%s)
dpkg-deb --root-owner-group -Z"$COMPRESS" -z"$LEVEL" --build "$ROOT" "$DEBFILE" >/dev/null
done_at=$(date +%s)
echo "$DEBFILE"
echo "build-deb.sh: $(du -h "$DEBFILE" | cut -f1) ($COMPRESS -$LEVEL), installed ${installed_size} KiB;" \
     "staging $((staged - started)) s, dpkg-deb $((done_at - staged)) s; units: ${UNITS:-none}" >&2
