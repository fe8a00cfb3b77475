#!/usr/bin/env bash
# Checks the systemd unit as systemd itself reads it:
#   - `systemd-analyze verify` on the unit inside a scratch root holding the real
#     farmhand binary, the sysusers.d file and systemd's own units (verify resolves
#     ExecStart= and every dependency there);
#   - `systemd-analyze security --offline=true`, which must rate 2.5 or better ("OK").
# Prints both outputs. Usage: scripts/service-checks.sh [FARMHAND_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."

max_exposure=2.5
unit=systemd/farmhand.service
binary=${1:-target/debug/farmhand}
command -v systemd-analyze >/dev/null || {
    echo "systemd-analyze is missing: scripts/install-test-deps.sh installs it (apt-get install systemd)" >&2
    exit 1
}
[ -x "$binary" ] || { echo "no farmhand binary at $binary: build it first (cargo build -p farmhand)" >&2; exit 1; }

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/bin" "$root/lib/systemd/system" "$root/usr/lib/sysusers.d" "$root/etc/farmhand"
cp -a /lib/systemd/system/. "$root/lib/systemd/system/"
install -m 0755 "$binary" "$root/usr/bin/farmhand"
install -m 0644 "$unit" "$root/lib/systemd/system/farmhand.service"
install -m 0644 systemd/farmhand.sysusers "$root/usr/lib/sysusers.d/farmhand.conf"
install -m 0644 config/farmhand.example.toml "$root/etc/farmhand/farmhand.toml"

echo "== systemd-analyze verify $unit"
if ! systemd-analyze verify --root="$root" farmhand.service; then
    echo "systemd-analyze verify found problems in $unit (above)" >&2
    exit 1
fi
echo "verify: no problems"

echo "== systemd-analyze security --offline=true $unit"
report=$(systemd-analyze security --offline=true --no-pager "$unit")
echo "$report"
exposure=$(sed -n 's/.*Overall exposure level for farmhand.service: \([0-9.]*\).*/\1/p' <<<"$report")
[ -n "$exposure" ] || { echo "could not read the exposure level from systemd-analyze security" >&2; exit 1; }
if awk -v e="$exposure" -v m="$max_exposure" 'BEGIN { exit !(e > m) }'; then
    echo "$unit rates $exposure: above the allowed $max_exposure; tighten its hardening" >&2
    exit 1
fi
echo "security: exposure $exposure (at most $max_exposure allowed)"

echo "== systemd-sysusers --dry-run (the farmhand user)"
if command -v systemd-sysusers >/dev/null; then
    systemd-sysusers --root="$root" --dry-run "$root/usr/lib/sysusers.d/farmhand.conf" 2>&1 || {
        echo "systemd-sysusers rejects systemd/farmhand.sysusers" >&2; exit 1; }
fi
