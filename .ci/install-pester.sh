#!/usr/bin/env bash
# Installs real pwsh and Pester from NuGet, nothing else, under artifacts/tools (gitignored):
#   artifacts/tools/pwsh/pwsh                       PowerShell 7.6.10 (the .NET global tool package)
#   artifacts/tools/nuget/pester/5.7.1/tools/       Pester 5.7.1 (the NuGet package 'Pester')
# Idempotent: a second run finds both and downloads nothing. Prints nothing but errors and
# "pwsh: PATH" / "pester: PATH" lines. Override the folder with CKPTPS_TOOLS=DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
pwsh_version=7.6.10
pester_version=5.7.1
tools=${CKPTPS_TOOLS:-$PWD/artifacts/tools}
mkdir -p "$tools"
tools=$(cd "$tools" && pwd)

pwsh="$tools/pwsh/pwsh"
installed=$( { dotnet tool list --tool-path "$tools/pwsh" 2>/dev/null || true; } | awk '$1 == "powershell" { print $2 }')
if [ "$installed" != "$pwsh_version" ] || [ ! -x "$pwsh" ]; then
  if [ -n "$installed" ]; then dotnet tool uninstall PowerShell --tool-path "$tools/pwsh" >/dev/null; fi
  # Without --version the tool takes the newest PowerShell, which does not start here.
  dotnet tool install PowerShell --version "$pwsh_version" --tool-path "$tools/pwsh" >/dev/null
fi

pester="$tools/nuget/pester/$pester_version/tools/Pester.psd1"
if [ ! -f "$pester" ]; then
  # A throwaway project whose only job is to make NuGet download one package into $tools/nuget.
  project="$tools/pester-download"
  mkdir -p "$project"
  cat >"$project/pester-download.csproj" <<CSPROJ
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup>
    <TargetFramework>net10.0</TargetFramework>
    <RestorePackagesPath>$tools/nuget</RestorePackagesPath>
    <ImportDirectoryBuildProps>false</ImportDirectoryBuildProps>
  </PropertyGroup>
  <ItemGroup>
    <PackageDownload Include="Pester" Version="[$pester_version]" />
  </ItemGroup>
</Project>
CSPROJ
  dotnet restore "$project/pester-download.csproj" --nologo -v quiet >/dev/null
  [ -f "$pester" ] || { echo "install-pester.sh: $pester not found after restoring Pester $pester_version" >&2; exit 1; }
fi
echo "pwsh: $pwsh"
echo "pester: $pester"
