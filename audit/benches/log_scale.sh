#!/usr/bin/env bash
# The audit log at scale, with the release binaries, side by side in one run:
#   - durable batched appends (fill_log: batches of 1,000, one fsync and one
#     signed checkpoint each) growing a log to 1,000,000 entries;
#   - a cached `runtime exec --audit` of a trivial module against an empty log
#     and against the 1,000,000-entry log (hyperfine, medians);
#   - `guardian audit prove` and `consistency` at 1,000,000 entries (whole
#     process: the proof itself is O(log n) reads of the Merkle state);
#   - `guardian audit verify` of the 1,000,000 entries (every entry, streamed);
#   - `guardian audit tiles` of them: a first export, and one after 1,000 more.
#
#   - where a cached run's time goes, and `wasmtime run` of the same module
#     with its cache on, when a wasmtime CLI is found ($WASMTIME or PATH).
#
# Run: bash audit/benches/log_scale.sh [ENTRIES]   (needs hyperfine: apt-get install hyperfine)
set -euo pipefail
cd "$(dirname "$0")/../.."
entries=${1:-1000000}
cargo build --release --locked --quiet -p runtime -p guardian -p signer -p audit --bins --example fill_log
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target/release"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export NIGHTCORE_KEY_PASSWORD=bench NIGHTCORE_LOG=error

# A module that only returns from _start, signed.
printf '\0asm\1\0\0\0\1\4\1\x60\0\0\3\2\1\0\7\x0a\1\6_start\0\0\x0a\4\1\2\0\x0b' >"$work/m.wasm"
"$bin/signer" keygen --name k --out "$work/keys" >/dev/null
mkdir -p "$work/trust"
cp "$work/keys/k.pub" "$work/trust/"
echo 'threshold = 1' >"$work/trust/trust.toml"
"$bin/signer" bundle --wasm "$work/m.wasm" --name bench --version 1 --out "$work/bundle" >/dev/null
"$bin/signer" sign --key "$work/keys/k.key" "$work/bundle" >/dev/null

node() { # node NAME: a node config whose audit log is NAME/audit.log
    mkdir -p "$work/$1/state" "$work/$1/cache"
    chmod 700 "$work/$1/cache"
    cat >"$work/$1/nightcore.toml" <<TOML
trust_dir = "$work/trust"
state_dir = "$work/$1/state"
cache_dir = "$work/$1/cache"
audit_log = "$work/$1/audit.log"
host_key = "$work/$1/state/host.key"
origin = "bench/$1"
TOML
}
node empty
node big

echo "== durable batched appends to $entries entries"
"$bin/examples/fill_log" "$work/big/audit.log" "$work/big/state/host.key" bench/big "$entries" 1000
ls -l "$work/big/" | grep audit

exec_cmd() { echo "$bin/runtime exec --config $work/$1/nightcore.toml --json $work/bundle"; }
# Warm the compile caches (and give the empty log its first entries).
for n in empty big; do $(exec_cmd $n) >/dev/null; done
echo "== cached runtime exec --audit: empty log vs $entries entries"
hyperfine -N --warmup 20 --runs 300 --export-json "$work/exec.json" \
    -n empty "$(exec_cmd empty)" -n "$entries" "$(exec_cmd big)"
python3 - "$work/exec.json" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
names = list(r)
print(f"medians: {names[0]} {r[names[0]]*1e3:.2f} ms, {names[1]} {r[names[1]]*1e3:.2f} ms, ratio {r[names[1]]/r[names[0]]:.3f}x")
PY

# Where a cached run's time goes, by difference, side by side: process start
# (`runtime --version`), + read and verify (`signer verify`), + cache load,
# instantiate and run (`runtime exec` without a log), + the two appends
# (run.started, run.finished; the empty-log run above), and a cold compile.
noaudit=(--trust "$work/trust" --state "$work/empty/state"
    --cache-dir "$work/empty/cache" --cache-key "$work/empty/state/cache.key" --json "$work/bundle")
wasmtime=${WASMTIME:-$(command -v wasmtime || true)}
wasmtime_cmds=()
if [ -n "$wasmtime" ]; then
    "$wasmtime" run -C cache=y "$work/m.wasm"
    wasmtime_cmds=(-n "wasmtime run (cache on)" "$wasmtime run -C cache=y $work/m.wasm")
fi
echo "== breakdown of a cached run"
hyperfine -N --warmup 20 --runs 300 --export-json "$work/breakdown.json" \
    -n "runtime --version" "$bin/runtime --version" \
    -n "signer verify" "$bin/signer verify --trust $work/trust $work/bundle" \
    -n "exec, no log" "$bin/runtime exec ${noaudit[*]}" \
    -n "exec --audit" "$(exec_cmd empty)" \
    "${wasmtime_cmds[@]}"
python3 - "$work/breakdown.json" <<'PY'
import json, sys
r = {x["command"]: x["median"] * 1e3 for x in json.load(open(sys.argv[1]))["results"]}
print("medians (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in r.items()))
print(f"process start {r['runtime --version']:.2f}; read + verify {r['signer verify'] - r['runtime --version']:.2f}; "
      f"cache load + instantiate + run {r['exec, no log'] - r['signer verify']:.2f}; two appends {r['exec --audit'] - r['exec, no log']:.2f}")
w = r.get("wasmtime run (cache on)")
if w:
    print(f"exec --audit / wasmtime run = {r['exec --audit'] / w:.2f}x; exec without a log / wasmtime run = {r['exec, no log'] / w:.2f}x")
PY

size=$(head -2 "$work/big/audit.log.checkpoint" | tail -1)
echo "== proofs at $size entries (whole guardian process)"
hyperfine -N --warmup 5 --runs 100 \
    -n prove "$bin/guardian audit prove --audit $work/big/audit.log --json $((size / 3))" \
    -n consistency "$bin/guardian audit consistency --audit $work/big/audit.log --json $((size / 2))" \
    -n "guardian --version" "$bin/guardian --version"

echo "== full verification of $size entries"
hyperfine -N --warmup 1 --runs 5 \
    "$bin/guardian audit verify --log-key $work/big/state/host.key.pub --json $work/big/audit.log"

# C2SP tlog-tiles of the same log: a first export (every tile and entry
# bundle), then exports after 1,000 more entries (only the new tiles, the
# right edge and the checkpoint), each in a fresh copy of the first export.
echo "== tiles of $size entries"
hyperfine -N --warmup 0 --runs 3 --prepare "rm -rf $work/tiles" --export-json "$work/tiles-first.json" \
    -n "first export" "$bin/guardian audit tiles --audit $work/big/audit.log $work/tiles"
"$bin/guardian" audit tiles --audit "$work/big/audit.log" "$work/tiles.base"
"$bin/examples/fill_log" "$work/big/audit.log" "$work/big/state/host.key" bench/big 1000 1000 >/dev/null
# hyperfine -N runs --prepare without a shell too: one script, which also
# flushes the copy so that the export's own fsyncs do not pay for it.
printf 'rm -rf %s/tiles && cp -a %s/tiles.base %s/tiles && sync\n' "$work" "$work" "$work" >"$work/reset-tiles.sh"
hyperfine -N --warmup 2 --runs 30 --prepare "bash $work/reset-tiles.sh" --prepare true --export-json "$work/tiles-next.json" \
    -n "export after 1,000 more entries" "$bin/guardian audit tiles --audit $work/big/audit.log $work/tiles" \
    -n "guardian --version" "$bin/guardian --version"
python3 - "$work/tiles-first.json" "$work/tiles-next.json" <<'PY'
import json, sys
for path in sys.argv[1:]:
    for x in json.load(open(path))["results"]:
        print(f"median {x['command']}: {x['median'] * 1e3:.1f} ms")
PY
du -sh "$work/tiles" "$work/big/audit.log"
