#!/bin/sh
# Check the library's exported symbols against tests/exports.txt, as TAP.
#
#   1: tests/exports.txt lists exactly the CF_EXTERN functions of
#      include/cfutures.h and include/cfutures/loop.h (so the list
#      follows the headers);
#   2: the T symbols of `nm -D --defined-only` on the built shared library
#      are exactly tests/exports.txt (skipped without a shared library).
#
# make check sets CF_EXPORTS_LIB, CF_EXPORTS_LIST, CF_EXPORTS_HEADER and NM;
# run by hand, the defaults assume an in-tree build.
# To update the list after changing a header:
#   cat include/cfutures.h include/cfutures/loop.h | tr '\n' ' ' |
#     grep -o 'CF_EXTERN[^(;]*(' |
#     grep -o 'cf_[A-Za-z0-9_]*($' | tr -d '(' | LC_ALL=C sort > tests/exports.txt

LC_ALL=C
export LC_ALL

here=$(cd "$(dirname "$0")" && pwd)
lib=${CF_EXPORTS_LIB:-$here/../.libs/libcfutures.so}
list=${CF_EXPORTS_LIST:-$here/exports.txt}
header=${CF_EXPORTS_HEADER:-$here/../include/cfutures.h}
loop_header=${CF_EXPORTS_LOOP_HEADER:-$here/../include/cfutures/loop.h}
nm=${NM:-nm}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cf-exports.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT

failed=0
echo "1..2"

# Print a diff as TAP comments.
comment_diff() {
  diff -u "$1" "$2" | sed 's/^/# /'
}

# 1. The list against the header.
if [ ! -r "$list" ] || [ ! -r "$header" ] || [ ! -r "$loop_header" ]; then
  echo "not ok 1 - exports.txt matches the header # cannot read $list or $header"
  failed=1
else
  cat "$header" "$loop_header" | tr '\n' ' ' | grep -o 'CF_EXTERN[^(;]*(' |
    grep -o 'cf_[A-Za-z0-9_]*($' | tr -d '(' | sort -u > "$tmp/header"
  sort -u "$list" > "$tmp/list"
  if cmp -s "$tmp/header" "$tmp/list"; then
    echo "ok 1 - exports.txt lists the $(wc -l < "$tmp/list" | tr -d ' ') CF_EXTERN functions of cfutures.h"
  else
    echo "not ok 1 - exports.txt does not match the CF_EXTERN functions of cfutures.h"
    echo "# --- exports.txt, +++ header"
    comment_diff "$tmp/list" "$tmp/header"
    failed=1
  fi
fi

# 2. The shared library against the list.
if [ ! -f "$lib" ]; then
  echo "ok 2 - library exports # SKIP no shared library at $lib"
elif ! $nm -D --defined-only "$lib" > "$tmp/nm.out" 2> "$tmp/nm.err"; then
  echo "not ok 2 - library exports # $nm -D failed on $lib"
  sed 's/^/# /' "$tmp/nm.err"
  failed=1
else
  # Lines are "ADDRESS TYPE NAME"; keep text (function) symbols.
  awk '$2 == "T" { sub(/@.*/, "", $3); print $3 }' "$tmp/nm.out" | sort -u > "$tmp/lib"
  sort -u "$list" > "$tmp/list"
  if cmp -s "$tmp/list" "$tmp/lib"; then
    echo "ok 2 - libcfutures.so exports exactly the $(wc -l < "$tmp/lib" | tr -d ' ') functions of exports.txt"
  else
    echo "not ok 2 - libcfutures.so exports differ from exports.txt"
    echo "# --- exports.txt, +++ libcfutures.so"
    comment_diff "$tmp/list" "$tmp/lib"
    failed=1
  fi
fi

exit $failed
