#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Build and run the libFuzzer targets (clang, -fsanitize=fuzzer,
# address,undefined), each for SECONDS seconds (default 60):
#   parse, rewrite  the relay's parser and rewriter, from a seed corpus of
#                   valid frames (gen_seeds.c)
#   region          the whole engine on the null port against a hostile
#                   thread writing into the shared region (fuzz_region.c)
# Usage: bash engine/fuzz/run.sh [SECONDS] [TARGET...]
# (npm: `npm run fuzz` runs them all for 60 s, `npm run fuzz -- 30` for 30 s.)
# Exits non-zero if a target finds a crash (the reproducer is left in
# engine/out/fuzz/<target>/, run it with: engine/out/fuzz/<target>/fuzz <file>).
set -euo pipefail
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(parse rewrite region)
case "$secs" in ''|*[!0-9]*) echo "fuzz: SECONDS must be a number, got '$secs'"; exit 2;; esac
here="$(cd "$(dirname "$0")" && pwd)"
eng="$here/.."
out="$eng/out/fuzz"
cflags=(-std=c11 -D_GNU_SOURCE -g -O1 -Wall -Wextra -Werror -pthread -I"$eng/include" -I"$eng/src")
relay_srcs=("$eng"/src/netpkt.c "$eng"/src/relay.c "$eng"/src/relay_parse.c "$eng"/src/relay_table.c "$eng"/src/relay_filter.c "$eng"/src/relay_capture.c "$eng"/src/capture.c "$eng"/src/region.c "$eng"/src/ktier.c "$eng"/src/ktier_lib.c)
engine_srcs=("$eng"/src/*.c)
command -v clang >/dev/null || { echo "fuzz: clang not found (apt-get install clang)"; exit 77; }
status=0
for target in "${targets[@]}"; do
  dir="$out/$target"
  mkdir -p "$dir/corpus" "$dir/seeds"
  case "$target" in
    parse|rewrite)
      srcs=("${relay_srcs[@]}")
      opts=(-max_len=2048)
      clang "${cflags[@]}" -o "$dir/gen_seeds" "$here/gen_seeds.c" "${srcs[@]}"
      if [ "$target" = parse ]; then "$dir/gen_seeds" "$dir/seeds" prefixed; else "$dir/gen_seeds" "$dir/seeds"; fi
      ;;
    region)
      srcs=("${engine_srcs[@]}")
      # each input starts an engine with its threads: a hang is a failure
      opts=(-max_len=1024 -timeout=20 -rss_limit_mb=4096)
      # seeds: every operation kind once, then a long mixed run
      printf '\x08\x10\x81\x40\x00\x00\x10\x07\x01\xfb\x00\x00\x02\x00\x05\x09\x03\x05\x00\x00\x04\x00\x14\x01\x05\x00\x30\xff\x06\x02\x00\x11\x07\x01\x03\x00\x08\x0f\x02\x20\x09\x00\x03\x07\x0a\x01\x02\x03\x0b\x20\x00\x00' > "$dir/seeds/kinds"
      for k in $(seq 0 63); do printf "\\x$(printf %02x $((k % 12)))\\x$(printf %02x $((k * 37 % 256)))\\x$(printf %02x $((k * 91 % 256)))\\x$(printf %02x $((k * 13 % 256)))"; done > "$dir/seeds/mixed"
      ;;
    *) echo "fuzz: unknown target '$target' (accepted: parse, rewrite, region)"; exit 2;;
  esac
  clang "${cflags[@]}" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    -o "$dir/fuzz" "$here/fuzz_$target.c" "${srcs[@]}"
  echo "fuzz: $target for ${secs}s"
  if ! (cd "$dir" && UBSAN_OPTIONS=halt_on_error=1 ./fuzz -max_total_time="$secs" "${opts[@]}" \
        -print_final_stats=1 corpus seeds 2>&1 | tail -n 14); then
    echo "fuzz: $target FAILED (reproducer in $dir)"
    status=1
  fi
done
exit $status
