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

apt_updated=
apt_update() {
    [ -n "$apt_updated" ] && return 0
    export DEBIAN_FRONTEND=noninteractive
    # apt sometimes fails once on this kind of machine for transient reasons: retry once.
    apt-get update -qq || apt-get update -qq
    apt_updated=1
}

apt_install() { # apt_install COMMAND PACKAGE...
    local cmd=$1; shift
    command -v "$cmd" >/dev/null 2>&1 && return 0
    echo "== installing $* (for $cmd)"
    apt_update
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null \
        || apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    command -v "$cmd" >/dev/null 2>&1 || { echo "could not install $* ($cmd still missing)" >&2; exit 1; }
}

apt_install openssl openssl          # the upload benchmark's peer
apt_install prlimit util-linux       # slicer subprocess memory limit
apt_install prusa-slicer prusa-slicer
apt_install CuraEngine cura-engine
apt_install mosquitto mosquitto      # a real MQTT broker for the MQTT printer tests
apt_install chromium chromium       # the browser tests: headless Chromium over WebDriver
apt_install chromedriver chromium-driver

# CuraEngine's printer definitions ship only in the `cura` GUI package: extract them
# without installing its 130-package GUI stack.
cura_resources=/opt/cura/resources
if [ ! -f "$cura_resources/definitions/creality_ender3.def.json" ] && \
   [ ! -f /usr/share/cura/resources/definitions/creality_ender3.def.json ]; then
    echo "== extracting Cura's printer definitions into $cura_resources"
    apt_update
    scratch=$(mktemp -d)
    (cd "$scratch" && { apt-get download cura >/dev/null || apt-get download cura >/dev/null; })
    dpkg-deb -x "$scratch"/cura_*.deb "$scratch/x"
    mkdir -p "$(dirname "$cura_resources")"
    rm -rf "$cura_resources"
    cp -r "$scratch/x/usr/share/cura/resources" "$cura_resources"
    rm -rf "$scratch"
    [ -f "$cura_resources/definitions/creality_ender3.def.json" ] || {
        echo "could not extract Cura's printer definitions from the cura package" >&2; exit 1; }
fi
