#!/usr/bin/env bash
# Whole checkpoint/restore benchmark (issue 6). Not part of CI. Usage (as root, after ./build.sh):
#   tests/bench/run.sh [runs]          default 5 runs per target
# For each target it measures, in the same run and on the same pages, ckpt against the floor
# (process_vm_readv + write for a checkpoint, process_vm_readv into memory for the frozen time of
# --deferred-write, read into a fresh mapping for a restore) and prints medians and ratios as
# Markdown tables. Every file is created anew, by ckpt and by the floor alike.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
ckpt=$PWD/artifacts/ckpt
work=$(mktemp -d /var/tmp/ckpt-bench.XXXXXX)   # a disk, not tmpfs
tmpfs=$(mktemp -d /dev/shm/ckpt-bench.XXXXXX)
trap 'pkill -f "$work/bench_target" 2>/dev/null || true; rm -rf "$work" "$tmpfs"' EXIT
gcc -O2 -Wall -Werror -o "$work/bench_target" tests/bench/bench_target.c
gcc -O2 -Wall -Werror -o "$work/floor" tests/bench/floor.c
gcc -O2 -Wall -Werror -o "$work/measure" tests/bench/measure.c

median() { sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
measured() { rm -f "$work/time"; "$work/measure" "$work/time" "$@" >/dev/null; cat "$work/time"; }   # "seconds rss_kib"
frozen_of() { grep -o '"frozen_seconds":[0-9.eE-]*' "$1" | tail -1 | cut -d: -f2; }

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

checkpoint() {  # $1: output, then extra options; prints "seconds rss frozen"
  local output=$1; shift
  rm -f "$output"
  exec 9>"$work/progress"
  read -r seconds rss < <(measured "$ckpt" checkpoint --pid "$pid" --output "$output" --progress-fd 9 "$@")
  exec 9>&-
  echo "$seconds $rss $(frozen_of "$work/progress")"
}

floor_or_zero() { if [ "$bytes" -gt 0 ]; then "$work/floor" "$@"; else echo 0; fi; }

one_run() {  # appends one line of 17 columns to $work/rows
  local image=$tmpfs/image.ckpt
  read -r ck_s ck_rss ck_frozen < <(checkpoint "$image")
  local size; size=$(stat -c %s "$image")
  local floor_tmpfs; floor_tmpfs=$(floor_or_zero read "$pid" "$address" "$bytes" "$tmpfs/floor.bin")
  local floor_copy; floor_copy=$(floor_or_zero copy "$pid" "$address" "$bytes")
  read -r df_s df_rss df_frozen < <(checkpoint "$tmpfs/deferred.ckpt" --deferred-write)
  rm -f "$tmpfs/deferred.ckpt"
  local floor_disk; floor_disk=$(floor_or_zero read "$pid" "$address" "$bytes" "$work/floor.bin" fsync)
  rm -f "$work/floor.bin"
  read -r disk_s _ _ < <(checkpoint "$work/image.ckpt")
  rm -f "$work/image.ckpt"
  end_target "$pid"
  local floor_restore=0
  [ "$bytes" -gt 0 ] && floor_restore=$("$work/floor" write "$tmpfs/floor.bin" "$bytes")
  rm -f "$tmpfs/floor.bin"
  read -r restore_s restore_rss < <(measured "$ckpt" restore --input "$image")
  echo "$ck_s $ck_frozen $floor_tmpfs $df_frozen $floor_copy $df_s $disk_s $floor_disk $restore_s $floor_restore $size $ck_rss $df_rss $restore_rss" >>"$work/rows"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else printf "-" }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
label_of() {
  case $1 in 0) echo "empty" ;; sparse) echo "64 GiB reserved, 1 MiB touched" ;; *) echo "$1 MiB dirty" ;; esac
}

: >"$work/checkpoint.md"; : >"$work/restore.md"
for target in 0 sparse 64 256 1024; do
  start_target "$target"
  : >"$work/rows"
  for _ in $(seq "$runs"); do one_run; done
  col() { awk "{print \$$1}" "$work/rows" | median; }
  ck=$(col 1); fr=$(col 2); ft=$(col 3); dfr=$(col 4); fc=$(col 5); dfs=$(col 6)
  dk=$(col 7); fd=$(col 8); rs=$(col 9); frs=$(col 10); size=$(col 11)
  ck_rss=$(col 12); df_rss=$(col 13); rs_rss=$(col 14)
  label=$(label_of "$target")
  printf '| %s | %.3f | %.3f | %.3f | %s | %.3f | %.3f | %s | %.3f | %.3f | %.3f | %s | %s | %.0f | %.0f |\n' \
    "$label" "$ck" "$fr" "$ft" "$(ratio "$ck" "$ft")" "$dfr" "$fc" "$(ratio "$dfr" "$fc")" "$dfs" \
    "$dk" "$fd" "$(ratio "$dk" "$fd")" "$(mib "$size")" "$(awk -v r="$ck_rss" 'BEGIN{print r/1024}')" \
    "$(awk -v r="$df_rss" 'BEGIN{print r/1024}')" >>"$work/checkpoint.md"
  printf '| %s | %.3f | %.3f | %s | %.0f |\n' "$label" "$rs" "$frs" "$(ratio "$rs" "$frs")" \
    "$(awk -v r="$rs_rss" 'BEGIN{print r/1024}')" >>"$work/restore.md"
  echo "$target $ck $size" >>"$work/baseline"
  if [ "$target" = 1024 ]; then
    read -r show_s _ < <(measured "$ckpt" show "$tmpfs/image.ckpt")
    echo "ckpt show on the 1 GiB image: ${show_s} s" >"$work/extra"
  fi
  end_target "$pid"
done

echo "Checkpoint (medians of $runs runs; ratios = ours / floor measured in the same run on the same pages)"
echo
echo '| target | checkpoint s | frozen s | floor: read + write tmpfs s | ratio | --deferred-write frozen s | floor: read into memory s | ratio | --deferred-write wall s | checkpoint to disk s | floor: read + write disk + fsync s | ratio | image MiB | engine peak RSS MiB | --deferred-write peak RSS MiB |'
echo '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|'
cat "$work/checkpoint.md"
echo
echo "Restore from the tmpfs image (median of $runs runs)"
echo
echo '| target | restore s | floor: read into a fresh populated mapping s | ratio | engine peak RSS MiB |'
echo '|---|---|---|---|---|'
cat "$work/restore.md"
echo
read -r _ empty_s empty_size < <(grep '^0 ' "$work/baseline")
read -r _ sparse_s sparse_size < <(grep '^sparse ' "$work/baseline")
awk -v a="$sparse_s" -v b="$empty_s" -v c="$sparse_size" -v d="$empty_size" \
  'BEGIN { printf "sparse target over the empty one: checkpoint %+.1f ms, image %+.2f MiB\n", (a - b) * 1000, (c - d) / 1048576 }'
cat "$work/extra" 2>/dev/null || true
startup=$(for _ in $(seq 11); do measured "$ckpt" --version | cut -d' ' -f1; done | median)
echo "ckpt startup (ckpt --version, median of 11): ${startup} s"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
