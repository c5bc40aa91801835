#!/usr/bin/env bash
# Eager `ckpt restore` against CRIU's restore of the same process, alternated (issue 15). Not part of CI.
# Usage (as root, after ./build.sh, with a criu binary on PATH or in CRIU=):
#   tests/bench/against_criu.sh [MiB] [runs]      default 1024 MiB, 9 runs of each
# One bench_target process dirties MiB of anonymous memory; `ckpt checkpoint` and `criu dump --leave-running`
# both save it (images on /dev/shm), then it is killed and each tool restores it in turn, the order
# alternating; between restores the restored process is killed and its pid waited free. Prints every
# wall time (ms, sorted) and the medians' ratio. CKPT=/path/to/ckpt measures another engine build.
set -euo pipefail
cd "$(dirname "$0")/../.."
mib=${1:-1024}; runs=${2:-9}
ckpt=${CKPT:-$PWD/artifacts/ckpt}
criu=${CRIU:-$(command -v criu || true)}
[ -n "$criu" ] || { echo "no criu binary (PATH or CRIU=)" >&2; exit 2; }
work=$(mktemp -d /dev/shm/ckpt-against-criu.XXXXXX)
pid=
# A failed run leaves no target behind (only a bench_target is killed: the pid may have been reused).
trap '[ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = bench_target ] && kill -9 "$pid"; rm -rf "$work"' EXIT
gcc -O2 -Wall -Werror -o "$work/bench_target" tests/bench/bench_target.c
( for fd in /proc/$BASHPID/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
  exec setsid "$work/bench_target" "$mib" </dev/null >"$work/target.log" 2>&1 ) &
pid=$! # the subshell execs the target: same pid
disown "$pid"
for _ in $(seq 1200); do grep -q READY "$work/target.log" && break; sleep 0.05; done
mkdir "$work/criu"
"$ckpt" checkpoint --pid "$pid" --output "$work/image.ckpt" >/dev/null
"$criu" dump -t "$pid" -D "$work/criu" --leave-running -o dump.log
gone() { while [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; do sleep 0.01; done
  for _ in $(seq 3000); do [ -e "/proc/$pid" ] || return 0; sleep 0.01; done; }
kill -9 "$pid"; gone
: >"$work/ckpt.ms"; : >"$work/criu.ms"
one() {
  local start; start=$(date +%s%N)
  if [ "$1" = ckpt ]; then "$ckpt" restore --input "$work/image.ckpt" >/dev/null; else "$criu" restore -D "$work/criu" -d -o restore.log; fi
  echo $(( ($(date +%s%N) - start) / 1000000 )) >>"$work/$1.ms"
  [ -e "/proc/$pid" ] || { echo "$1 restore of $pid failed" >&2; exit 1; }
  kill -9 "$pid"; gone; sleep 0.3
}
for i in $(seq "$runs"); do
  if [ $((i % 2)) = 1 ]; then one ckpt; one criu; else one criu; one ckpt; fi
done
median() { sort -n "$1" | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
echo "ckpt restore ms: $(sort -n "$work/ckpt.ms" | tr '\n' ' ')"
echo "criu restore ms: $(sort -n "$work/criu.ms" | tr '\n' ' ')"
echo "$mib MiB, medians: ckpt $(median "$work/ckpt.ms") ms, criu $(median "$work/criu.ms") ms, ratio $(awk -v a="$(median "$work/ckpt.ms")" -v b="$(median "$work/criu.ms")" 'BEGIN{printf "%.2f", a/b}'); load $(cut -d' ' -f1-3 /proc/loadavg)"
