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
apt_install python3 python3          # runs the aiosmtpd SMTP test server
apt_install vsftpd vsftpd            # a real implicit-FTPS server standing in for a Bambu printer's
apt_install mosquitto_passwd mosquitto  # the Bambu tests' broker checks user bblp + access code

# vsftpd authenticates real accounts through PAM, and Bambu printers want user `bblp` with the
# access code as password. drivers/tests/common/bambu.rs logs in as `bblp` / `farmhand-test-code`
# through its own PAM service (pam_unix only: no shell check, the account cannot log in).
if [ "$(id -u)" = 0 ]; then
    id bblp >/dev/null 2>&1 || useradd --system --no-create-home --home-dir / \
        --shell /usr/sbin/nologin bblp
    # vsftpd changes into the home directory before local_root.
    [ "$(getent passwd bblp | cut -d: -f6)" = / ] || usermod -d / bblp
    echo 'bblp:farmhand-test-code' | chpasswd
    if [ ! -f /etc/pam.d/farmhand-test-ftps ]; then
        printf 'auth\trequired\tpam_unix.so\naccount\trequired\tpam_unix.so\n' > /etc/pam.d/farmhand-test-ftps
    fi
else
    id bblp >/dev/null 2>&1 && [ -f /etc/pam.d/farmhand-test-ftps ] || {
        echo "the Bambu FTPS tests need user bblp and /etc/pam.d/farmhand-test-ftps: run this script as root once" >&2; exit 1; }
fi

# A real SMTP server for the mail tests: PyPI's aiosmtpd (`python3 -m aiosmtpd`).
if ! python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
    echo "== installing aiosmtpd (PyPI) for the mail tests"
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt_update
        apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
    fi
    # Debian's own python3 refuses user packages without --break-system-packages.
    python3 -m pip install -q aiosmtpd 2>/dev/null \
        || python3 -m pip install -q --break-system-packages aiosmtpd
    python3 -c 'import aiosmtpd' >/dev/null 2>&1 || {
        echo "could not install the PyPI package aiosmtpd (python3 -m pip install aiosmtpd)" >&2; exit 1; }
fi

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

# A real S3 server for the cloud-sync tests (checks SigV4, handles multipart). 0.15+
# needs a newer rustc than the project's; about 3 minutes to build.
if ! command -v s3s-fs >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" ]; then
    echo "== installing s3s-fs 0.14.1 (the S3 server for tests/sync.rs)"
    cargo install s3s-fs --version 0.14.1 --features binary --locked \
        || { echo "could not install s3s-fs (cargo install s3s-fs --version 0.14.1 --features binary)" >&2; exit 1; }
fi

# The service checks (scripts/service-checks.sh): systemd-analyze comes with systemd.
apt_install systemd-analyze systemd
# The Raspberry Pi cross builds: Debian's cross linkers, qemu-user, the Rust targets.
scripts/install-pi-deps.sh
# The .deb (scripts/deb-checks.sh).
if ! command -v cargo-deb >/dev/null 2>&1; then
    echo "== cargo install cargo-deb"
    cargo install cargo-deb --locked || { echo "could not install cargo-deb (cargo install cargo-deb --locked)" >&2; exit 1; }
fi
