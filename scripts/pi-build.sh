#!/usr/bin/env bash
# Builds Farmhand for the Raspberry Pi without Docker and smoke-tests each binary
# under qemu-user: start the daemon (`farmhand demo`), submit a model, list the jobs,
# all with the cross-built binary itself.
#
#   scripts/pi-build.sh              # CI: the `ci-release` profile (see Cargo.toml), both targets
#   PI_PROFILE=release scripts/pi-build.sh   # what ships: fat LTO, slower to build
#   PI_TARGETS=aarch64-unknown-linux-gnu scripts/pi-build.sh
#
# Prints each build's time and the stripped binary size (aarch64 must stay under 25 MB).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${PI_PROFILE:-ci-release}
read -r -a targets <<<"${PI_TARGETS:-aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf}"
max_aarch64_mb=25
corpus="${FARMHAND_CORPUS:-../shared/corpus}"
model="$corpus/models/20mm-xyz-cube.stl"
[ -f "$model" ] || { echo "missing $model (the shared corpus)" >&2; exit 1; }

scripts/install-pi-deps.sh

declare -A qemu=(
    [aarch64-unknown-linux-gnu]="qemu-aarch64-static -L /usr/aarch64-linux-gnu"
    [armv7-unknown-linux-gnueabihf]="qemu-arm-static -L /usr/arm-linux-gnueabihf"
)
declare -A readelf=(
    [aarch64-unknown-linux-gnu]=aarch64-linux-gnu-readelf
    [armv7-unknown-linux-gnueabihf]=arm-linux-gnueabihf-readelf
)

smoke() { # smoke TARGET BINARY
    local target=$1 bin=$2 dir url="" pid
    dir=$(mktemp -d)
    # shellcheck disable=SC2086 # the qemu command is a word list
    ${qemu[$target]} "$bin" demo --listen 127.0.0.1:0 --data-dir "$dir/data" >"$dir/out" 2>"$dir/err" &
    pid=$!
    for _ in $(seq 1 240); do
        url=$(sed -n 's/^Farmhand listening on //p' "$dir/out")
        [ -n "$url" ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.5
    done
    if [ -z "$url" ]; then
        echo "$target: the daemon did not start under qemu; its output:" >&2
        cat "$dir/out" "$dir/err" >&2
        kill "$pid" 2>/dev/null || true
        rm -rf "$dir"
        return 1
    fi
    local ok=0
    # shellcheck disable=SC2086
    if ${qemu[$target]} "$bin" submit "$model" --name "Ada Lovelace" --email ada@example.edu \
            --server "$url" >"$dir/submit" 2>&1 \
        && ${qemu[$target]} "$bin" jobs --server "$url" >"$dir/jobs" 2>&1 \
        && grep -q "Submitted: job" "$dir/submit" && grep -q "20mm-xyz-cube" "$dir/jobs"; then
        ok=1
    fi
    echo "-- $target under qemu: farmhand submit"
    cat "$dir/submit"
    echo "-- $target under qemu: farmhand jobs"
    cat "$dir/jobs"
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [ "$ok" != 1 ]; then
        echo "$target: smoke test failed (submit, then the job in the list); daemon log:" >&2
        cat "$dir/err" >&2
        rm -rf "$dir"
        return 1
    fi
    rm -rf "$dir"
    echo "$target: smoke test passed (started, submitted, listed)"
}

for target in "${targets[@]}"; do
    echo "== cargo build -p farmhand --profile $profile --target $target"
    start=$(date +%s)
    cargo build -p farmhand --locked --profile "$profile" --target "$target"
    seconds=$(( $(date +%s) - start ))
    bin=${CARGO_TARGET_DIR:-target}/$target/$profile/farmhand
    bytes=$(stat -c %s "$bin")
    mb=$(awk -v b="$bytes" 'BEGIN { printf "%.1f", b / 1048576 }')
    machine=$(${readelf[$target]} -h "$bin" | sed -n 's/^ *Machine: *//p')
    stripped=$(${readelf[$target]} -S "$bin" | grep -q '\.symtab' && echo "not stripped" || echo "stripped")
    echo "$target: built in ${seconds} s; $bin is $mb MB ($bytes bytes, $stripped, $machine)"
    if [ "$target" = aarch64-unknown-linux-gnu ] && \
        awk -v b="$bytes" -v m="$max_aarch64_mb" 'BEGIN { exit !(b > m * 1048576) }'; then
        echo "the aarch64 binary is $mb MB: over the $max_aarch64_mb MB target" >&2
        exit 1
    fi
    smoke "$target" "$bin"
done
