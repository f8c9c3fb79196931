#!/usr/bin/env bash
# Network egress figures, one run, in the fake internet of tests/net_support (never the machine's
# own namespace): sandbox network start-up with and without network, DNS lookup latency through
# lasso's resolver against the world's server directly, TCP throughput through pasta with and
# without the ruleset. Needs root, nft, pasta (passt), iproute2, util-linux.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --test net_bench -- --ignored --nocapture --test-threads=1 2>&1 \
  | grep --line-buffered -E 'sandbox network|DNS |TCP |test result'

# Sandbox start-up through the real CLI: `lasso run -- /bin/true` with an allowlist profile
# (pasta + ruleset + NFLOG reader + resolver before init starts) against `--profile offline`, in
# one hyperfine run. Inside a throwaway network and mount namespace of its own: a veth link with
# a documentation address and a default route for pasta to copy, and a resolv.conf naming a
# documentation address (nothing is sent: /bin/true makes no lookup).
LASSO=${LASSO:-target/release/lasso}
[ -x "$LASSO" ] || LASSO=target/debug/lasso
LASSO=$(realpath "$LASSO")
tmp=$(mktemp -d /tmp/lasso-netbench-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/home/project" "$tmp/audit" "$tmp/config"
chmod 755 "$tmp"
chown -R 4321:4321 "$tmp/home"
printf 'extends = "standard"\nname = "bench"\n[network]\nmode = "allowlist"\nregistries = []\nallowed_domains = ["allowed.test"]\n' > "$tmp/allow.toml"
printf 'nameserver 198.51.100.53\n' > "$tmp/resolv.conf"
unshare --net --mount --propagation private -- sh -c '
  set -e
  ip link set lo up
  ip link add wan0 type veth peer name wan1
  ip addr add 192.0.2.1/24 dev wan0
  ip link set wan0 up
  ip link set wan1 up
  ip route add default via 192.0.2.254 dev wan0
  mount --bind "$1/resolv.conf" /etc/resolv.conf
  cd "$1/home/project"
  export HOME="$1/home" LASSO_AUDIT_DIR="$1/audit" LASSO_CONFIG_DIR="$1/config"
  hyperfine -N --warmup 3 --runs 30 \
    -n "lasso run, offline" "$2 run --profile offline -- /bin/true" \
    -n "lasso run, allowlist network" "$2 run --profile-file $1/allow.toml -- /bin/true"
' sh "$tmp" "$LASSO"
