#!/usr/bin/env bash
# Runs every Ferry test. Installs what the tests need from Debian's packages when it is missing, builds the
# guest programs, runs all test projects, and ends with one line: "N passed, N failed[, N skipped]".
set -uo pipefail
cd "$(dirname "$0")"

packages=(clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32 wabt)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
  echo "test.sh: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null \
    || { echo "test.sh: could not install ${missing[*]}"; exit 1; }
fi

if [ -x guests/build.sh ]; then
  guests/build.sh || { echo "test.sh: building the guest programs failed"; exit 1; }
  guests/build.sh --check-demo || { echo "test.sh: the committed demo guests do not match their sources"; exit 1; }
fi

dotnet build Ferry.slnx -c Release -nologo -v quiet || { echo "test.sh: the build failed"; exit 1; }

log=$(mktemp)
trap 'rm -f "$log" "$log.failed"' EXIT
dotnet test Ferry.slnx -c Release --no-build -nologo 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

[ -f artifacts/conformance.txt ] && { echo; echo "WebAssembly spec suite, per file:"; cat artifacts/conformance.txt; }

# Repeat each failed test's name and the first lines of its message beside the summary, which short log excerpts keep.
awk '
  /^  Failed / { print; grab = 6; next }
  /^  (Stack Trace|Standard Output Messages):/ { grab = 0 }
  grab > 0 && !/^  Error Message:/ { print; grab-- }' "$log" > "$log.failed"
if [ -s "$log.failed" ]; then echo; echo "Failed tests:"; cat "$log.failed"; fi

# Sum the per-project summaries: "Passed!  - Failed:     0, Passed:    85, Skipped:    62, Total:   147, ..." (or Failed!, Skipped!)
read -r passed failed skipped projects < <(awk '
  /^(Passed|Failed|Skipped)! +- Failed:/ {
    gsub(",", ""); for (i = 1; i <= NF; i++) { if ($i == "Failed:") f += $(i+1); if ($i == "Passed:") p += $(i+1); if ($i == "Skipped:") s += $(i+1) }
    n++
  }
  END { printf "%d %d %d %d\n", p, f, s, n }' "$log")
expected=$(find tests -name '*.csproj' | wc -l)
if [ "$projects" -ne "$expected" ]; then
  echo "test.sh: $projects of $expected test projects reported results"
  status=1
fi
if [ "$skipped" -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"; else echo "$passed passed, $failed failed"; fi
if [ "$failed" -gt 0 ] || [ "$status" -ne 0 ]; then exit 1; fi
