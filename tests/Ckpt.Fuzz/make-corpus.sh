#!/usr/bin/env bash
# Writes the fuzzer's seed corpus (docs/fuzzing.md): real images of small workloads, checkpointed by
# the real engine (run as root after ./build.sh), then thinned: every page chunk with contents is
# dropped (the VMA's end chunk stays), which leaves a valid image of a few KiB whose bytes are all
# structure, so AFL's mutations go into records rather than into page contents. The tail checksum
# no longer matches, which the fuzz target does not check (the restore checks it last).
# The files the images name (logs, a data file) stay in OUTDIR.files, so that the plan's checks of
# them pass and the fuzzer gets past them.
# Usage: tests/Ckpt.Fuzz/make-corpus.sh OUTDIR
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:?usage: make-corpus.sh OUTDIR}
mkdir -p "$out"
work=$(realpath -m "$out.files")
rm -rf "$work"; mkdir -p "$work"
w=artifacts/workloads

snapshot() { # NAME PROGRAM ARGS...: start, wait for READY, checkpoint, kill
  local name=$1; shift
  ( # the target gets stdin, stdout and stderr only: an inherited descriptor would be refused
    for fd in /proc/$BASHPID/fd/*; do fd=${fd##*/}; [ "$fd" -gt 2 ] && eval "exec $fd>&-"; done
    exec setsid "$@" </dev/null >"$work/$name.log" 2>&1 ) &
  local pid=$!
  for _ in $(seq 100); do grep -q "^READY" "$work/$name.log" 2>/dev/null && break; sleep 0.1; done
  artifacts/ckpt checkpoint --pid "$pid" --output "$work/$name.full" >/dev/null
  kill -9 "$pid"; wait "$pid" 2>/dev/null || true
  python3 - "$work/$name.full" "$out/$name.ckpt" <<'PY'
import struct, sys
data = open(sys.argv[1], 'rb').read()
out, i, records = bytearray(), 0, 0
while i < len(data):
    rtype, rlen = struct.unpack_from('<II', data, i)
    if rtype == 9001:  # TAIL {magic, checksum, record count}: the count of what is left
        out += data[i:i + rlen]
        struct.pack_into('<Q', out, len(out) - rlen + 24, records)
    elif not (rtype == 403 and struct.unpack_from('<I', data, i + 8)[0] > 0):  # PAGE_ARRAY with pages
        out += data[i:i + rlen]
        records += 1
    i += rlen
open(sys.argv[2], 'wb').write(out)
PY
  echo "$out/$name.ckpt: $(stat -c %s "$out/$name.ckpt") bytes (from $(stat -c %s "$work/$name.full"))"
  rm "$work/$name.full"
}

echo data > "$work/data"
snapshot state "$w/ckpt_state" "$work/data"
snapshot eventfd "$w/ckpt_eventfd"
snapshot threads "$w/ckpt_threads" 3
snapshot privs "$w/ckpt_privs" no-new-privs
