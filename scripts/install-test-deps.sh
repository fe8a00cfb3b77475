#!/usr/bin/env bash
# Installs what the test suite needs beyond Debian + Rust. Safe to run again: each step
# checks first. Fails loudly, naming the part, when something cannot be installed.
set -euo pipefail
cd "$(dirname "$0")/.."

corpus="${FARMHAND_CORPUS:-../shared/corpus}"
if [ ! -f "$corpus/README.md" ]; then
    echo "missing test corpus: expected $corpus (../shared beside the repository)" >&2
    exit 1
fi

apt_install() { # apt_install COMMAND PACKAGE...
    local cmd=$1; shift
    command -v "$cmd" >/dev/null 2>&1 && return 0
    echo "== installing $* (for $cmd)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq || apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        || apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    command -v "$cmd" >/dev/null 2>&1 || { echo "could not install $* ($cmd still missing)" >&2; exit 1; }
}

apt_install openssl openssl
