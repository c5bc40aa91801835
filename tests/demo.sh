#!/usr/bin/env bash
# The main job, for real: checkpoint a running process, kill it, restore it with the same pid,
# and show that it carries on. Run ./build.sh first (needs root: ptrace and clone3 set_tid).
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=artifacts/ckpt
workload=artifacts/workloads/ckpt_state
[ -x "$ckpt" ] && [ -x "$workload" ] || { echo "demo: run ./build.sh first" >&2; exit 1; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "demo: FAILED: $*" >&2; exit 1; }

wait_for() { # wait_for SECONDS COMMAND...: poll until the command succeeds
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do [ $SECONDS -lt $deadline ] || return 1; sleep 0.1; done
}
# Start a target without inherited descriptors beyond 0-2 (pipes are not restorable), in a session of
# its own: detached from the terminal the demo runs on (a process on the user's terminal is restored
# only with --shell-terminal). The subshell is no group leader, so setsid execs without forking.
# disown: bash would otherwise print a "Killed" job notice for each target that --kill ends; it still
# reaps them (SIGCHLD), which reaped() waits for, since the restore needs the pid free.
start() {
  ( for fd in /proc/self/fd/*; do n=${fd##*/}; [ "$n" -gt 2 ] && eval "exec $n>&-" 2>/dev/null; done; exec setsid "$@" ) &
  disown $!
}
in_syscall() { [ "$(cut -d' ' -f1 "/proc/$1/syscall" 2>/dev/null)" = "$2" ]; }
gone() { [ ! -e "/proc/$1" ]; }
reaped() { wait_for 10 gone "$1" || fail "pid $1 still exists after checkpoint --kill"; }

echo "== 1. sleep 1000: checkpoint, kill, restore"
start sleep 1000 </dev/null >"$work/sleep.log" 2>&1
pid=$!; pids+=("$pid")
wait_for 10 in_syscall "$pid" 230 || fail "sleep did not start"
grep -v vsyscall "/proc/$pid/maps" >"$work/maps.before" || true
"$ckpt" checkpoint --pid "$pid" --output "$work/sleep.img" --kill
reaped "$pid"
echo "checkpointed and killed pid $pid ($(stat -c %s "$work/sleep.img") bytes)"
restored=$("$ckpt" restore --input "$work/sleep.img")
[ "$restored" = "$pid" ] || fail "restored pid $restored, expected $pid"
wait_for 10 in_syscall "$pid" 230 || fail "restored sleep is not sleeping"
grep -v vsyscall "/proc/$pid/maps" >"$work/maps.after" || true
diff "$work/maps.before" "$work/maps.after" || fail "maps differ after restore"
echo "restored pid $pid: $(cat /proc/$pid/comm), state $(awk '/^State/ {print $2}' /proc/$pid/status), identical maps"
kill -9 "$pid"
wait_for 10 gone "$pid" || fail "restored sleep did not die"

echo "== 2. ckpt_state workload through a pipe: checkpoint --output - | restore --input -"
start "$workload" "$work/data" </dev/null >"$work/state.log" 2>&1
pid=$!; pids+=("$pid")
wait_for 10 grep -q "^READY $pid" "$work/state.log" || fail "workload not ready"
wait_for 10 in_syscall "$pid" 34 || fail "workload not in pause()"
"$ckpt" checkpoint --pid "$pid" --output - --kill | "$ckpt" restore --input - >"$work/restored.pid"
[ "$(cat "$work/restored.pid")" = "$pid" ] || fail "restored pid $(cat "$work/restored.pid"), expected $pid"
wait_for 10 in_syscall "$pid" 34 || fail "restored workload not back in pause()"
kill -USR1 "$pid"
wait_for 10 grep -q "^PASS" "$work/state.log" || fail "workload says: $(tail -1 "$work/state.log")"
echo "restored pid $pid says: $(tail -1 "$work/state.log")"

echo "== 3. a process of 8 threads (futex, sleeps, pause, live AVX registers): checkpoint, kill, restore"
start artifacts/workloads/ckpt_threads 8 </dev/null >"$work/threads.log" 2>&1
pid=$!; pids+=("$pid")
wait_for 20 grep -q "^READY $pid" "$work/threads.log" || fail "threads workload not ready"
tids_before=$(ls "/proc/$pid/task" | sort -n | tr '\n' ' ')
"$ckpt" checkpoint --pid "$pid" --output "$work/threads.img" --kill
reaped "$pid"
restored=$("$ckpt" restore --input "$work/threads.img")
[ "$restored" = "$pid" ] || fail "restored pid $restored, expected $pid"
tids_after=$(ls "/proc/$pid/task" | sort -n | tr '\n' ' ')
[ "$tids_after" = "$tids_before" ] || fail "threads $tids_after, expected $tids_before"
kill -USR1 "$pid"
wait_for 20 grep -q "^PASS\|^FAIL" "$work/threads.log"
grep -q "^PASS" "$work/threads.log" || fail "threads workload says: $(grep FAIL "$work/threads.log")"
echo "restored pid $pid with threads $tids_after: PASS"

echo "== 4. a shell pipeline (bash, seq | a reading loop: a tree of processes joined by a pipe)"
start bash -c 'seq 1 100000000 | while read l; do echo "$l" >> "$0"; sleep 0.02; done' "$work/pipeline.out" </dev/null >/dev/null 2>&1
pid=$!; pids+=("$pid")
wait_for 20 test -s "$work/pipeline.out" || fail "pipeline not started"
sleep 0.5
tree_before=$(ps -o pid= --ppid "$pid" | sort -n | tr -s ' \n' ' ')
"$ckpt" checkpoint --pid "$pid" --output "$work/pipeline.img" --kill
reaped "$pid"
restored=$("$ckpt" restore --input "$work/pipeline.img")
[ "$restored" = "$pid" ] || fail "restored pid $restored, expected $pid"
tree_after=$(ps -o pid= --ppid "$pid" | sort -n | tr -s ' \n' ' ')
[ "$tree_after" = "$tree_before" ] || fail "children $tree_after, expected $tree_before"
lines=$(wc -l < "$work/pipeline.out"); sleep 1
[ "$(wc -l < "$work/pipeline.out")" -gt "$lines" ] || fail "the restored pipeline does not go on"
n=$(wc -l < "$work/pipeline.out")
seq 1 "$n" | cmp -s - <(head -n "$n" "$work/pipeline.out") || fail "a line was lost or written twice"
echo "restored pipeline $pid with children $tree_after: $(wc -l < "$work/pipeline.out") lines, none lost or twice"
kill -- -"$pid" 2>/dev/null || true
echo "demo: OK"
