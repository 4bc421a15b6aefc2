#!/bin/bash
# Run tests/test_soak again and again, PARALLEL at a time, up to ROUNDS
# rounds; stop at the first failure or at the first soak that runs longer
# than LIMIT seconds, and then print every thread's stack (gdb) and the
# seed that replays it (CF_SOAK_SEED). For chasing a rare hang or failure.
#
#   bash tests/soak-loop.sh [ROUNDS] [PARALLEL] [LIMIT]   (from a build dir)
set -u
rounds=${1:-50}
parallel=${2:-1}
limit=${3:-60}
soak=tests/test_soak
if [ ! -x "$soak" ]; then
  echo "soak-loop: $soak not found: run make check (or make tests/test_soak) first" >&2
  exit 2
fi
logs=$(mktemp -d)
for round in $(seq 1 "$rounds"); do
  pids=()
  for k in $(seq 1 "$parallel"); do
    "$soak" > "$logs/$k.log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 1 "$limit"); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 1
  done
  for k in $(seq 1 "$parallel"); do
    p=${pids[$((k - 1))]}
    if kill -0 "$p" 2>/dev/null; then
      echo "round $round: a soak still runs after ${limit}s"
      grep -h "seed" "$logs/$k.log"
      # The wrapper script runs the real program as a child: dump that.
      real=$(pgrep -P "$p" | head -1)
      gdb -p "${real:-$p}" -batch -ex "thread apply all bt" 2>&1
      kill -9 "${pids[@]}" 2>/dev/null
      exit 1
    fi
    if ! wait "$p"; then
      echo "round $round: a soak failed"
      tail -20 "$logs/$k.log"
      exit 1
    fi
  done
done
rm -rf "$logs"
echo "soak-loop: $rounds rounds of $parallel passed"
