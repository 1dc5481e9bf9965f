#!/usr/bin/env bash
# shellcheck disable=SC2317  # the clean-up functions are called from the EXIT trap
# Run a README command on a fresh Debian 12: a throw-away minimal bookworm root (debootstrap
# --variant=minbase: no Python, no fonts, nothing of ours), with this repository cloned in, entered as
# root with chroot. Needs root, debootstrap and git on the host.
#
#   bash installer/fresh-check.sh setup          # bash installer/setup.sh && .venv/bin/scanstation start
#   bash installer/fresh-check.sh test           # bash installer/test.sh
#   bash installer/fresh-check.sh 'COMMAND ...'  # any command line, run with bash in the checkout
#
# Options (before the command):
#   --worktree       also copy the uncommitted work tree (changed, deleted and untracked, not ignored,
#                    files) over the clone; without it the committed HEAD is what gets checked
#   --keep           keep the root afterwards (unmounted) and print where it is
#   --in DIR         run in a root kept earlier instead of a new one (the checkout there is reused)
#   --timeout SECS   stop the command after SECS seconds (status 124)
#   --bind DIR[:PATH]  make a host directory visible read-only at PATH (default: the same path) in
#                    the root, e.g. --bind /work/shared for data that is not in the repository
#   --refresh        rebuild the cached base system first
#
# The checkout is /root/scanstation in the root. As in a booted system, / is a mount point, /proc,
# /sys, /dev, /dev/pts are mounted, /dev/shm and /run are fresh tmpfs; all are unmounted on exit, also on failure or ^C,
# after stopping any process still running in the root. The network is the host's. What makes the
# check work behind a proxy or TLS inspection is copied in from the host: apt's Debian sources and
# proxy settings, /etc/ssl/certs and /usr/local/share/ca-certificates, pip and npm configuration
# (plus the local wheel directories/indexes they name, bind-mounted read-only) and the proxy, PIP_*,
# npm_config_* and CA-bundle environment variables; nothing else of the host's environment is passed.
# Package services are not started in the root (policy-rc.d), as usual in a chroot.
#
# The debootstrapped base comes from the Debian mirror in the host's apt sources (fallback
# deb.debian.org) and is cached as a tarball under /var/cache/scanstation-fresh-check, so a run
# starts in seconds; --refresh rebuilds it. The roots are made beside it, in roots/ (not in /var/tmp,
# which tests search for files left behind).
#
# At the end the elapsed time and the command's exit status are printed; the script exits with that
# status (125 when the root itself could not be prepared).
set -euo pipefail
{ # the whole script is read before it runs: the checkout may change while a long check runs

SUITE=bookworm
CACHE_DIR=/var/cache/scanstation-fresh-check
CHECKOUT=/root/scanstation
REPO="$(cd "$(dirname "$0")/.." && pwd)"

WORKTREE=0 KEEP=0 REFRESH=0 TIMEOUT=0 REUSE="" HEAD_SHA="" DIRTY="" BINDS=()
usage() { sed -n '3,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --worktree) WORKTREE=1 ;;
    --keep) KEEP=1 ;;
    --refresh) REFRESH=1 ;;
    --in) REUSE="${2:?--in needs a directory}"; shift ;;
    --timeout) TIMEOUT="${2:?--timeout needs seconds}"; shift ;;
    --bind) BINDS+=("${2:?--bind needs a directory}"); shift ;;
    -h|--help) usage 0 ;;
    --) shift; break ;;
    -*) echo "fresh-check: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
  shift
done
[ $# -gt 0 ] || usage
case "$*" in
  setup) CMD='bash installer/setup.sh && .venv/bin/scanstation start' ;;
  test) CMD='bash installer/test.sh' ;;
  *) CMD="$*" ;;
esac

[ "$(id -u)" = 0 ] || { echo "fresh-check: must run as root (debootstrap, mount, chroot)" >&2; exit 125; }
for tool in debootstrap git chroot mount findmnt; do
  command -v "$tool" >/dev/null || { echo "fresh-check: $tool not found (apt-get install debootstrap git)" >&2; exit 125; }
done

START=$SECONDS
say() { printf 'fresh-check [%4ss] %s\n' "$((SECONDS - START))" "$*" >&2; }
die() { say "ERROR: $*"; exit 125; }

# ---------------------------------------------------------------------------------------------------
# Mounts and clean-up
# ---------------------------------------------------------------------------------------------------
ROOT=""       # the root of this run
BUILD=""      # a base being built
CMD_STATUS=""
CMD_PID=""

# Every mount point at or below $1, deepest first.
mounts_under() {
  findmnt -rn -o TARGET | awk -v d="$1" '$0 == d || index($0, d "/") == 1' | sort -r
}
unmount_all() {
  local dir="$1" m
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  for m in $(mounts_under "$dir"); do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "could not unmount $m"
  done
}
# Processes whose root directory is the chroot (left-over daemons, a timed-out command).
stop_processes() {
  local dir="$1" pid pids=() r
  for pid in /proc/[0-9]*; do
    r="$(readlink "$pid/root" 2>/dev/null)" || continue
    if [ "$r" = "$dir" ]; then pids+=("${pid#/proc/}"); fi
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  say "stopping processes left in the root: ${pids[*]}"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    sleep 0.5
    kill -0 "${pids[@]}" 2>/dev/null || return 0
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
  sleep 0.5
}
remove_tree() {  # only once nothing is mounted in it (a bind mount of /dev must never be deleted through)
  local dir="$1"
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  if [ -n "$(mounts_under "$dir")" ]; then
    say "NOT removing $dir: still mounted: $(mounts_under "$dir" | tr '\n' ' ')"
    return 1
  fi
  rm -rf --one-file-system "$dir"
}
cleanup() {
  local status=$?
  trap - EXIT INT TERM HUP
  set +e
  if [ -n "$BUILD" ]; then unmount_all "$BUILD"; remove_tree "$BUILD"; fi
  if [ -n "$ROOT" ]; then
    stop_processes "$ROOT"
    unmount_all "$ROOT"
    if [ "$KEEP" = 1 ] || [ -n "$REUSE" ]; then
      say "root kept: $ROOT  (again: bash installer/fresh-check.sh --in $ROOT 'COMMAND')"
    else
      remove_tree "$ROOT"
    fi
  fi
  local total=$((SECONDS - START))
  if [ -n "$CMD_STATUS" ]; then
    printf 'fresh-check: %s\nfresh-check: exit status %s after %dm%02ds (commit %s%s)\n' \
      "$CMD" "$CMD_STATUS" $((total / 60)) $((total % 60)) "${HEAD_SHA:0:12}" "${DIRTY:-}" >&2
    exit "$CMD_STATUS"
  fi
  printf 'fresh-check: did not get to run the command (status %s) after %dm%02ds\n' \
    "$status" $((total / 60)) $((total % 60)) >&2
  [ "$status" = 0 ] && status=125
  exit "$status"
}
on_signal() {  # while the command runs, a signal ends it (cleanup stops what is left) with its status
  [ -n "$CMD_PID" ] && CMD_STATUS="$1"
  exit "$1"
}
trap cleanup EXIT
trap 'on_signal 130' INT
trap 'on_signal 143' TERM
trap 'on_signal 129' HUP

# ---------------------------------------------------------------------------------------------------
# The host's Debian archive
# ---------------------------------------------------------------------------------------------------
# One line per enabled "deb" entry of the host's apt sources (one-line and deb822 formats):
#   URI <tab> SUITE <tab> COMPONENTS <tab> SIGNED-BY(path or empty)
host_sources() {
  local f files=()
  [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.list; do [ -f "$f" ] && files+=("$f"); done
  for f in "${files[@]}"; do
    awk '
      { sub(/#.*/, "") }
      $1 == "deb" {
        i = 2; sb = ""
        if ($2 ~ /^\[/) {
          opts = ""
          for (; i <= NF; i++) { opts = opts " " $i; if ($i ~ /\]$/) { i++; break } }
          if (match(opts, /signed-by=[^] ]+/)) sb = substr(opts, RSTART + 10, RLENGTH - 10)
        }
        comps = ""
        for (j = i + 2; j <= NF; j++) comps = comps (comps == "" ? "" : " ") $j
        if ($(i+1) != "") printf "%s\t%s\t%s\t%s\n", $i, $(i+1), comps, sb
      }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk '
      function flush(   nu, ns, u, s, a, b) {
        if (types ~ /(^| )deb( |$)/ && tolower(enabled) != "no") {
          nu = split(uris, a, " "); ns = split(suites, b, " ")
          for (u = 1; u <= nu; u++) for (s = 1; s <= ns; s++)
            printf "%s\t%s\t%s\t%s\n", a[u], b[s], comps, (sb ~ /^\// ? sb : "")
        }
        types = uris = suites = comps = sb = enabled = ""; field = ""
      }
      /^#/ { next }
      /^[ \t]*$/ { flush(); next }
      /^[ \t]/ { next }                       # continuation lines (an inline key): not used
      {
        field = tolower($1); sub(/:$/, "", field); v = $0; sub(/^[^:]*:[ \t]*/, "", v)
        if (field == "types") types = v; else if (field == "uris") uris = v
        else if (field == "suites") suites = v; else if (field == "components") comps = v
        else if (field == "signed-by") sb = v; else if (field == "enabled") enabled = v
      }
      END { flush() }' "$f"
  done
}
SOURCES="$(host_sources || true)"
# The host's own Debian entries for bookworm (bookworm, -updates, -security, -backports).
ROOT_SOURCES="$(printf '%s\n' "$SOURCES" | awk -F'\t' -v s="$SUITE" \
  '$2 == s || $2 == s "-updates" || $2 == s "-security" || $2 == s "-backports"')"
MIRROR="$(printf '%s\n' "$SOURCES" | awk -F'\t' -v s="$SUITE" '$2 == s { print $1; exit }')"
if [ -z "$MIRROR" ]; then
  # a host on another release: its main Debian archive (an entry whose suite is a plain codename)
  MIRROR="$(printf '%s\n' "$SOURCES" | awk -F'\t' '$2 ~ /^[a-z]+$/ && $1 ~ /\/debian\/?$/ { print $1; exit }')"
fi
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
MIRROR="${MIRROR%/}"
if [ -z "$ROOT_SOURCES" ]; then
  SECURITY="$(printf '%s\n' "$SOURCES" | awk -F'\t' '$2 ~ /-security$/ { print $1; exit }')"
  SECURITY="${SECURITY:-http://deb.debian.org/debian-security}"
  ROOT_SOURCES="$(printf '%s\t%s\tmain\t\n' "$MIRROR" "$SUITE" "$MIRROR" "$SUITE-updates" \
    "${SECURITY%/}" "$SUITE-security")"
fi

# ---------------------------------------------------------------------------------------------------
# The cached base system
# ---------------------------------------------------------------------------------------------------
mkdir -p "$CACHE_DIR"
BASE_TAR="$CACHE_DIR/$SUITE-minbase-$(printf '%s' "$MIRROR" | sha256sum | cut -c1-12).tar"
if [ -z "$REUSE" ]; then
  exec 9>"$CACHE_DIR/lock"
  flock 9
  if [ "$REFRESH" = 1 ] || [ ! -s "$BASE_TAR" ]; then
    say "debootstrap --variant=minbase $SUITE from $MIRROR (cached afterwards in $BASE_TAR)"
    BUILD="$(mktemp -d "$CACHE_DIR/build.XXXXXX")"
    debootstrap --variant=minbase "$SUITE" "$BUILD/root" "$MIRROR" >"$BUILD/debootstrap.log" 2>&1 || {
      tail -n 30 "$BUILD/debootstrap.log" >&2; die "debootstrap failed"; }
    unmount_all "$BUILD/root"
    rm -rf "$BUILD/root/var/cache/apt/archives/"*.deb
    tar -C "$BUILD/root" --numeric-owner --xattrs --xattrs-include='*' -cf "$BUILD/base.tar" .
    mv "$BUILD/base.tar" "$BASE_TAR"
    remove_tree "$BUILD"; BUILD=""
  fi
  flock -u 9
fi

# ---------------------------------------------------------------------------------------------------
# The root of this run
# ---------------------------------------------------------------------------------------------------
if [ -n "$REUSE" ]; then
  ROOT="$(cd "$REUSE" && pwd)"
  if [ ! -x "$ROOT/bin/bash" ] || [ ! -d "$ROOT$CHECKOUT" ]; then die "$REUSE is not a root kept by fresh-check"; fi
  HEAD_SHA="$(git -C "$ROOT$CHECKOUT" rev-parse HEAD)"
  [ -f "$ROOT/root/.fresh-check-worktree" ] && DIRTY=" + work tree"
  say "reusing $ROOT"
else
  mkdir -p "$CACHE_DIR/roots"
  ROOT="$(mktemp -d "$CACHE_DIR/roots/root.XXXXXX")"
  chmod 755 "$ROOT"
  say "unpacking the base into $ROOT"
  tar -C "$ROOT" --numeric-owner --xattrs --xattrs-include='*' -xpf "$BASE_TAR"

  # The repository: a clone of the current HEAD (the committed state) ...
  HEAD_SHA="$(git -C "$REPO" rev-parse HEAD)"
  say "cloning $REPO at ${HEAD_SHA:0:12} to $CHECKOUT"
  git clone -q --no-local --no-checkout "$REPO" "$ROOT$CHECKOUT"
  git -C "$ROOT$CHECKOUT" checkout -q --detach "$HEAD_SHA"
  # ... and, with --worktree, the uncommitted changes on top.
  if [ "$WORKTREE" = 1 ]; then
    DIRTY=" + work tree"
    (cd "$REPO" && git ls-files -z --cached --others --exclude-standard) |
      (cd "$REPO" && while IFS= read -r -d '' f; do if [ -f "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi; done) |
      tar -C "$REPO" --null -T - -cf - | tar -C "$ROOT$CHECKOUT" -xf -
    (cd "$REPO" && git ls-files -z --deleted) | (cd "$ROOT$CHECKOUT" && xargs -0 -r rm -f --)
    touch "$ROOT/root/.fresh-check-worktree"
    git -C "$ROOT$CHECKOUT" update-index -q --refresh >/dev/null || true
    say "work tree copied over: $(git -C "$ROOT$CHECKOUT" status --porcelain | wc -l) changed paths"
  fi

  # As after an installation: /etc/hosts, and no services started by package scripts in a chroot.
  [ -s "$ROOT/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
  printf '#!/bin/sh\n# fresh-check: no daemons started in the chroot\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
  chmod 755 "$ROOT/usr/sbin/policy-rc.d"
fi

# The root is a mount point, as / is on a booted system: programs that look up the mount covering
# a path (the vault's RAM-directory check) find one for every directory. Later mounts go on top.
mount --bind "$ROOT" "$ROOT"
for b in ${BINDS[@]+"${BINDS[@]}"}; do
  src="${b%%:*}" dst="${b#*:}"
  [ -d "$src" ] || die "--bind $b: no directory $src"
  case "$dst" in /*) ;; *) die "--bind $b: $dst is not an absolute path" ;; esac
  mkdir -p "$ROOT$dst"
  mount --bind "$src" "$ROOT$dst"
  mount -o remount,bind,ro "$ROOT$dst"
  say "bind-mounted (read-only) $src at $dst"
done

# --- The host's network, package-index and certificate settings (refreshed on every run) ----------
copy_in() {  # copy_in HOST-PATH [ROOT-PATH]: files and directories, symbolic links followed
  local src="$1" dst="$ROOT${2:-$1}"
  [ -e "$src" ] || return 0
  mkdir -p "$(dirname "$dst")"
  if [ -d "$src" ]; then mkdir -p "$dst"; cp -rL --no-preserve=ownership "$src/." "$dst/"; else cp -L "$src" "$dst"; fi
}
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true

# apt: the host's Debian entries for bookworm (keyrings they name are copied too) and the
# apt.conf.d files that set proxies or TLS options.
rm -f "$ROOT/etc/apt/sources.list"
printf '%s\n' "$ROOT_SOURCES" | awk -F'\t' '
  NF >= 2 { key = $1 "\t" $3 "\t" $4; if (!(key in suites)) order[++n] = key; suites[key] = suites[key] " " $2 }
  END {
    for (i = 1; i <= n; i++) {
      split(order[i], k, "\t"); s = suites[order[i]]; sub(/^ /, "", s)
      printf "Types: deb\nURIs: %s\nSuites: %s\nComponents: %s\n", k[1], s, (k[2] == "" ? "main" : k[2])
      if (k[3] != "") printf "Signed-By: %s\n", k[3]
      print ""
    }
  }' >"$ROOT/etc/apt/sources.list.d/debian.sources"
for keyring in $(printf '%s\n' "$ROOT_SOURCES" | awk -F'\t' '$4 != "" { print $4 }' | sort -u); do
  [ -e "$ROOT$keyring" ] || copy_in "$keyring"
done
for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
  [ -f "$f" ] && grep -qiE 'proxy|CaInfo|CaPath|Verify-(Peer|Host)|SslCert|SslKey|SslForceVersion' "$f" && copy_in "$f"
done
for f in /etc/apt/auth.conf /etc/apt/auth.conf.d; do copy_in "$f"; done

# Certificates (into a new root; a kept one has its own by now): the host's bundle and hashed
# certificates (the ones a TLS-inspecting proxy needs are included) and its local CAs, which
# update-ca-certificates adds again when setup.sh installs ca-certificates.
if [ -z "$REUSE" ]; then
  copy_in /etc/ssl/certs
  copy_in /usr/local/share/ca-certificates
fi

# pip and npm configuration; the files and directories they name (a constraints file, a local wheel
# directory or file:// index) are copied or bind-mounted read-only at the same path.
HOST_HOME="${HOME:-/root}"
PIP_FILES=(/etc/pip.conf /etc/xdg/pip/pip.conf "$HOST_HOME/.config/pip/pip.conf" "$HOST_HOME/.pip/pip.conf")
[ -n "${XDG_CONFIG_HOME:-}" ] && PIP_FILES+=("$XDG_CONFIG_HOME/pip/pip.conf")
[ -n "${PIP_CONFIG_FILE:-}" ] && PIP_FILES+=("$PIP_CONFIG_FILE")
copy_in /etc/pip.conf
copy_in /etc/xdg/pip
copy_in "$HOST_HOME/.config/pip" /root/.config/pip
copy_in "$HOST_HOME/.pip" /root/.pip
[ -n "${XDG_CONFIG_HOME:-}" ] && copy_in "$XDG_CONFIG_HOME/pip" /root/.config/pip
[ -n "${PIP_CONFIG_FILE:-}" ] && copy_in "$PIP_CONFIG_FILE"
NPM_FILES=(/etc/npmrc /usr/etc/npmrc "$HOST_HOME/.npmrc")
copy_in /etc/npmrc
copy_in /usr/etc/npmrc
copy_in "$HOST_HOME/.npmrc" /root/.npmrc
for v in NPM_CONFIG_USERCONFIG npm_config_userconfig NPM_CONFIG_GLOBALCONFIG npm_config_globalconfig; do
  [ -n "${!v:-}" ] && { copy_in "${!v}"; NPM_FILES+=("${!v}"); }
done

# The environment of the command: a login shell's, plus these from the host.
PASS_ENV=("TERM=${TERM:-dumb}" LANG=C.UTF-8 HOME=/root)
while IFS= read -r v; do
  PASS_ENV+=("$v=${!v}")
done < <(compgen -e | grep -E '^((http|https|ftp|all|no)_proxy|(HTTP|HTTPS|FTP|ALL|NO)_PROXY|PIP_[A-Z_]+|(npm|NPM)_(config|CONFIG)_[A-Za-z_]+|SSL_CERT_(FILE|DIR)|REQUESTS_CA_BUNDLE|CURL_CA_BUNDLE|NODE_EXTRA_CA_CERTS|GIT_SSL_CAINFO)$' || true)

# Local paths named by that configuration (values of its settings, and of the variables above).
referenced_paths() {
  local f
  for f in "${PIP_FILES[@]}" "${NPM_FILES[@]}"; do
    if [ -f "$f" ]; then grep -vE '^[[:space:]]*[#;]' "$f" | sed -n 's/^[^=]*=//p'; fi
  done
  printf '%s\n' "${PASS_ENV[@]#*=}"
}
SYSTEM_DIRS=" / /bin /boot /dev /etc /home /lib /lib32 /lib64 /media /mnt /opt /proc /root /run /sbin /srv /sys /tmp /usr /var "
# A file:// index ".../simple" links to its files relative to its parent (../../files/...): the parent
# is what is mounted.
referenced_paths | tr ' \t' '\n' | sed -n 's#^file://##; s#/$##; s#/simple$##; \#^/#p' | sort -u |
while IFS= read -r p; do
  [ -e "$p" ] || continue
  case "$SYSTEM_DIRS" in *" $p "*) continue ;; esac
  if [ -d "$p" ]; then
    # not over something the root has itself (an empty directory is a kept root's mount point)
    [ -e "$ROOT$p" ] && [ -n "$(ls -A "$ROOT$p")" ] && continue
    mkdir -p "$ROOT$p"
    mount --bind "$p" "$ROOT$p"
    mount -o remount,bind,ro "$ROOT$p"
    say "bind-mounted (read-only) $p, named by the pip/npm configuration"
  elif [ ! -e "$ROOT$p" ]; then
    copy_in "$p"
  fi
done

# --- The file systems of a booted system --------------------------------------------------------
mount -t proc -o nosuid,nodev,noexec proc "$ROOT/proc"
mount -t sysfs -o nosuid,nodev,noexec,ro sysfs "$ROOT/sys" 2>/dev/null || mount --rbind /sys "$ROOT/sys"
mount --bind /dev "$ROOT/dev"
mkdir -p "$ROOT/dev/pts" "$ROOT/dev/shm"
mount --bind /dev/pts "$ROOT/dev/pts"
mount -t tmpfs -o nosuid,nodev,mode=1777 shm "$ROOT/dev/shm"
mount -t tmpfs -o nosuid,nodev,mode=755 run "$ROOT/run"
mkdir -p "$ROOT/run/lock" && chmod 1777 "$ROOT/run/lock"

# ---------------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------------
say "in $ROOT:$CHECKOUT (commit ${HEAD_SHA:0:12}${DIRTY:-}) running: $CMD"
# In the background so that a signal to this script is handled at once (the wait returns); such a
# child would start with SIGINT and SIGQUIT ignored, so env gives it the default ones back (the
# tests send SIGINT to their own subprocesses).
# shellcheck disable=SC2054  # (a comma-separated list of signals)
RUN=(chroot "$ROOT" /usr/bin/env -i --default-signal=INT,QUIT "${PASS_ENV[@]}" /bin/bash -lc "cd $CHECKOUT && $CMD")
if [ "$TIMEOUT" != 0 ]; then RUN=(timeout -k 30 "$TIMEOUT" "${RUN[@]}"); fi
set +e
"${RUN[@]}" </dev/null &
CMD_PID=$!
wait "$CMD_PID"
CMD_STATUS=$?
set -e
[ "$CMD_STATUS" = 124 ] && [ "$TIMEOUT" != 0 ] && say "the command was stopped after $TIMEOUT s"
exit "$CMD_STATUS"
}
