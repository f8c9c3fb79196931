#!/usr/bin/env bash
# Network egress figures, one run, in the fake internet of tests/net_support (never the machine's
# own namespace): sandbox network start-up with and without network, DNS lookup latency through
# lasso's resolver against the world's server directly, TCP throughput through pasta with and
# without the ruleset. Needs root, nft, pasta (passt), iproute2, util-linux.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --test net_bench -- --ignored --nocapture --test-threads=1 2>&1 \
  | grep --line-buffered -E 'sandbox network|DNS |TCP |test result'
