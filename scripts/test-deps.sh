#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The Debian packages the test suite needs, installed once (idempotent).
# `npm test` runs this first (pretest) and `.ci/run` calls it before `npm ci`.
#
#   root:     installs what is missing, printing each package and why
#   not root: names the missing packages and the command that installs them, exits 1
#   REFLECTOR_TEST_DEPS=skip: checks nothing (a developer who knows what is missing;
#             the tests that need a missing tool still skip, each saying why)
#
# A fresh machine has Node 20, npm, python3, make, g++, iproute2 and the libbpf1
# runtime; everything below is for the tests only, never for `npm start`.
set -euo pipefail

if [ "${REFLECTOR_TEST_DEPS:-}" = skip ]; then
  echo "test-deps: REFLECTOR_TEST_DEPS=skip, not checking the test packages"
  exit 0
fi

# package|why (which tests use it)
need=(
  "iproute2|ip netns / ip link: every packet test builds namespaces and veth pairs (test/helpers/testbed.ts)"
  "clang|BPF objects (test/helpers/cc.ts compileBpf) and libFuzzer targets (engine/fuzz)"
  "llvm|llvm-strip / llvm-objdump for the kernel tier's BPF objects, llvm-symbolizer for sanitizer reports"
  "libclang-rt-14-dev|the sanitizer and libFuzzer runtimes clang links (engine/fuzz)"
  "libbpf-dev|libbpf headers (<bpf/bpf_helpers.h>) for BPF objects"
  "bpftool|the kernel tier's tests look at loaded BPF programs, maps and pins"
  "ffmpeg|test media and decoding checks with ffprobe (test/relay/ffmpeg.test.ts, test/session)"
  "tcpdump|nanosecond captures (test/aggregate/capture.ts), ARP checks (test/cluster/failover.test.ts)"
  "prometheus|promtool check metrics / check rules / test rules, a real Prometheus scraping the server (test/metrics, test/deploy)"
  "etcd-server|etcd for cluster tests (test/helpers/etcd.ts)"
  "etcd-client|etcdctl for cluster tests"
  "python3-grpcio|a gRPC client not written in this project (test/control)"
  "python3-grpc-tools|compiles the .proto for that client"
  "systemd|systemd-analyze verify on deploy/systemd/reflector.service (test/deploy)"
  "procps|sysctl in the testbed (test/helpers/testbed.ts turns on forwarding)"
  "util-linux|flock, setpriv, taskset (test/engine/bad-input.test.ts, benches)"
  "openssl|TLS certificates for the gRPC control API tests over TCP"
)

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "test-deps: dpkg-query not found: this script knows Debian's package names only." >&2
  echo "test-deps: install the equivalents of: $(printf '%s\n' "${need[@]}" | cut -d'|' -f1 | tr '\n' ' ')" >&2
  exit 1
fi

missing=()
for entry in "${need[@]}"; do
  pkg=${entry%%|*}
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$entry")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "test-deps: all ${#need[@]} test packages are installed"
  exit 0
fi

names=()
for entry in "${missing[@]}"; do names+=("${entry%%|*}"); done

if [ "$(id -u)" -ne 0 ]; then
  echo "test-deps: ${#names[@]} Debian package(s) the tests need are missing:" >&2
  for entry in "${missing[@]}"; do echo "  ${entry%%|*}: ${entry#*|}" >&2; done
  echo "test-deps: as root run: apt-get install --no-install-recommends ${names[*]}" >&2
  echo "test-deps: (or rerun npm test as root, which installs them; REFLECTOR_TEST_DEPS=skip to go on without)" >&2
  exit 1
fi

echo "test-deps: installing ${#names[@]} Debian package(s):"
for entry in "${missing[@]}"; do echo "  ${entry%%|*}: ${entry#*|}"; done
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${names[@]}"
# installing etcd-server or prometheus starts their services on Debian; the
# tests start their own on loopback and temp dirs, so the packaged ones stop
for svc in etcd prometheus prometheus-node-exporter; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl stop "$svc" && echo "test-deps: stopped the packaged $svc service (tests run their own)"
  fi
done
echo "test-deps: done"
