#!/usr/bin/env bash
# Builds every guest program: guests/*.c as WASI commands (guests/out/NAME.wasm) and natively with gcc
# (guests/out/native/NAME, except files marked "// wasi-only"), guests/kernels/*.c as import-free modules exporting run
# (guests/out/kernels/) and as whole programs printing their result (guests/out/programs/, WASI and native),
# and the demo guests into src/Ferry.Cli/Demo/ (demo.wasm, query.wasm, dirtier.wasm). --check-demo verifies the committed
# files are exactly what their sources build to.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out="$here/out"
mkdir -p "$out/native" "$out/kernels" "$out/programs"
cc=clang-14
command -v "$cc" >/dev/null || { echo "guests/build.sh: $cc is missing (apt-get install clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32)"; exit 1; }
# Reproducible: no debug info, no build paths, fixed optimisation level.
common=(-O2 -Wall -Werror -g0 -ffile-prefix-map="$here"=.)

build_demo() {
  "$cc" --target=wasm32 "${common[@]}" -nostdlib -Wl,--no-entry -Wl,--strip-all -o "$1" "$here/demo.c"
}

build_demo_query() {
  "$cc" --target=wasm32-wasi --sysroot=/usr "${common[@]}" -Wl,--strip-all -o "$1" "$here/query.c"
}

build_demo_dirtier() {
  "$cc" --target=wasm32-wasi --sysroot=/usr "${common[@]}" -Wl,--strip-all -o "$1" "$here/dirtier.c"
}

if [ "${1:-}" = "--check-demo" ]; then
  fresh=$(mktemp)
  trap 'rm -f "$fresh"' EXIT
  status=0
  build_demo "$fresh"
  if cmp -s "$fresh" "$here/../src/Ferry.Cli/Demo/demo.wasm"; then echo "demo.wasm matches guests/demo.c"; else echo "src/Ferry.Cli/Demo/demo.wasm differs from a build of guests/demo.c: run guests/build.sh and commit it"; status=1; fi
  build_demo_query "$fresh"
  if cmp -s "$fresh" "$here/../src/Ferry.Cli/Demo/query.wasm"; then echo "query.wasm matches guests/query.c"; else echo "src/Ferry.Cli/Demo/query.wasm differs from a build of guests/query.c: run guests/build.sh and commit it"; status=1; fi
  build_demo_dirtier "$fresh"
  if cmp -s "$fresh" "$here/../src/Ferry.Cli/Demo/dirtier.wasm"; then echo "dirtier.wasm matches guests/dirtier.c"; else echo "src/Ferry.Cli/Demo/dirtier.wasm differs from a build of guests/dirtier.c: run guests/build.sh and commit it"; status=1; fi
  exit $status
fi

newer() { [ ! -e "$2" ] || [ "$1" -nt "$2" ]; }

for source in "$here"/*.c; do
  name=$(basename "$source" .c)
  [ "$name" = demo ] && continue
  if newer "$source" "$out/$name.wasm"; then
    echo "guests: $name.wasm"
    "$cc" --target=wasm32-wasi --sysroot=/usr "${common[@]}" -o "$out/$name.wasm" "$source"
  fi
  if ! grep -q "^// wasi-only" "$source" && newer "$source" "$out/native/$name"; then
    echo "guests: native/$name"
    gcc "${common[@]}" -o "$out/native/$name" "$source" -lm
  fi
done

for source in "$here"/kernels/*.c; do
  [ -e "$source" ] || continue
  name=$(basename "$source" .c)
  if newer "$source" "$out/kernels/$name.wasm"; then
    echo "guests: kernels/$name.wasm"
    "$cc" --target=wasm32 "${common[@]}" -mbulk-memory -nostdlib -Wl,--no-entry -o "$out/kernels/$name.wasm" "$source"
  fi
  if newer "$source" "$out/native/kernel-$name"; then
    echo "guests: native/kernel-$name"
    gcc "${common[@]}" -DNATIVE_MAIN -o "$out/native/kernel-$name" "$source"
  fi
  if newer "$source" "$out/programs/$name.wasm"; then
    echo "guests: programs/$name.wasm"
    "$cc" --target=wasm32-wasi --sysroot=/usr "${common[@]}" -mbulk-memory -DWASI_MAIN -o "$out/programs/$name.wasm" "$source"
    gcc "${common[@]}" -DWASI_MAIN -o "$out/programs/$name" "$source"
  fi
done

demo="$here/../src/Ferry.Cli/Demo/demo.wasm"
if newer "$here/demo.c" "$demo"; then
  echo "guests: demo.wasm"
  build_demo "$demo"
fi
demo_query="$here/../src/Ferry.Cli/Demo/query.wasm"
if newer "$here/query.c" "$demo_query"; then
  echo "guests: demo query.wasm"
  build_demo_query "$demo_query"
fi
demo_dirtier="$here/../src/Ferry.Cli/Demo/dirtier.wasm"
if newer "$here/dirtier.c" "$demo_dirtier"; then
  echo "guests: demo dirtier.wasm"
  build_demo_dirtier "$demo_dirtier"
fi
