#!/usr/bin/env bash
# Whole-process timing of `lasso why` (target: under 5 ms) with hyperfine on the release binary.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release
L="$PWD/target/release/lasso"
hyperfine -N --warmup 20 --runs 300 -i \
  "$L why 'cargo test --all'" \
  "$L why 'git push origin main --force'" \
  "$L why --profile strict 'git log --oneline | grep fix | head -n 5'" \
  "$L why --json 'env -i timeout 5 bash -c \"nice rm -rf x\"'"
