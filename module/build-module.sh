#!/usr/bin/env bash
# Lays out artifacts/CkptPS/ (the importable module) from the Release build of module/CkptPS
# and the engine in artifacts/ckpt. Called by ./build.sh after the engine is published.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=module/CkptPS/bin/Release/net8.0
out=artifacts/CkptPS
helpgen=module/HelpGenerator/bin/Release/net10.0/HelpGenerator.dll
for required in "$bin/CkptPS.dll" "$bin/Ckpt.Image.dll" "$bin/System.IO.Hashing.dll" "$helpgen" artifacts/ckpt; do
  [ -e "$required" ] || { echo "build-module.sh: missing $required (build the solution first)" >&2; exit 1; }
done
rm -rf "$out"
mkdir -p "$out/en-US"
cp "$bin"/CkptPS.dll "$bin"/CkptPS.pdb "$bin"/Ckpt.Image.dll "$bin"/System.IO.Hashing.dll "$out"/
cp module/CkptPS/CkptPS.psd1 module/CkptPS/CkptPS.format.ps1xml module/CkptPS/CkptPS.types.ps1xml "$out"/
# The help is generated, never kept: the cmdlets' attributes (read from the CkptPS.dll just copied)
# and the prose in module/help/<Cmdlet-Name>.md give en-US/CkptPS.dll-Help.xml. Problems with the
# prose are printed as warnings here; the module tests fail on them.
dotnet "$helpgen" --assembly "$out/CkptPS.dll" --markdown module/help --output "$out/en-US/CkptPS.dll-Help.xml"
# The module's own copy of the engine: the cmdlets run the `ckpt` next to CkptPS.dll.
cp artifacts/ckpt "$out/ckpt"
chmod +x "$out/ckpt"
echo "built: $out"

# The module package: artifacts/packages/CkptPS.<ModuleVersion>.nupkg, which PSResourceGet installs
# from a repository folder (Register-PSResourceRepository -Uri artifacts/packages;
# Install-PSResource CkptPS). Its nuspec is written from the manifest, so both say the same.
manifest=module/CkptPS/CkptPS.psd1
field() { sed -n "s/^ *$1 *= *'\(.*\)'.*$/\1/p" "$manifest" | head -1; }
list() { sed -n "s/^ *$1 *= *@(\(.*\)).*$/\1/p" "$manifest" | head -1 | tr -d "'," ; }
xml() { sed -e 's/&/\&amp;/g' -e 's/</\&lt;/g' -e 's/>/\&gt;/g'; }
version=$(field ModuleVersion)
[ -n "$version" ] || { echo "build-module.sh: no ModuleVersion in $manifest" >&2; exit 1; }
# The tags Publish-PSResource would add: a module, its edition, its cmdlets.
tags="$(list Tags) PSModule PSIncludes_Cmdlet"
for edition in $(list CompatiblePSEditions); do tags="$tags PSEdition_$edition"; done
for cmdlet in $(list CmdletsToExport); do tags="$tags PSCmdlet_$cmdlet PSCommand_$cmdlet"; done
packaging=artifacts/obj/CkptPS.Package
mkdir -p "$packaging" artifacts/packages
rm -f artifacts/packages/CkptPS.*.nupkg
cat >"$packaging/CkptPS.nuspec" <<NUSPEC
<?xml version="1.0" encoding="utf-8"?>
<package xmlns="http://schemas.microsoft.com/packaging/2011/08/nuspec.xsd">
  <metadata>
    <id>CkptPS</id>
    <version>$version</version>
    <authors>$(field Author | xml)</authors>
    <owners>$(field CompanyName | xml)</owners>
    <description>$(field Description | xml)</description>
    <copyright>$(field Copyright | xml)</copyright>
    <tags>$(printf '%s' "$tags" | xml)</tags>
    <projectUrl>$(field ProjectUri | xml)</projectUrl>
    <licenseUrl>$(field LicenseUri | xml)</licenseUrl>
    <requireLicenseAcceptance>false</requireLicenseAcceptance>
  </metadata>
  <files>
    <file src="**" target="" />
  </files>
</package>
NUSPEC
dotnet pack module/package/CkptPS.Package.csproj -c Release -nologo -v quiet \
  -p:NuspecFile="$PWD/$packaging/CkptPS.nuspec" -p:NuspecBasePath="$PWD/$out" \
  -p:PackageOutputPath="$PWD/artifacts/packages"
[ -f "artifacts/packages/CkptPS.$version.nupkg" ] || { echo "build-module.sh: no artifacts/packages/CkptPS.$version.nupkg" >&2; exit 1; }
echo "built: artifacts/packages/CkptPS.$version.nupkg"
