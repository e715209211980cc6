#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build and run the relay libFuzzer targets (clang, -fsanitize=fuzzer,
# address,undefined), each for SECONDS seconds (default 60), from a seed
# corpus of valid frames. Usage: bash engine/fuzz/run.sh [SECONDS]
# (npm: `npm run fuzz` once package.json carries "fuzz": "bash engine/fuzz/run.sh 60").
# Exits non-zero if a target finds a crash (the reproducer is left in
# engine/out/fuzz/<target>/, run it with: engine/out/fuzz/<target>/fuzz <file>).
set -euo pipefail
secs="${1:-60}"
here="$(cd "$(dirname "$0")" && pwd)"
eng="$here/.."
out="$eng/out/fuzz"
cflags=(-std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror -I"$eng/include" -I"$eng/src")
srcs=("$eng"/src/netpkt.c "$eng"/src/relay.c "$eng"/src/relay_parse.c "$eng"/src/relay_table.c "$eng"/src/relay_filter.c "$eng"/src/region.c)
command -v clang >/dev/null || { echo "fuzz: clang not found (apt-get install clang)"; exit 77; }
status=0
for target in parse rewrite; do
  dir="$out/$target"
  mkdir -p "$dir/corpus" "$dir/seeds"
  clang "${cflags[@]}" -o "$dir/gen_seeds" "$here/gen_seeds.c" "${srcs[@]}"
  if [ "$target" = parse ]; then "$dir/gen_seeds" "$dir/seeds" prefixed; else "$dir/gen_seeds" "$dir/seeds"; fi
  clang "${cflags[@]}" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -o "$dir/fuzz" "$here/fuzz_$target.c" "${srcs[@]}"
  echo "fuzz: $target for ${secs}s"
  if ! (cd "$dir" && UBSAN_OPTIONS=halt_on_error=1 ./fuzz -max_total_time="$secs" -max_len=2048 \
        -print_final_stats=1 corpus seeds 2>&1 | tail -n 14); then
    echo "fuzz: $target FAILED (reproducer in $dir)"
    status=1
  fi
done
exit $status
