#!/usr/bin/env bash
# Process-tree benchmark (issue 10). Not part of CI. Usage (as root, after ./build.sh):
#   tests/bench/tree.sh [runs] [processes] [MiB each]     default 5 runs, 100 processes, 1 MiB each
# Compares a tree of PROCESSES processes with MIB MiB of dirty memory each against one process
# holding the same memory in total: `ckpt checkpoint --kill` and `ckpt restore` wall times (medians,
# alternating order), image sizes, and the ratio tree/single. Images go to /dev/shm (tmpfs) so that
# the numbers are the engine's, not the disk's. CKPT=/path/to/ckpt measures another engine build (a
# before/after comparison); CKPT_PROFILE=1 adds each restore's stage times (on stderr).
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}; processes=${2:-100}; mib=${3:-1}
ckpt=${CKPT:-$PWD/artifacts/ckpt}
work=$(mktemp -d /dev/shm/ckpt-tree-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
gcc -O2 -Wall -Werror -o "$work/tree_target" tests/bench/tree_target.c

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
now() { date +%s.%N; }
seconds_since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.3f", b-a}'; }

# Start a target (its own session; only fds 0-2) and wait for READY; sets pid.
start_target() {
  : >"$work/target.log"
  (
    for fd in /proc/$BASHPID/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
    exec setsid "$work/tree_target" "$@" </dev/null >"$work/target.log" 2>&1
  ) &
  disown $! # no "Killed" job notice when --kill ends it; bash still reaps it (the loops below wait for that)
  for _ in $(seq 1200); do grep -q READY "$work/target.log" && break; sleep 0.05; done
  read -r _ pid <"$work/target.log"
}

# Kill every process of the target's session (by pid) and wait until the root's pid is free.
end_target() {
  for p in $(ps -eo pid=,sid= | awk -v s="$1" '$2 == s {print $1}'); do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for _ in $(seq 1000); do [ -e "/proc/$1" ] || return 0; sleep 0.01; done
}

cycle() {  # $1: label, then target arguments; appends "checkpoint_s restore_s image_bytes" to $work/$1
  start_target "${@:2}"
  local image=$work/$1.ckpt start
  start=$(now); "$ckpt" checkpoint --pid "$pid" --output "$image" --kill >/dev/null; local c; c=$(seconds_since "$start")
  wait 2>/dev/null || true
  # The killed processes are zombies until PID 1 reaps them (seconds on this machine's init): their
  # pids are not free before, and the restore would wait for them on the clock. Not the restore's time.
  for _ in $(seq 3000); do ps -eo sid= | grep -qx " *$pid" || break; sleep 0.01; done
  start=$(now); "$ckpt" restore --input "$image" >/dev/null; local r; r=$(seconds_since "$start")
  echo "$c $r $(stat -c %s "$image")" >>"$work/$1"
  end_target "$pid"; rm -f "$image"
}

for i in $(seq "$runs"); do
  if [ $((i % 2)) = 1 ]; then cycle tree "$processes" "$mib"; cycle single 1 $((processes * mib))
  else cycle single 1 $((processes * mib)); cycle tree "$processes" "$mib"; fi
done
col() { awk "{print \$$2}" "$work/$1" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}'; }
echo "| target | checkpoint --kill s | restore s | image MiB |"
echo "|---|---|---|---|"
for t in tree single; do
  label=$([ $t = tree ] && echo "$processes processes x $mib MiB" || echo "1 process x $((processes * mib)) MiB")
  printf '| %s | %s | %s | %.1f |\n' "$label" "$(col $t 1)" "$(col $t 2)" "$(awk -v b="$(col $t 3)" 'BEGIN{print b/1048576}')"
done
echo "| ratio tree/single | $(ratio "$(col tree 1)" "$(col single 1)") | $(ratio "$(col tree 2)" "$(col single 2)") | |"
echo
echo "medians of $runs runs, alternating order; machine: $(nproc) cores, kernel $(uname -r); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
