#!/usr/bin/env bash
# Build cfutures and show it working, from a fresh Debian 12 machine.
#
#   bash quickstart.sh demo    install what is missing, build, run the demos
#   bash quickstart.sh check   install what is missing, build, run the tests;
#                              the last line is "N passed, M failed"
#
# Environment: CONFIGURE_FLAGS (extra ./configure arguments, e.g.
# "--with-sanitizer=address,undefined") and CFLAGS are passed to ./configure.
set -euo pipefail

# The programs `demo` runs, in order: one entry each, a path relative to the
# build tree, then its arguments if it takes any.
DEMO_PROGRAMS=(
  "examples/asyncio_tour --fast"
  examples/submit_result examples/cancel_queued examples/done_callbacks
  examples/wait_first_completed examples/as_completed examples/map
  examples/shutdown_cancel examples/bridge_epoll examples/bridge_libuv
  examples/bridge_libevent examples/bridge_glib
)

# Debian packages: needed to build and test, and optional extras (used by
# benchmarks, comparisons and make check-valgrind when present).
REQUIRED_PACKAGES="build-essential autoconf automake libtool pkg-config libcmocka-dev"
OPTIONAL_PACKAGES="libuv1-dev libevent-dev libglib2.0-dev python3 valgrind"

usage() {
  echo "usage: bash quickstart.sh demo|check" >&2
  exit 2
}

say() {
  printf '\n==> %s\n' "$*"
}

[ $# -eq 1 ] || usage
mode=$1
case $mode in
  demo|check) ;;
  *) usage ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")"

jobs=$(nproc 2>/dev/null || echo 2)

# ---------------------------------------------------------------------------
# 1. Packages.
is_installed() {
  # Not `dpkg -s | grep -q`: with pipefail, grep quitting early can fail dpkg.
  local status
  status=$(dpkg -s "$1" 2>/dev/null) || return 1
  case $status in
    *"Status: install ok installed"*) return 0 ;;
    *) return 1 ;;
  esac
}

missing_packages() {
  local p
  for p in "$@"; do
    is_installed "$p" || printf '%s\n' "$p"
  done
}

install_packages() {
  local missing_req missing_opt sudo=""
  if ! command -v dpkg >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    echo "quickstart.sh: no dpkg/apt-get here; install by hand: $REQUIRED_PACKAGES" >&2
    return 0
  fi
  # shellcheck disable=SC2086
  missing_req=$(missing_packages $REQUIRED_PACKAGES | tr '\n' ' ')
  # shellcheck disable=SC2086
  missing_opt=$(missing_packages $OPTIONAL_PACKAGES | tr '\n' ' ')
  if [ -z "${missing_req// /}" ] && [ -z "${missing_opt// /}" ]; then
    say "Packages: all present"
    return 0
  fi
  say "Packages: installing ${missing_req}${missing_opt}"
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      echo "Not root: using sudo for apt-get."
      sudo="sudo"
    else
      echo "quickstart.sh: not root and sudo is missing; as root run:" >&2
      echo "  apt-get update && apt-get install -y --no-install-recommends ${missing_req}${missing_opt}" >&2
      if [ -n "${missing_req// /}" ]; then
        exit 1
      fi
      echo "quickstart.sh: only optional packages are missing; going on without them" >&2
      return 0
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update
  # shellcheck disable=SC2086
  if ! $sudo apt-get install -y --no-install-recommends $missing_req $missing_opt; then
    if [ -n "${missing_req// /}" ]; then
      echo "quickstart.sh: retrying with the required packages only" >&2
      # shellcheck disable=SC2086
      $sudo apt-get install -y --no-install-recommends $missing_req
    else
      echo "quickstart.sh: optional packages failed to install; going on without them" >&2
    fi
  fi
}

install_packages

# ---------------------------------------------------------------------------
# 2. Build.
needs_autoreconf() {
  [ -x configure ] || return 0
  [ -f Makefile.in ] || return 0
  [ -f build-aux/ltmain.sh ] || return 0
  [ configure.ac -nt configure ] && return 0
  [ Makefile.am -nt Makefile.in ] && return 0
  return 1
}

if needs_autoreconf; then
  say "autoreconf -fi"
  autoreconf -fi
fi

configure_args=()
if [ -n "${CONFIGURE_FLAGS:-}" ]; then
  # Word-split on purpose: "--enable-debug --with-sanitizer=address".
  # shellcheck disable=SC2206
  configure_args+=(${CONFIGURE_FLAGS})
fi
if [ -n "${CFLAGS+set}" ]; then
  configure_args+=("CFLAGS=$CFLAGS")
fi
# Objects do not depend on the flags: when the configure arguments changed
# since the last build (CFLAGS=-Werror after a plain build, say), start clean.
old_config=""
if [ -f config.status ] && [ -f Makefile ]; then
  old_config=$(./config.status --config 2>/dev/null || true)
fi
say "./configure ${configure_args[*]@Q}"
./configure "${configure_args[@]}"
if [ -n "$old_config" ] && [ "$old_config" != "$(./config.status --config)" ]; then
  say "configure arguments changed: make clean"
  make clean >/dev/null
fi

say "make -j$jobs"
if [ "$mode" = check ]; then
  # Keep going: make check below reports what failed and counts it.
  make -k -j"$jobs" || echo "quickstart.sh: the build failed; running the tests that build" >&2
else
  make -j"$jobs"
fi

# ---------------------------------------------------------------------------
# 3a. demo: run each demo program.
if [ "$mode" = demo ]; then
  status=0
  failed_demos=""
  for entry in "${DEMO_PROGRAMS[@]}"; do
    read -r -a demo_cmd <<<"$entry"
    prog=${demo_cmd[0]}
    printf '\n========== %s ==========\n' "$entry"
    # make succeeded, so a program missing here was left out by configure:
    # its optional library (libuv, libevent, GLib) was not found.
    if [ ! -x "./$prog" ]; then
      echo "-- skipped: not built (configure did not find its optional library)"
      continue
    fi
    if ! "./$prog" "${demo_cmd[@]:1}"; then
      echo "!! $entry failed" >&2
      status=1
      failed_demos="$failed_demos $prog"
    fi
  done
  if [ $status -ne 0 ]; then
    echo
    echo "demo failed:$failed_demos" >&2
  else
    printf '\nAll demos ran.\n'
  fi
  exit $status
fi

# ---------------------------------------------------------------------------
# 3b. check: run the test suite and count the results.
# Drop results of earlier runs, so only this run's are counted.
# Each test T leaves T.log and T.trs (T without its .sh extension).
tests=$(make -s --no-print-directory list-tests)
bases=""
for t in $tests; do
  bases="$bases ${t%.sh}"
done
rm -f test-suite.log
for b in $bases; do
  rm -f "$b.log" "$b.trs"
done

say "make -k -j$jobs check"
make_status=0
make -k -j"$jobs" check || make_status=$?
if [ ! -f test-suite.log ]; then
  # Some test did not build, so make check ran none: run those that did.
  say "make -k -j$jobs TEST.log... (the tests that built)"
  # shellcheck disable=SC2046
  make -k -j"$jobs" $(for b in $bases; do printf '%s.log ' "$b"; done) || true
fi

passed=0
failed=0
if [ -f test-suite.log ]; then
  # The summary automake writes at the top of test-suite.log.
  count() {
    awk -v key="# $1:" 'index($0, key) == 1 { n = $NF; exit } END { print n + 0 }' test-suite.log
  }
  passed=$(count PASS)
  failed=$(( $(count FAIL) + $(count ERROR) + $(count XPASS) ))
else
  # The suite did not finish (a test failed to build, say): count the
  # per-test results that exist; a test without results counts as failed.
  for b in $bases; do
    if [ -f "$b.trs" ]; then
      p=$(grep -c '^:test-result: PASS' "$b.trs" || true)
      f=$(grep -cE '^:test-result: (FAIL|ERROR|XPASS)' "$b.trs" || true)
      passed=$((passed + p))
      failed=$((failed + f))
    else
      echo "no result for $b (did it build?)" >&2
      failed=$((failed + 1))
    fi
  done
fi

if [ "$make_status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # make failed for a reason the counts do not show (an example or the
  # benchmark did not build, say): count it as one failure.
  echo "make check failed (exit $make_status) outside the tests" >&2
  failed=1
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
