#!/usr/bin/env bash
# Coverage-guided fuzzing of image reading and restore planning (docs/fuzzing.md) with AFL++ and
# SharpFuzz. Needs afl++ (apt-get install afl++) and NuGet; never part of ./build.sh or CI.
# Usage: tests/Ckpt.Fuzz/run.sh [FINDINGS_DIR] [extra afl-fuzz arguments, e.g. -E 1000000]
# Runs at nice 19. Seeds: tests/Ckpt.Fuzz/make-corpus.sh (needs ./build.sh and root); then every
# input in tests/Ckpt.Image.Tests/FuzzRegressions is added too.
set -euo pipefail
cd "$(dirname "$0")/../.."
findings=${1:-artifacts/fuzz/findings}; shift || true
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
command -v afl-fuzz >/dev/null || { echo "afl-fuzz not found: apt-get install afl++" >&2; exit 1; }
tools=artifacts/tools/sharpfuzz
[ -x "$tools/sharpfuzz" ] || dotnet tool install SharpFuzz.CommandLine --version 2.3.0 --tool-path "$tools"

# Build into its own folder and instrument the two assemblies the target exercises.
bin=artifacts/fuzz/bin
rm -rf "$bin"
dotnet publish tests/Ckpt.Fuzz -c Release -nologo -v quiet -o "$bin"
for assembly in Ckpt.Image Ckpt.Engine; do "$tools/sharpfuzz" "$bin/$assembly.dll"; done

corpus=artifacts/fuzz/corpus
if [ ! -d "$corpus" ]; then tests/Ckpt.Fuzz/make-corpus.sh "$corpus"; fi
cp -n tests/Ckpt.Image.Tests/FuzzRegressions/* "$corpus"/ 2>/dev/null || true

dictionary=artifacts/fuzz/records.dict
python3 tests/Ckpt.Fuzz/make-dictionary.py src/Ckpt.Image/Records/RecordType.cs "$dictionary"

# A huge allocation is a finding too: the heap is capped at 512 MiB, far above what any seed needs.
export DOTNET_GCHeapHardLimit=0x20000000
# The target is a managed program, not an AFL-compiled binary; SharpFuzz speaks the forkserver protocol.
export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
exec nice -n 19 afl-fuzz -i "$corpus" -o "$findings" -x "$dictionary" -t 5000 -m none "$@" -- dotnet "$bin/Ckpt.Fuzz.dll"
