#!/usr/bin/env bash
# Builds everything and lays out artifacts/ (see docs/ARCHITECTURE.md).
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
mkdir -p artifacts/workloads
for c in tests/workloads/*.c; do
  [ -e "$c" ] || continue
  gcc -O1 -g -Wall -Werror -o "artifacts/workloads/$(basename "$c" .c)" "$c"
done
dotnet build CkptPS.sln -c Release -nologo -v quiet
# A real .NET program for the restore tests (RestoreDotnetProgramTests); the SDK's own packs, no package.
dotnet build tests/workloads/dotnet_counter -c Release -nologo -v quiet -o artifacts/workloads/dotnet_counter
if [ "${CKPT_AOT:-1}" = 1 ]; then   # NativeAOT by default: ~15 ms startup instead of ~110 ms
  dotnet publish src/Ckpt.Cli -c Release -nologo -v quiet -r linux-x64 -p:CkptAot=true -o artifacts/publish/ckpt
else
  dotnet publish src/Ckpt.Cli -c Release -nologo -v quiet -r linux-x64 --self-contained false \
    -p:PublishSingleFile=true -o artifacts/publish/ckpt
fi
cp artifacts/publish/ckpt/ckpt artifacts/ckpt
if [ -x module/build-module.sh ]; then module/build-module.sh; fi
echo "built: artifacts/ckpt"
