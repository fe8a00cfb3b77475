#!/usr/bin/env bash
# Runs every check and test Farmhand has, on a fresh Debian + Rust machine.
# Installs what the tests need first (idempotent), so nothing silently skips.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-test-deps.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test (whole workspace)"
cargo test --workspace --locked
echo "== systemd unit checks"
scripts/service-checks.sh target/debug/farmhand
echo "== the .deb"
scripts/deb-checks.sh
echo "== Raspberry Pi cross builds"
scripts/pi-build.sh
