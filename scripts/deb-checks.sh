#!/usr/bin/env bash
# Builds the amd64 .deb with cargo-deb, prints `dpkg-deb --info` and `--contents`, and
# installs it into a scratch root (dpkg --root, scripts without chroot so they see
# DPKG_ROOT), then checks what a lab relies on:
#   - the unit, the sysusers file, the udev rules and the config landed; the config
#     passes `farmhand check-config` (with the packaged binary);
#   - the postinst made the `farmhand` user, in dialout, and /var/lib/farmhand;
#   - an upgrade (to the same build as a newer version) keeps the data and the
#     lab's edited config; `remove` keeps both; only `purge` deletes the data.
#
#   scripts/deb-checks.sh                 # CI: the ci-release profile
#   DEB_PROFILE=release scripts/deb-checks.sh
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${DEB_PROFILE:-ci-release}
command -v cargo-deb >/dev/null || {
    echo "cargo-deb is missing: scripts/install-test-deps.sh installs it (cargo install cargo-deb --locked)" >&2
    exit 1
}

echo "== cargo deb -p farmhand --profile $profile"
start=$(date +%s)
deb=$(cargo deb -p farmhand --locked --profile "$profile" | tail -n 1)
echo "built $deb in $(( $(date +%s) - start )) s"
[ -f "$deb" ] || { echo "cargo deb did not report a package file (got: $deb)" >&2; exit 1; }
root=$(mktemp -d)
packages=$(mktemp -d)
trap 'rm -rf "$root" "$packages"' EXIT
cp "$deb" "$packages/" && deb="$packages/$(basename "$deb")"
# The same binary as a newer version, for a real upgrade (old postrm, new postinst).
version=$(dpkg-deb --field "$deb" Version)
newer=$(cargo deb -p farmhand --locked --profile "$profile" --no-build --deb-version "${version}+next" \
    --output "$packages/farmhand_next.deb" | tail -n 1)
[ -f "$newer" ] || { echo "cargo deb --deb-version did not make the newer package (got: $newer)" >&2; exit 1; }

echo "== dpkg-deb --info $deb"
dpkg-deb --info "$deb"
echo "== dpkg-deb --contents $deb"
dpkg-deb --contents "$deb"

mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/etc"
touch "$root/var/lib/dpkg/status" "$root/etc/passwd" "$root/etc/group" "$root/etc/shadow" "$root/etc/gshadow"
# The scratch root has no libc package: dependencies are the host's business here.
dpkg_root() { dpkg --root="$root" --force-script-chrootless --force-depends --force-not-root "$@"; }
fail() { echo "deb check failed: $*" >&2; exit 1; }

echo "== dpkg --root=SCRATCH --install (first install)"
dpkg_root --install "$deb"
for f in usr/bin/farmhand lib/systemd/system/farmhand.service usr/lib/sysusers.d/farmhand.conf \
         etc/farmhand/farmhand.toml lib/udev/rules.d/99-farmhand-printers.rules \
         etc/farmhand/profiles/mk3s-0.20mm-quality-pla.ini; do
    [ -e "$root/$f" ] || fail "/$f is missing after the install"
done
cmp -s "$root/lib/systemd/system/farmhand.service" systemd/farmhand.service \
    || fail "the installed unit differs from systemd/farmhand.service"
dpkg-query --admindir="$root/var/lib/dpkg" --showformat='${Conffiles}\n' --show farmhand \
    | grep -q ' /etc/farmhand/farmhand.toml ' || fail "/etc/farmhand/farmhand.toml is not a conffile"
echo "-- check-config on the installed config, with the installed binary"
"$root/usr/bin/farmhand" check-config "$root/etc/farmhand/farmhand.toml" || fail "the installed config does not pass check-config"
grep -q '^farmhand:' "$root/etc/passwd" || fail "the postinst did not create the farmhand user"
grep -Eq '^dialout:[^:]*:[0-9]+:(.*,)?farmhand(,|$)' "$root/etc/group" || fail "farmhand is not in dialout"
uid=$(awk -F: '$1 == "farmhand" { print $3 }' "$root/etc/passwd")
[ "$(stat -c %u "$root/var/lib/farmhand")" = "$uid" ] || fail "/var/lib/farmhand is not owned by farmhand"
echo "user: $(grep '^farmhand:' "$root/etc/passwd")"
echo "groups: $(grep -E '^(farmhand|dialout):' "$root/etc/group" | tr '\n' ' ')"

echo "== upgrade to ${version}+next keeps data and config edits"
echo "a job store" >"$root/var/lib/farmhand/farmhand.redb"
sed -i 's/^max_upload_mb = 200/max_upload_mb = 150/' "$root/etc/farmhand/farmhand.toml"
dpkg_root --install "$newer"
[ "$(dpkg-query --admindir="$root/var/lib/dpkg" --showformat='${Version}' --show farmhand)" = "${version}+next" ] \
    || fail "the upgrade did not install ${version}+next"
[ "$(cat "$root/var/lib/farmhand/farmhand.redb")" = "a job store" ] || fail "the upgrade lost /var/lib/farmhand"
grep -q '^max_upload_mb = 150' "$root/etc/farmhand/farmhand.toml" || fail "the upgrade overwrote the edited config"

echo "== remove keeps data and config; purge deletes them"
dpkg_root --remove farmhand
[ ! -e "$root/usr/bin/farmhand" ] || fail "remove left the binary"
[ -f "$root/var/lib/farmhand/farmhand.redb" ] || fail "remove deleted /var/lib/farmhand"
[ -f "$root/etc/farmhand/farmhand.toml" ] || fail "remove deleted the config"
dpkg_root --purge farmhand
[ ! -e "$root/var/lib/farmhand" ] || fail "purge left /var/lib/farmhand"
[ ! -e "$root/etc/farmhand/farmhand.toml" ] || fail "purge left the config"
echo "deb checks passed"
