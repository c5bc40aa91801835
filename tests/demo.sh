#!/usr/bin/env bash
# The main job, end to end on a real process (run ./build.sh first, as root):
#   start the ckpt_state workload (heap, anonymous/read-only memory, an open file at a position,
#   signal handlers, a blocked signal, an alternate stack, a timer), checkpoint it, kill it,
#   restore it from the image with its original pid, signal it, and require it to print PASS.
set -euo pipefail
cd "$(dirname "$0")/.."
ckpt=artifacts/ckpt
workload=artifacts/workloads/ckpt_state
[ -x "$ckpt" ] && [ -x "$workload" ] || { echo "demo: run ./build.sh first" >&2; exit 1; }

work=$(mktemp -d /tmp/ckpt-demo.XXXXXX)
pid=
cleanup() { [ -n "$pid" ] && kill -9 "$pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

# The target gets /dev/null and a regular log file, in its own session, and none of the
# descriptors this shell inherited (pipes are not checkpointable).
(
  for fd in /proc/$BASHPID/fd/*; do
    fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"
  done
  exec setsid "$workload" "$work/data" </dev/null >"$work/log" 2>&1
) &
pid=$!
for _ in $(seq 100); do grep -q READY "$work/log" 2>/dev/null && break; sleep 0.05; done
grep -q READY "$work/log" || { echo "demo: workload did not start"; cat "$work/log"; exit 1; }
echo "1. workload running as pid $pid"

"$ckpt" checkpoint --pid "$pid" --output "$work/app.ckpt"
echo "2. checkpointed into $(stat -c %s "$work/app.ckpt") bytes:"
"$ckpt" show "$work/app.ckpt" | head -5 | sed 's/^/     /'

kill -9 "$pid"
wait "$pid" 2>/dev/null || true   # reap it: the pid must be free for the restore
echo "3. killed pid $pid"

restored=$("$ckpt" restore --input "$work/app.ckpt")
[ "$restored" = "$pid" ] || { echo "demo: restored as pid $restored, expected $pid"; exit 1; }
echo "4. restored with the original pid $restored"

kill -USR1 "$pid"
for _ in $(seq 100); do grep -qE 'PASS|FAIL' "$work/log" && break; sleep 0.05; done
result=$(grep -E 'PASS|FAIL' "$work/log" || echo "no answer")
echo "5. the restored process checked its own state: $result"
pid=
[ "$result" = PASS ]
