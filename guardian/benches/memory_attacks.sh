#!/usr/bin/env bash
# Peak memory of `guardian scan --repair` under the memory attacks of a
# deploy- or audit-directory writer, with the release binaries:
#   baseline     two signed tenants, nothing wrong;
#   junk         eight junk tenants with 64 MiB modules each (512 MiB if held at once);
#   dev-zero     the checkpoint replaced by a symlink to /dev/zero;
#   append       600 MB of junk appended to audit.log.
# Each attack is undone by the scan (quarantine, restore from the mirror),
# and the next starts from the repaired node. Prints "attack max-RSS-KiB
# exit-code seconds" per line. Our own systemd unit and DaemonSet cap the
# guardian at 512 MiB; the goal is under 200 MiB in every case.
#
# Run: bash guardian/benches/memory_attacks.sh   (needs GNU time: apt-get install time)
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked --quiet -p guardian -p signer --bins
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
guardian="$target/release/guardian"
signer="$target/release/signer"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export NIGHTCORE_KEY_PASSWORD=bench NIGHTCORE_LOG=error

"$signer" keygen --name k --out "$work/keys" >/dev/null
mkdir -p "$work/trust" "$work/deploy"
cp "$work/keys/k.pub" "$work/trust/"
echo 'threshold = 1' >"$work/trust/trust.toml"
printf '\0asm\1\0\0\0' >"$work/m.wasm"
for t in alpha beta; do
    "$signer" bundle --wasm "$work/m.wasm" --name "$t" --version 1 --out "$work/deploy/$t" >/dev/null
    "$signer" sign --key "$work/keys/k.key" "$work/deploy/$t" >/dev/null
done
node_args=(--trust "$work/trust" --state "$work/state" --audit "$work/audit/audit.log" --host-key "$work/state/host.key")
scan() {
    local name=$1 start end
    start=$(date +%s%N)
    set +e
    /usr/bin/time -f "%M" -o "$work/rss" "$guardian" scan --repair --json "$work/deploy" "${node_args[@]}" >/dev/null 2>"$work/stderr"
    local code=$?
    set -e
    end=$(date +%s%N)
    printf '%-10s max_rss_kib=%-8s exit=%s ms=%s\n' "$name" "$(tail -1 "$work/rss")" "$code" $(((end - start) / 1000000))
}
scan baseline >/dev/null
scan baseline

for i in $(seq 1 8); do
    mkdir -p "$work/deploy/junk-$i"
    head -c $((64 * 1024 * 1024)) /dev/urandom >"$work/deploy/junk-$i/module.wasm"
done
scan junk

checkpoint="$work/audit/audit.log.checkpoint"
mv "$checkpoint" "$work/checkpoint.saved"
ln -s /dev/zero "$checkpoint"
scan dev-zero

head -c $((600 * 1000 * 1000)) /dev/zero | tr '\0' 'x' >>"$work/audit/audit.log"
scan append

# The daemon under all of them at once: junk tenants waiting at start-up, then
# a FIFO as a module, the checkpoint linked to /dev/zero and 600 MB appended
# while it runs, and a legitimate tenant drifting. Reports whether the drift
# was repaired, the peak RSS, and how long a SIGTERM took to stop it.
for i in $(seq 1 8); do
    mkdir -p "$work/deploy/junk-$i"
    head -c $((64 * 1024 * 1024)) /dev/urandom >"$work/deploy/junk-$i/module.wasm"
done
rm -f "$work/ready"
NIGHTCORE_LOG=info "$guardian" watch "$work/deploy" "${node_args[@]}" --settle-ms 100 --ready-file "$work/ready" >/dev/null 2>"$work/watch.log" &
pid=$!
until [ -e "$work/ready" ]; do sleep 0.05; done
mkdir -p "$work/deploy/fifo" && mkfifo "$work/deploy/fifo/module.wasm"
rm -f "$checkpoint" && ln -s /dev/zero "$checkpoint"
head -c $((600 * 1000 * 1000)) /dev/zero | tr '\0' 'x' >>"$work/audit/audit.log"
chmod 0666 "$work/deploy/alpha/module.wasm"
for _ in $(seq 1 200); do
    grep -q 'rollback completed tenant="alpha"' "$work/watch.log" && break
    sleep 0.05
done
repaired=$(grep -c 'rollback completed tenant="alpha"' "$work/watch.log" || true)
peak=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
start=$(date +%s%N)
kill -TERM "$pid"
wait "$pid" && code=0 || code=$?
end=$(date +%s%N)
printf '%-10s max_rss_kib=%-8s exit=%s alpha_repaired=%s sigterm_ms=%s\n' daemon "$peak" "$code" "$repaired" $(((end - start) / 1000000))
