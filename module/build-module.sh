#!/usr/bin/env bash
# Lays out artifacts/CkptPS/ (the importable module) from the Release build of module/CkptPS
# and the engine in artifacts/ckpt. Called by ./build.sh after the engine is published.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=module/CkptPS/bin/Release/net8.0
out=artifacts/CkptPS
for required in "$bin/CkptPS.dll" "$bin/Ckpt.Image.dll" "$bin/System.IO.Hashing.dll" artifacts/ckpt; do
  [ -e "$required" ] || { echo "build-module.sh: missing $required (build the solution first)" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out/en-US"
cp "$bin"/CkptPS.dll "$bin"/CkptPS.pdb "$bin"/Ckpt.Image.dll "$bin"/System.IO.Hashing.dll "$out"/
cp module/CkptPS/CkptPS.psd1 module/CkptPS/CkptPS.format.ps1xml module/CkptPS/CkptPS.types.ps1xml "$out"/
cp module/CkptPS/en-US/CkptPS.dll-Help.xml "$out/en-US/"
# The module's own copy of the engine: the cmdlets run the `ckpt` next to CkptPS.dll.
cp artifacts/ckpt "$out/ckpt"
chmod +x "$out/ckpt"
echo "built: $out"
