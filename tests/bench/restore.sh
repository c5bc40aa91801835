# Issue 15: restore latency and completion, eager and lazy, against the floor and CRIU. Sourced by
# run.sh (uses its start_target, end_target, measured, median, ratio, $ckpt, $work, $tmpfs, $runs).
criu=$(command -v criu || true)
sizes=${BENCH_SIZES:-"64 256 1024"}   # BENCH_SIZES="1 1024": the lazy return of a 1 MiB process is the fixed cost
[ "${BENCH_4G:-0}" = 1 ] && sizes="$sizes 4096"
seconds_since() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.6f", e - s }'; }

# A lazy restore of $1: prints "return_s complete_s" (complete: until its page server has exited).
lazy_restore() {
  local start server returned
  start=$(date +%s.%N)
  exec 9>"$work/progress"
  "$ckpt" restore --input "$1" --lazy --progress-fd 9 >/dev/null
  exec 9>&-
  returned=$(seconds_since "$start")
  server=$(grep -o '"page_server_pid":[0-9]*' "$work/progress" | cut -d: -f2)
  # Until it has exited: a zombie counts as exited (nobody here reaps it: PID 1 does, sometimes seconds later).
  while [ -e "/proc/$server" ] && [ "$(cut -d' ' -f3 "/proc/$server/stat" 2>/dev/null)" != Z ]; do sleep 0.002; done
  echo "$returned $(seconds_since "$start")"
}

eager_restore() { measured "$ckpt" restore --input "$1" | cut -d' ' -f1; }
criu_restore() { measured "$criu" restore -D "$1" -d -o restore.log | cut -d' ' -f1; }

restore_run() {  # $1: MiB, $2: run number; appends "floor eager lazy_return lazy_complete criu_restore ckpt_s criu_dump_s"
  local image=$tmpfs/r.ckpt dir=$tmpfs/criu ck cd=0 cr=0 eager lazy floor
  start_target "$1"
  rm -f "$image"; rm -rf "$dir"; mkdir -p "$dir"
  read -r ck _ < <(measured "$ckpt" checkpoint --pid "$pid" --output "$image")
  if [ -n "$criu" ]; then read -r cd _ < <(measured "$criu" dump -t "$pid" -D "$dir" --leave-running -o dump.log); fi
  end_target "$pid"
  floor=$("$work/floor" write "$image" "$bytes")
  one() {
    case $1 in
      eager) eager=$(eager_restore "$image") ;;
      lazy) lazy=$(lazy_restore "$image") ;;
      criu) [ -n "$criu" ] || return 0; cr=$(criu_restore "$dir") ;;  # no criu: no column, nothing to check
    esac
    [ -e "/proc/$pid" ] || { echo "$1 restore of $pid failed" >&2; exit 1; }
    end_target "$pid"
  }
  if [ $(($2 % 2)) = 1 ]; then order="eager criu lazy"; else order="lazy criu eager"; fi
  for m in $order; do one "$m"; done
  echo "$floor $eager $lazy $cr $ck $cd" >>"$work/restore_rows"
  rm -rf "$dir"
}

# Touch $3 percent (1, 10, 100) right after a $2 (lazy|eager) restore of image $1: prints
# "touch_s total_s" (touch: signal to last page, in the process; total: restore start to that line).
touch_after() {
  local image=$1 mode=$2 percent=$3 start signal line
  case $percent in 1) signal=RTMIN+1 ;; 10) signal=RTMIN+2 ;; 100) signal=RTMIN+3 ;; esac
  : >"$work/target.log"
  start=$(date +%s.%N)
  if [ "$mode" = lazy ]; then "$ckpt" restore --input "$image" --lazy >/dev/null; else "$ckpt" restore --input "$image" >/dev/null; fi
  kill -s "$signal" "$pid"
  for _ in $(seq 20000); do line=$(grep -a -o "TOUCHED $percent [0-9.]* [a-z]*" "$work/target.log" || true); [ -n "$line" ] && break; sleep 0.001; done
  local total; total=$(seconds_since "$start")
  case $line in *ok) ;; *) echo "touch after a $mode restore: '$line'" >&2; exit 1 ;; esac
  echo "$(echo "$line" | cut -d' ' -f3) $total"
  # let a lazy restore's page server finish before the pid is reused
  end_target "$pid"
  while pgrep -f "restore --input $image --lazy --page-server-fd" >/dev/null; do sleep 0.01; done
}

{
  echo "Restore (issue 15): medians of $runs runs, order of the restores alternating; ratios in the same run"
  [ -n "$criu" ] && echo "CRIU: $criu ($("$criu" --version | head -1))" || echo "CRIU: not on PATH (columns 0)"
  echo
  echo '| MiB | floor s | eager s | eager / floor | CRIU restore s | eager / CRIU | lazy: returns s | lazy: all pages in s | ckpt checkpoint s | CRIU dump s |'
  echo '|---|---|---|---|---|---|---|---|---|---|'
} >"$work/restore15.md"
{
  echo
  echo "Touching the memory right after the restore (one restore per cell, $runs runs, medians): seconds in the process from the signal to the last page touched, and from the start of \`ckpt restore\` to that moment"
  echo
  echo '| MiB | touched | eager: touch s | lazy: touch s | eager: restore + touch s | lazy: restore + touch s |'
  echo '|---|---|---|---|---|---|'
} >"$work/touch15.md"
for size in $sizes; do
  : >"$work/restore_rows"
  for i in $(seq "$runs"); do restore_run "$size" "$i"; done
  rcol() { awk "{print \$$1}" "$work/restore_rows" | median; }
  printf '| %s | %.3f | %.3f | %s | %.3f | %s | %.4f | %.3f | %.3f | %.3f |\n' "$size" "$(rcol 1)" "$(rcol 2)" \
    "$(ratio "$(rcol 2)" "$(rcol 1)")" "$(rcol 5)" "$(ratio "$(rcol 2)" "$(rcol 5)")" "$(rcol 3)" "$(rcol 4)" \
    "$(rcol 6)" "$(rcol 7)" >>"$work/restore15.md"
  [ "${BENCH_TOUCH:-1}" = 1 ] || continue   # BENCH_TOUCH=0: the restore table only
  start_target "$size"
  image=$tmpfs/t.ckpt; rm -f "$image"
  "$ckpt" checkpoint --pid "$pid" --output "$image" --kill >/dev/null
  end_target "$pid"
  for percent in 1 10 100; do
    : >"$work/touch_eager"; : >"$work/touch_lazy"
    for i in $(seq "$runs"); do
      if [ $((i % 2)) = 1 ]; then order="eager lazy"; else order="lazy eager"; fi
      for m in $order; do touch_after "$image" "$m" "$percent" >>"$work/touch_$m"; done
    done
    tc() { awk "{print \$$2}" "$work/touch_$1" | median; }
    printf '| %s | %s%% | %.4f | %.4f | %.3f | %.3f |\n' "$size" "$percent" "$(tc eager 1)" "$(tc lazy 1)" \
      "$(tc eager 2)" "$(tc lazy 2)" >>"$work/touch15.md"
  done
  rm -f "$image"
done
cat "$work/restore15.md" "$work/touch15.md"
echo "load average at the end of the restore case: $(cut -d' ' -f1-3 /proc/loadavg)"
