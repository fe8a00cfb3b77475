#!/usr/bin/env bash
# Installs what the Raspberry Pi cross builds need, without Docker: Debian's cross
# gcc (linker and C compiler for the few C parts) for aarch64 and armhf, qemu-user to
# run the foreign binaries, and the Rust targets. Safe to run again: each step checks
# first; fails loudly naming the part it could not install.
set -euo pipefail

need_apt=()
command -v aarch64-linux-gnu-gcc >/dev/null || need_apt+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v arm-linux-gnueabihf-gcc >/dev/null || need_apt+=(gcc-arm-linux-gnueabihf libc6-dev-armhf-cross)
command -v qemu-aarch64-static >/dev/null && command -v qemu-arm-static >/dev/null || need_apt+=(qemu-user-static)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "== installing ${need_apt[*]} (cross builds)"
    export DEBIAN_FRONTEND=noninteractive
    # apt sometimes fails once on this kind of machine for transient reasons: retry once.
    apt-get update -qq || apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null \
        || apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
for cmd in aarch64-linux-gnu-gcc arm-linux-gnueabihf-gcc qemu-aarch64-static qemu-arm-static; do
    command -v "$cmd" >/dev/null || { echo "could not install $cmd (cross builds)" >&2; exit 1; }
done
for target in aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf; do
    if ! rustup target list --installed | grep -qx "$target"; then
        echo "== rustup target add $target"
        rustup target add "$target" || rustup target add "$target" || {
            echo "could not add the Rust target $target (rustup target add $target)" >&2; exit 1; }
    fi
done
