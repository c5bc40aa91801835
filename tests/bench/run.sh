#!/usr/bin/env bash
# Whole checkpoint/restore benchmark (issue 6). Not part of CI. Usage (as root, after ./build.sh):
#   tests/bench/run.sh [runs]          default 5 runs per target
# For each target it measures, in the same run and on the same pages, ckpt against the floor
# (process_vm_readv + write for a checkpoint, read into a fresh mapping for a restore) and prints
# medians and ratios as a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
ckpt=$PWD/artifacts/ckpt
work=$(mktemp -d /tmp/ckpt-bench.XXXXXX)
tmpfs=$(mktemp -d /dev/shm/ckpt-bench.XXXXXX)
trap 'pkill -f "$work/bench_target" 2>/dev/null || true; rm -rf "$work" "$tmpfs"' EXIT
gcc -O2 -Wall -Werror -o "$work/bench_target" tests/bench/bench_target.c
gcc -O2 -Wall -Werror -o "$work/floor" tests/bench/floor.c
gcc -O2 -Wall -Werror -o "$work/measure" tests/bench/measure.c

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
seconds_of() { "$work/measure" "$work/time" "$@" >/dev/null; cat "$work/time"; }

# Kill a target and wait until its pid is free again: the first one is our child (reap it), a
# restored one is not (PID 1 reaps it, sometimes after a while).
end_target() {
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  for _ in $(seq 500); do [ -e "/proc/$1" ] || return 0; sleep 0.01; done
}

start_target() {  # $1: MiB or sparse; sets pid, address, bytes
  : >"$work/target.log"
  (
    for fd in /proc/$BASHPID/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
    exec setsid "$work/bench_target" "$1" </dev/null >"$work/target.log" 2>&1
  ) &
  pid=$!
  for _ in $(seq 200); do grep -q READY "$work/target.log" && break; sleep 0.05; done
  read -r _ address bytes <"$work/target.log"
}

printf '| target | ckpt checkpoint s | frozen s | floor tmpfs s | ratio | checkpoint to disk s | floor disk s | ratio | restore s | floor restore s | ratio | image MiB | engine peak RSS MiB |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|---|---|\n'
for target in 0 sparse 64 256 1024; do
  start_target "$target"
  : >"$work/rows"
  for run in $(seq "$runs"); do
    image=$tmpfs/image.ckpt
    exec 9>"$work/progress"
    read -r ck_s ck_rss < <(seconds_of "$ckpt" checkpoint --pid "$pid" --output "$image" --progress-fd 9)
    exec 9>&-
    frozen=$(grep -o '"frozen_seconds":[0-9.]*' "$work/progress" | tail -1 | cut -d: -f2)
    size=$(stat -c %s "$image")
    if [ "$bytes" -gt 0 ]; then
      floor_tmpfs=$("$work/floor" read "$pid" "$address" "$bytes" "$tmpfs/floor.bin")
      floor_disk=$("$work/floor" read "$pid" "$address" "$bytes" "$work/floor.bin")
      floor_restore=$("$work/floor" write "$tmpfs/floor.bin" "$bytes")
    else
      floor_tmpfs=0; floor_disk=0; floor_restore=0
    fi
    read -r disk_s _ < <(seconds_of "$ckpt" checkpoint --pid "$pid" --output "$work/image.ckpt")
    end_target "$pid"
    read -r restore_s restore_rss < <(seconds_of "$ckpt" restore --input "$image")
    rm -f "$tmpfs/floor.bin" "$work/floor.bin"
    echo "$ck_s ${frozen:-nan} $floor_tmpfs $disk_s $floor_disk $restore_s $floor_restore $size $ck_rss $restore_rss" >>"$work/rows"
  done
  col() { awk "{print \$$1}" "$work/rows" | median; }
  ck=$(col 1); fr=$(col 2); ft=$(col 3); dk=$(col 4); fd=$(col 5); rs=$(col 6); frs=$(col 7)
  size=$(col 8); rss=$(awk '{print ($9 > $10) ? $9 : $10}' "$work/rows" | median)
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
  label=$target; [ "$target" = 0 ] && label="empty"; [ "$target" = sparse ] && label="64 GiB reserved, 1 MiB touched"
  [ "$target" != 0 ] && [ "$target" != sparse ] && label="$target MiB dirty"
  printf '| %s | %.3f | %s | %.3f | %s | %.3f | %.3f | %s | %.3f | %.3f | %s | %.1f | %.0f |\n' \
    "$label" "$ck" "$fr" "$ft" "$(ratio "$ck" "$ft")" "$dk" "$fd" "$(ratio "$dk" "$fd")" \
    "$rs" "$frs" "$(ratio "$rs" "$frs")" "$(awk -v s="$size" 'BEGIN{print s/1048576}')" "$(awk -v r="$rss" 'BEGIN{print r/1024}')"
  if [ "$target" = 1024 ]; then
    read -r show_s _ < <(seconds_of "$ckpt" show "$tmpfs/image.ckpt")
    echo "ckpt show on the 1 GiB image: ${show_s} s" >"$work/extra"
  fi
  end_target "$pid"
done
startup=$(for _ in $(seq 11); do seconds_of "$ckpt" --version | cut -d' ' -f1; done | median)
echo
cat "$work/extra" 2>/dev/null || true
echo "ckpt startup (ckpt --version, median of 11): ${startup} s"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r)"
