#!/usr/bin/env bash
# Set up ScanStation on Debian 12: system packages, a virtualenv in .venv, the project. Idempotent.
#   bash installer/setup.sh          # station
#   bash installer/setup.sh --dev    # station + test tools
#   bash installer/setup.sh --bench  # station + test tools + the benchmarks' peers (bench/README.md)
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0; BENCH=0
case "${1:-}" in
  --dev) DEV=1 ;;
  --bench) DEV=1; BENCH=1 ;;
  "") ;;
  *) echo "usage: bash installer/setup.sh [--dev | --bench]" >&2; exit 2 ;;
esac

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

# Why each package: python3*/gcc build python-sane; tesseract + eng/hin/Devanagari models do the OCR
# (libtesseract5, which tesseract-ocr depends on, is named because the OCR workers load it themselves);
# sane-utils/libsane1 are the scanner back ends (libsane-dev to build python-sane); Noto/Lohit fonts
# render Devanagari (synthetic pages, UI); fonts-dejavu-extra holds the oblique/italic DejaVu faces
# (DejaVuSans-Oblique, DejaVuSerif-Italic) that the synthetic handwriting uses: fonts-dejavu-core has
# only the upright ones, and a minimal Debian 12 lacks extra; age checks our encryption; poppler-utils
# renders PDFs on import; ghostscript/qpdf/pikepdf support PDF work; the libGL/xkb/fontconfig/dbus
# libraries are what Qt needs even offscreen.  The libxcb-* / libx11-xcb1 line is what Qt's xcb platform
# plugin (PySide6 plugins/platforms/libqxcb.so and libQt6XcbQpa.so.6, by `ldd`) links: without them
# `scanstation start` on a real X display aborts with "Could not load the Qt platform plugin xcb".  A minimal
# Debian 12 with the rest of this list lacks icccm4, keysyms1, cursor0, image0, render-util0, shape0 and
# util1; the others come with libgl1/libegl1 today and are named so that no change there breaks the kiosk
# (tests/test_ui_xcb.py checks the plugin's libraries and opens a full-screen window on Xvfb).
PKGS=(python3 python3-venv python3-dev gcc pkg-config
      tesseract-ocr libtesseract5 tesseract-ocr-eng tesseract-ocr-hin tesseract-ocr-osd tesseract-ocr-script-deva
      sane-utils libsane1 libsane-dev
      fonts-noto-core fonts-lohit-deva fonts-dejavu-core fonts-dejavu-extra fontconfig
      age poppler-utils ghostscript qpdf
      libgl1 libegl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libglib2.0-0
      libxcb1 libx11-xcb1 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
      libxcb-render0 libxcb-render-util0 libxcb-shape0 libxcb-shm0 libxcb-sync1 libxcb-util1 libxcb-xfixes0
      libxcb-xkb1 libxcb-glx0
      ca-certificates
      opensc pcscd)  # the unit head's DSC token: PC/SC and OpenSC's PKCS#11 module (ePass2003, HYP2003; docs/signoff.md)
if [ "$DEV" = 1 ]; then
  # test-only: a virtual display for UI tests, SoftHSM2 for PKCS#11 tests, Node for the independent tus
  # server (@tus/server) of the upload interoperability test (Debian 12 ships Node 18; the pinned
  # packages run on 18 and 20).  A Node already installed from elsewhere (e.g. NodeSource) is kept.
  # PostgreSQL server: the receiver's PostgreSQL test runs its own throw-away cluster (~5 s).
  # git: installer/build-wheels.sh (run by tests/test_production.py) builds from the files git knows,
  # and a minimal Debian 12 has no git.
  # openssl: the sign-off tests check our CMS signatures with `openssl cms -verify` (not our code).
  # The lockdown's checks (tests/test_lockdown_files.py, scanstation/lockdown/checks.py) run the tools that read
  # its files: systemd-analyze (systemd), usbguard-rule-parser (usbguard), nft (nftables), sysctl (procps),
  # modprobe (kmod), and libduktape207, the JavaScript engine polkitd runs its rules in.
  # jbig2dec: an independent decoder that checks our JBIG2 stencils give back every pixel (tests/test_jbig2.py).
  PKGS+=(jbig2dec xvfb xauth softhsm2 postgresql git openssl systemd usbguard nftables procps kmod libduktape207
        umockdev libumockdev0 cage grim xwayland libwayland-cursor0 debootstrap shellcheck)  # issue 17: guard, kiosk, .deb tests
  command -v node >/dev/null 2>&1 || PKGS+=(nodejs)
  command -v npm >/dev/null 2>&1 || PKGS+=(npm)
fi
# The benchmarks' peers, measured side by side with ours: ocrmypdf (bench/size.py, bench/pipeline.py, bench/ocr.py);
# the pip extra `bench` below brings archive-pdf-tools' recode_pdf, deskew, jdeskew and scikit-image.
[ "$BENCH" = 1 ] && PKGS+=(ocrmypdf)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Python: the first python3 on PATH that is >= 3.11 (pyenv's on the build image, Debian's otherwise).
PY="${PYTHON:-python3}"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python >= 3.11 needed, found $("$PY" -V)"; exit 1; }
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys' 2>/dev/null; then
  rm -rf .venv
  "$PY" -m venv .venv
fi

# The four distributions of this repository (see pyproject.toml): the package format, the station, the reference
# receiver and the developer tools (the demo that `scanstation start` runs, `scanstation ocr`).  One pip command, so
# that pip takes the local ones for each other's dependencies.  A production station gets only the first two, as
# wheels (installer/build-wheels.sh).  --dev adds the test tools and the receiver's PostgreSQL driver.
PYPROJECTS=(batchformat/pyproject.toml pyproject.toml receiver/pyproject.toml scanstation_tools/pyproject.toml)
extras=""; receiver_extras=""
if [ "$DEV" = 1 ]; then extras="[dev]"; receiver_extras="[postgres]"; fi
if [ "$BENCH" = 1 ]; then extras="[dev,bench]"; fi
# Reinstall only when the project's dependencies or its C sources changed (keeps repeated runs fast), or when the
# editable install's build of one of them (compiled in place) is gone: without the JBIG2 coder the station stays
# on CCITT G4 (tests/test_jbig2.py fails then), without the SANE worker's preload a back end's reader thread can
# hang a scan (tests/test_sane_driver.py fails then).
C_SOURCES=(scanstation/pdf/_jbig2_mq.c drivers/_deferred_cancel.c)
stamp=".venv/.installed-$(cat "${PYPROJECTS[@]}" "${C_SOURCES[@]}" | sha256sum | cut -c1-16)${DEV}${BENCH}"
for source in "${C_SOURCES[@]}"; do
  compgen -G "${source%.c}.*.so" >/dev/null || rm -f "$stamp"
done
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # (setuptools warns, for every editable install, that folders named like the package take precedence: they are it)
  PYTHONWARNINGS="ignore:Editable installation" .venv/bin/python -m pip install -q \
    -e ./batchformat -e ".${extras}" -e "./receiver${receiver_extras}" -e ./scanstation_tools
  rm -f .venv/.installed-*
  touch "$stamp"
fi
if [ "$DEV" = 1 ]; then
  # the pinned @tus/server + @tus/file-store (package-lock.json); reinstalled only when the lock changes
  NODE_DIR=tests/interop/tus-node
  node_stamp="$NODE_DIR/node_modules/.installed-$(sha256sum "$NODE_DIR/package-lock.json" | cut -c1-16)"
  if [ ! -f "$node_stamp" ]; then
    npm ci --prefix "$NODE_DIR" --omit=optional --no-audit --no-fund
    touch "$node_stamp"
  fi
fi
echo "ScanStation is set up: .venv/bin/scanstation --help"
