#!/usr/bin/env bash
# Runs every check and test Farmhand has, on a fresh Debian + Rust machine.
# Installs what the tests need first (idempotent), so nothing silently skips.
set -euo pipefail
cd "$(dirname "$0")/.."

# A full run needs about 6 GB under target/ (debug tests, three ci-release builds).
# Say so up front instead of dying half-way with "No space left on device".
need_gb=8
free_gb=$(df -Pk . | awk 'NR==2 {print int($4 / 1048576)}')
echo "== disk: ${free_gb} GB free here (a full run needs about ${need_gb} GB)"
if [ "$free_gb" -lt "$need_gb" ]; then
    echo "error: not enough disk space: ${free_gb} GB free, the build and tests need about ${need_gb} GB" >&2
    exit 1
fi
# Incremental caches only help rebuilds; on CI's fresh clone they are gigabytes of waste.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

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
echo "== disk used by target/: $(du -sh target | cut -f1)"
