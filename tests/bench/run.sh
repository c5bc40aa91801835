#!/usr/bin/env bash
# Whole checkpoint/restore benchmark (issues 6 and 9). Not part of CI. Usage (as root, after ./build.sh):
#   tests/bench/run.sh [runs] [all|memory|threads|restore|cow]   default 5 runs per target, all cases
#   (CKPT=/path/to/ckpt measures another engine build, e.g. main's, for a before/after comparison)
# restore (issue 15): eager restore, lazy restore (--lazy: time until the command returns with the
# process running, and until its page server has put every page in), the floor (populate plus read of
# the same bytes in one process) and, when a `criu` binary is on PATH, CRIU's dump and restore
# (images on tmpfs), for 64 MiB, 256 MiB and 1 GiB of dirty anonymous memory (BENCH_4G=1 adds 4 GiB),
# alternating the order of the restores from run to run; then the time a restored process takes to
# touch 1%, 10% and 100% of its pages right after a lazy and after an eager restore.
# BENCH_SIZES overrides the sizes in MiB ("1 1024": the lazy return of a tiny process, its fixed cost,
# beside a 1 GiB one); BENCH_TOUCH=0 leaves out the touch table.
# memory (issue 6): for each target it measures, in the same run and on the same pages, ckpt against
# the floor (process_vm_readv + write for a checkpoint, process_vm_readv into memory for the frozen
# time of --deferred-write, read into a fresh mapping for a restore) and prints medians and ratios as
# Markdown tables. Every file is created anew, by ckpt and by the floor alike.
# threads (issue 9): 256 MiB dirtied by 1 thread against the same by 8 threads (checkpoint and
# restore, alternating, ratio 8/1), and the freeze (stop_seconds) of 1, 8 and 64 mostly idle threads
# with 1 MiB of memory (rotating order, 4x runs; FREEZE_RUNS overrides), then one profiled run of
# each with the time at which every progress phase started.
# cow (issue 10): a process that wrote 256 MiB and then forked one child that only reads it
# (tests/bench/tree_target.c "2 256 cow": the two share every page copy-on-write) against the same
# process alone ("1 256"): checkpoint --kill and restore wall times and image sizes, images on tmpfs,
# medians of the runs in alternating order.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
cases=${2:-all}
case $cases in all|memory|threads|restore|cow) ;; *) echo "usage: $0 [runs] [all|memory|threads|restore|cow]" >&2; exit 2 ;; esac
freeze_runs=${FREEZE_RUNS:-$((runs * 4))}
ckpt=${CKPT:-$PWD/artifacts/ckpt}
work=$(mktemp -d /var/tmp/ckpt-bench.XXXXXX)   # a disk, not tmpfs
tmpfs=$(mktemp -d /dev/shm/ckpt-bench.XXXXXX)
trap 'pkill -f "$work/bench_target" 2>/dev/null || true; pkill -f "$work/tree_target" 2>/dev/null || true; rm -rf "$work" "$tmpfs"' EXIT
gcc -O2 -Wall -Werror -pthread -o "$work/bench_target" tests/bench/bench_target.c
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

start_target() {  # $1: MiB or sparse, [$2: threads]; sets pid, address, bytes
  # Only stdin, stdout and stderr reach the target (the engine refuses pipes, and a harness may leak
  # some, e.g. fd 251): every other descriptor is closed in the subshell before the exec.
  : >"$work/target.log"
  (
    for fd in /proc/$BASHPID/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
    exec setsid "$work/bench_target" "$@" </dev/null >"$work/target.log" 2>&1
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

if [ "$cases" = all ] || [ "$cases" = memory ]; then
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
fi

# ---- threads (issue 9) ----
stop_of() { grep -o '"stop_seconds":[0-9.eE-]*' "$1" | tail -1 | cut -d: -f2; }
threads_of() { grep -o '"threads":[0-9]*' "$1" | tail -1 | cut -d: -f2; }

# One checkpoint to tmpfs, kill, restore of the target $1; prints "checkpoint_s frozen_s stop_s threads
# restore_s image_bytes". Fails if either step fails or the restored process lacks a thread.
cycle() {
  local tpid=$1 image=$2 ck_s rs_s
  rm -f "$image"
  exec 9>"$work/progress"
  read -r ck_s _ < <(measured "$ckpt" checkpoint --pid "$tpid" --output "$image" --progress-fd 9)
  exec 9>&-
  grep -q '"ok":true' "$work/progress" || { echo "checkpoint of $tpid failed: $(tail -1 "$work/progress")" >&2; return 1; }
  local fr st th size
  fr=$(frozen_of "$work/progress"); st=$(stop_of "$work/progress"); th=$(threads_of "$work/progress")
  size=$(stat -c %s "$image")
  end_target "$tpid"
  read -r rs_s _ < <(measured "$ckpt" restore --input "$image")
  local now; now=$(ls "/proc/$tpid/task" 2>/dev/null | wc -l)
  [ "$now" = "$th" ] || { echo "restored $tpid has $now threads, the image $th" >&2; return 1; }
  echo "$ck_s $fr $st $th $rs_s $size"
}

# The same with the progress lines timestamped as they arrive (ms after the engine was started):
# prints "<phase> <ms>" for the first line of every phase, then "result" and "exit".
cat >"$work/stamp.pl" <<'PERL'
use strict; use warnings; use POSIX (); use Fcntl; use Time::HiRes qw(time);
pipe(my $r, my $w) or die "pipe: $!";
my $t0 = time;
my $child = fork() // die "fork: $!";
if (!$child) {
  close $r;
  if (fileno($w) == 9) { fcntl($w, F_SETFD, 0) } else { POSIX::dup2(fileno($w), 9) or die "dup2: $!" }
  open(STDOUT, '>', '/dev/null'); exec(@ARGV) or die "exec: $!";
}
close $w;
my %seen; my @out;
while (my $line = <$r>) {
  my $ms = (time - $t0) * 1000;
  my ($phase) = $line =~ /"phase":"([^"]+)"/;
  $phase //= $line =~ /"event":"result"/ ? 'result' : 'other';
  $phase =~ s/ /_/g;
  push @out, sprintf('%s %.1f', $phase, $ms) unless $seen{$phase}++;
}
waitpid($child, 0);
push @out, sprintf('exit %.1f', (time - $t0) * 1000);
print join(' ', @out), "\n";
PERL
profile_cycle() {  # $1: pid, $2: image, $3: label
  local tpid=$1 image=$2 label=$3 ck rs
  rm -f "$image"
  ck=$(perl "$work/stamp.pl" "$ckpt" checkpoint --pid "$tpid" --output "$image" --progress-fd 9)
  end_target "$tpid"
  rs=$(perl "$work/stamp.pl" "$ckpt" restore --input "$image" --progress-fd 9)
  [ -e "/proc/$tpid" ] || { echo "profiled restore of $tpid failed" >&2; return 1; }
  echo "    $label checkpoint: $ck" >>"$work/profile"
  echo "    $label restore:    $rs" >>"$work/profile"
}

if [ "$cases" = all ] || [ "$cases" = threads ]; then
  : >"$work/profile"
  # (a) 256 MiB, dirtied by 1 thread or by 8; both targets alive, measured alternately (ABBA).
  start_target 256 1; pid1=$pid
  start_target 256 8; pid8=$pid
  : >"$work/rows1"; : >"$work/rows8"
  for i in $(seq "$runs"); do
    if [ $((i % 2)) = 1 ]; then order="1 8"; else order="8 1"; fi
    for n in $order; do
      if [ "$n" = 1 ]; then cycle "$pid1" "$tmpfs/t1.ckpt" >>"$work/rows1"
      else cycle "$pid8" "$tmpfs/t8.ckpt" >>"$work/rows8"; fi
    done
  done
  profile_cycle "$pid1" "$tmpfs/t1.ckpt" "256 MiB, 1 thread "
  profile_cycle "$pid8" "$tmpfs/t8.ckpt" "256 MiB, 8 threads"
  end_target "$pid1"; end_target "$pid8"
  rm -f "$tmpfs/t1.ckpt" "$tmpfs/t8.ckpt"
  tcol() { awk "{print \$$2}" "$work/rows$1" | median; }
  paired() {  # median over runs of (8-thread / 1-thread) of column $1
    paste -d' ' "$work/rows8" "$work/rows1" | awk -v c="$1" '{print $c / $(c + 6)}' | median
  }
  {
    echo "Threads (a): 256 MiB of dirty anonymous memory, 1 thread against 8 threads (medians of $runs runs, alternating)"
    echo
    echo '| threads | checkpoint s | frozen s | stop ms | restore s | image MiB |'
    echo '|---|---|---|---|---|---|'
    for n in 1 8; do
      printf '| %s | %.3f | %.3f | %.2f | %.3f | %s |\n' "$n" "$(tcol $n 1)" "$(tcol $n 2)" \
        "$(awk -v s="$(tcol $n 3)" 'BEGIN{print s*1000}')" "$(tcol $n 5)" "$(mib "$(tcol $n 6)")"
    done
    printf '| ratio 8/1 of the medians | %s | %s | %s | %s | |\n' "$(ratio "$(tcol 8 1)" "$(tcol 1 1)")" \
      "$(ratio "$(tcol 8 2)" "$(tcol 1 2)")" "$(ratio "$(tcol 8 3)" "$(tcol 1 3)")" "$(ratio "$(tcol 8 5)" "$(tcol 1 5)")"
    printf '| median of the per-run ratios 8/1 | %.2f | %.2f | %.2f | %.2f | |\n' "$(paired 1)" "$(paired 2)" \
      "$(paired 3)" "$(paired 5)"
    echo
  } >"$work/threads_a.md"

  # (b) freeze of 1, 8 and 64 mostly idle threads, 1 MiB dirty; rotating order.
  variants="1 8 64"
  for n in $variants; do start_target 1 "$n"; eval "pidf$n=\$pid"; : >"$work/freeze$n"; done
  for i in $(seq "$freeze_runs"); do
    case $((i % 3)) in 1) order="1 8 64" ;; 2) order="8 64 1" ;; 0) order="64 1 8" ;; esac
    for n in $order; do eval "tpid=\$pidf$n"; cycle "$tpid" "$tmpfs/f$n.ckpt" >>"$work/freeze$n"; done
  done
  for n in $variants; do
    eval "tpid=\$pidf$n"; profile_cycle "$tpid" "$tmpfs/f$n.ckpt" "1 MiB, $n threads"
    end_target "$tpid"; rm -f "$tmpfs/f$n.ckpt"
  done
  fcol() { awk "{print \$$2}" "$work/freeze$1" | median; }
  fmax() { awk "{print \$$2}" "$work/freeze$1" | sort -g | tail -1; }
  ms() { awk -v s="$1" 'BEGIN{printf "%.2f", s*1000}'; }
  {
    echo "Threads (b): freeze of mostly idle threads, 1 MiB dirty (medians of $freeze_runs runs, rotating order)"
    echo
    echo '| threads | stop ms (median) | stop ms (max) | frozen ms | checkpoint s | restore s |'
    echo '|---|---|---|---|---|---|'
    for n in $variants; do
      printf '| %s | %s | %s | %s | %.3f | %.3f |\n' "$n" "$(ms "$(fcol $n 3)")" "$(ms "$(fmax $n 3)")" \
        "$(ms "$(fcol $n 2)")" "$(fcol $n 1)" "$(fcol $n 5)"
    done
    echo
    echo "Profile: one more run of each, ms after the engine was started at which each phase's first progress line arrived"
    echo
    cat "$work/profile"
    echo
  } >"$work/threads_b.md"
fi

# ---- copy-on-write after fork (issue 10) ----
if [ "$cases" = all ] || [ "$cases" = cow ]; then
  gcc -O2 -Wall -Werror -o "$work/tree_target" tests/bench/tree_target.c
  cow_cycle() {  # $1: label, then tree_target arguments; appends "checkpoint_s restore_s image_bytes" to $work/cow_$1
    local label=$1 image=$tmpfs/cow.ckpt tpid ck_s rs_s size; shift
    : >"$work/target.log"
    (
      for fd in /proc/$BASHPID/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
      exec setsid "$work/tree_target" "$@" </dev/null >"$work/target.log" 2>&1
    ) &
    for _ in $(seq 1200); do grep -q READY "$work/target.log" && break; sleep 0.05; done
    read -r _ tpid <"$work/target.log"
    rm -f "$image"
    read -r ck_s _ < <(measured "$ckpt" checkpoint --pid "$tpid" --output "$image" --kill)
    size=$(stat -c %s "$image")
    wait 2>/dev/null || true
    for _ in $(seq 1000); do [ -e "/proc/$tpid" ] || break; sleep 0.01; done
    read -r rs_s _ < <(measured "$ckpt" restore --input "$image")
    [ -e "/proc/$tpid" ] || { echo "restore of the $label target failed" >&2; return 1; }
    echo "$ck_s $rs_s $size" >>"$work/cow_$label"
    # The restored tree is in its own session (sid = the root's pid): kill every process of it.
    for p in $(ps -eo pid=,sid= | awk -v s="$tpid" '$2 == s {print $1}'); do kill -9 "$p" 2>/dev/null || true; done
    for _ in $(seq 1000); do [ -e "/proc/$tpid" ] || break; sleep 0.01; done
    rm -f "$image"
  }
  : >"$work/cow_forked"; : >"$work/cow_alone"
  for i in $(seq "$runs"); do
    if [ $((i % 2)) = 1 ]; then cow_cycle forked 2 256 cow; cow_cycle alone 1 256
    else cow_cycle alone 1 256; cow_cycle forked 2 256 cow; fi
  done
  ccol() { awk "{print \$$2}" "$work/cow_$1" | median; }
  {
    echo "Copy-on-write after fork: 256 MiB written, then one child forked that only reads it (medians of $runs runs, alternating)"
    echo
    echo '| target | checkpoint --kill s | restore s | image MiB |'
    echo '|---|---|---|---|'
    printf '| %s | %s | %s | %s |\n' "forked: parent + child sharing 256 MiB" "$(ccol forked 1)" "$(ccol forked 2)" "$(mib "$(ccol forked 3)")"
    printf '| %s | %s | %s | %s |\n' "the same process alone" "$(ccol alone 1)" "$(ccol alone 2)" "$(mib "$(ccol alone 3)")"
    printf '| ratio forked/alone | %s | %s | %s |\n' "$(ratio "$(ccol forked 1)" "$(ccol alone 1)")" "$(ratio "$(ccol forked 2)" "$(ccol alone 2)")" "$(ratio "$(ccol forked 3)" "$(ccol alone 3)")"
    echo
  } >"$work/cow.md"
fi

if [ "$cases" = all ] || [ "$cases" = threads ]; then cat "$work/threads_a.md" "$work/threads_b.md"; fi
if [ "$cases" = all ] || [ "$cases" = cow ]; then cat "$work/cow.md"; fi
if [ "$cases" = all ] || [ "$cases" = restore ]; then . tests/bench/restore.sh; fi
startup=$(for _ in $(seq 11); do measured "$ckpt" --version | cut -d' ' -f1; done | median)
echo "ckpt startup (ckpt --version, median of 11): ${startup} s"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, kernel $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
