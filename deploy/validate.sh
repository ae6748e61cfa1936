#!/usr/bin/env bash
# Validates the deployment files against the code they drive, offline:
#   1. deploy/k8s/*.yaml against the Kubernetes OpenAPI schemas (strict: no
#      unknown fields), with kubernetes-validate from PyPI, which ships the
#      schemas inside the package, so nothing is fetched while validating;
#   2. every container command line in them, and the systemd units'
#      ExecStart, against the real binaries' argument parsers (`--help`
#      appended: clap rejects an unknown flag before printing help);
#   3. deploy/nightcore.toml and the ConfigMap's nightcore.toml against the
#      real config loader (`guardian status --config … --state <empty dir>`);
#   4. the users are separated (ops/fleet.md, "Who may write what"): the
#      guardian, the deployer and the runtime, each with the directories the
#      config names for it;
#   5. the systemd units with `systemd-analyze verify`, and their sandboxes
#      with `systemd-analyze security --offline` (overall exposure at most
#      1.0), where systemd-analyze exists.
# Exits non-zero on the first failure. Run from anywhere: bash deploy/validate.sh
set -euo pipefail
cd "$(dirname "$0")/.."

KUBERNETES_VALIDATE_VERSION=1.37.0
KUBERNETES_VERSION=1.33.0
# systemd-analyze security's --threshold is on a 0-100 scale: 10 is an
# overall exposure of 1.0 ("SAFE"); the unit scores 0.2 with systemd 252.
EXPOSURE_MAX=10

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "== binaries"
# The same selection as `cargo xtask test` builds, so features unify the same
# way and nothing is compiled twice.
cargo build --locked --quiet --workspace --bins
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
guardian="$target_dir/debug/guardian"
runtime="$target_dir/debug/runtime"

echo "== kubernetes-validate $KUBERNETES_VALIDATE_VERSION (Kubernetes $KUBERNETES_VERSION schemas)"
venv="$target_dir/validate-venv"
if [ ! -x "$venv/bin/kubernetes-validate" ] || ! "$venv/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$KUBERNETES_VALIDATE_VERSION"; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" 2>/dev/null; then
        # Debian's python3 keeps venv in a separate package.
        rm -rf "$venv"
        apt-get install -y python3-venv
        python3 -m venv "$venv"
    fi
    "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi
"$venv/bin/kubernetes-validate" --strict -k "$KUBERNETES_VERSION" deploy/k8s/guardian-daemonset.yaml deploy/k8s/runtime-job.yaml

echo "== container command lines against the binaries"
# Prints one line per container: file, container name, program, arguments, separated by 0x1f.
"$venv/bin/python" - deploy/k8s/guardian-daemonset.yaml deploy/k8s/runtime-job.yaml >"$scratch/commands" <<'PY'
import sys, yaml
for path in sys.argv[1:]:
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if not doc or doc.get("kind") not in ("DaemonSet", "Job"):
                continue
            spec = doc["spec"]["template"]["spec"]
            for c in spec.get("initContainers", []) + spec.get("containers", []):
                argv = [path, c["name"]] + c.get("command", []) + c.get("args", [])
                if any("\x1f" in a or "\n" in a for a in argv):
                    sys.exit(f"{path}: {c['name']}: an argument contains a newline or 0x1f")
                print("\x1f".join(argv))
PY
checked=0
while IFS= read -r line; do
    IFS=$'\x1f' read -r -a argv <<<"$line"
    file=${argv[0]} name=${argv[1]} program=${argv[2]}
    args=("${argv[@]:3}")
    case "$program" in
        /usr/local/bin/guardian) binary=$guardian ;;
        /usr/local/bin/runtime) binary=$runtime ;;
        /bin/sh)
            # The init container's script: check it parses as POSIX sh.
            sh -n -c "${args[1]}" || { echo "$file: $name: the shell script does not parse" >&2; exit 1; }
            checked=$((checked + 1))
            continue ;;
        *) echo "$file: $name: unexpected program $program" >&2; exit 1 ;;
    esac
    # --help goes before `--`, after which everything belongs to the guest.
    before=() after=()
    seen_separator=no
    for a in "${args[@]}"; do
        if [ "$seen_separator" = no ] && [ "$a" = "--" ]; then seen_separator=yes; fi
        if [ "$seen_separator" = yes ]; then after+=("$a"); else before+=("$a"); fi
    done
    if ! "$binary" "${before[@]}" --help "${after[@]}" >/dev/null 2>"$scratch/err"; then
        echo "$file: $name: $program ${args[*]} is rejected by the binary:" >&2
        cat "$scratch/err" >&2
        exit 1
    fi
    checked=$((checked + 1))
done <"$scratch/commands"
[ "$checked" -ge 4 ] || { echo "only $checked container command lines found; expected at least 4 (two per file)" >&2; exit 1; }
echo "$checked container command lines accepted"

echo "== nightcore.toml files against the config loader"
mkdir -p "$scratch/state" "$scratch/configmap"
"$guardian" status --config deploy/nightcore.toml --state "$scratch/state" >/dev/null
"$venv/bin/python" - deploy/k8s/guardian-daemonset.yaml "$scratch/configmap/nightcore.toml" <<'PY'
import sys, yaml
with open(sys.argv[1]) as f:
    for doc in yaml.safe_load_all(f):
        if doc and doc.get("kind") == "ConfigMap" and "nightcore.toml" in doc.get("data", {}):
            with open(sys.argv[2], "w") as out:
                out.write(doc["data"]["nightcore.toml"].replace("@NODE_NAME@", "validate-node"))
            break
    else:
        sys.exit("no ConfigMap with nightcore.toml in " + sys.argv[1])
PY
"$guardian" status --config "$scratch/configmap/nightcore.toml" --state "$scratch/state" >/dev/null
echo "deploy/nightcore.toml and the nightcore-config ConfigMap load"

unit=deploy/systemd/nightcore-guardian.service
run_unit=deploy/systemd/nightcore-run@.service
unit_value() { sed -n "s/^$2=//p" "$1"; }
for u in "$unit" "$run_unit"; do
    echo "== $u"
    exec_start=$(unit_value "$u" ExecStart)
    [ -n "$exec_start" ] || { echo "$u has no ExecStart" >&2; exit 1; }
    # The template's instance is a tenant name.
    read -r -a unit_argv <<<"${exec_start//%i/hello}"
    case "${unit_argv[0]}" in
        /usr/local/bin/guardian) binary=$guardian ;;
        /usr/local/bin/runtime) binary=$runtime ;;
        *) echo "$u: ExecStart runs ${unit_argv[0]}, not a Night Core binary" >&2; exit 1 ;;
    esac
    "$binary" "${unit_argv[@]:1}" --help >/dev/null
    echo "ExecStart arguments accepted by ${unit_argv[0]}"
done

echo "== separate users (ops/fleet.md, \"Who may write what\")"
# The guardian alone owns its state directory (0700 or 0711: others open
# state.json and host.pub by name) and the node's log; the deploy tree belongs
# to the deployer; the runtime is a third user that writes only the
# directories systemd makes for it, and the config points the runtime's log,
# log key and cache there and the guardian's state and log at the guardian's.
[ "$(unit_value "$unit" User)" = nightcore ] || { echo "$unit: the guardian must run as nightcore" >&2; exit 1; }
[ "$(unit_value "$run_unit" User)" = nightcore-run ] || { echo "$run_unit: the runtime must run as nightcore-run" >&2; exit 1; }
state_mode=$(unit_value "$unit" StateDirectoryMode)
case "$state_mode" in
    0700 | 0711) ;;
    *) echo "$unit: StateDirectoryMode=$state_mode lets others list or write the state directory" >&2; exit 1 ;;
esac
grep -q '^#   install -d -m 2775 -o nightcore-deploy -g nightcore /srv/nightcore/deploy$' "$unit" || {
    echo "$unit: the deploy tree must belong to nightcore-deploy (group nightcore), not to the guardian's user" >&2
    exit 1
}
grep -q '^ReadWritePaths=/srv/nightcore/deploy$' "$unit" || { echo "$unit: ReadWritePaths must be the deploy tree alone" >&2; exit 1; }
[ "$(grep -c '^ReadWritePaths=' "$unit")" = 1 ] || { echo "$unit: more than one ReadWritePaths" >&2; exit 1; }
if grep -q '^ReadWritePaths=' "$run_unit"; then
    echo "$run_unit: the runtime may write only its own State/Logs/CacheDirectory" >&2
    exit 1
fi
for key in StateDirectory LogsDirectory CacheDirectory; do
    [ "$(unit_value "$run_unit" "$key")" != "$(unit_value "$unit" "$key")" ] || {
        echo "$run_unit: $key is the guardian's" >&2
        exit 1
    }
done
for key in ProtectSystem PrivateUsers NoNewPrivileges; do
    [ -n "$(unit_value "$run_unit" "$key")" ] || { echo "$run_unit: $key is not set" >&2; exit 1; }
done
"$venv/bin/python" - deploy/nightcore.toml \
    "$(unit_value "$unit" StateDirectory)" "$(unit_value "$unit" LogsDirectory)" \
    "$(unit_value "$run_unit" StateDirectory)" "$(unit_value "$run_unit" LogsDirectory)" "$(unit_value "$run_unit" CacheDirectory)" <<'PY'
import sys, tomllib
config_path, g_state, g_logs, r_state, r_logs, r_cache = sys.argv[1:]
with open(config_path, "rb") as f:
    config = tomllib.load(f)
runtime = config.get("runtime") or sys.exit(f"{config_path}: no [runtime] table: the runtime would need the guardian's host key and log")
def under(what, path, directory):
    if not path.startswith(directory.rstrip("/") + "/"):
        sys.exit(f"{config_path}: {what} = {path!r} is not under {directory}")
under("state_dir", config["state_dir"] + "/", f"/var/lib/{g_state}")
under("host_key", config["host_key"], f"/var/lib/{g_state}")
under("audit_log", config["audit_log"], f"/var/log/{g_logs}")
under("[runtime] audit_log", runtime["audit_log"], f"/var/log/{r_logs}")
under("[runtime] log_key", runtime["log_key"], f"/var/lib/{r_state}")
under("cache_key", config["cache_key"], f"/var/lib/{r_state}")
under("cache_dir", config["cache_dir"], f"/var/cache/{r_cache}")
if runtime["origin"] == config["origin"]:
    sys.exit(f"{config_path}: [runtime] origin is the node's")
PY
echo "separate users: guardian nightcore (state $state_mode), deploy tree nightcore-deploy, runtime nightcore-run (its own state, log and cache)"
if command -v systemd-analyze >/dev/null 2>&1; then
    for u in "$unit" "$run_unit"; do
        name=$(basename "$u")
        # verify checks that ExecStart's program exists, so a copy names the binaries just built.
        sed -e "s|^ExecStart=/usr/local/bin/guardian|ExecStart=$guardian|" -e "s|^ExecStart=/usr/local/bin/runtime|ExecStart=$runtime|" "$u" >"$scratch/$name"
        # A template is verified and scored as an instance of it.
        instance=${name/@.service/@hello.service}
        [ "$instance" = "$name" ] || cp "$scratch/$name" "$scratch/$instance"
        systemd-analyze verify --man=no "$scratch/$instance"
        echo "systemd-analyze verify $instance: ok"
        systemd-analyze security --offline=true --threshold="$EXPOSURE_MAX" --no-pager "$scratch/$instance" >"$scratch/security" || {
            cat "$scratch/security" >&2
            echo "$u: overall exposure is above $EXPOSURE_MAX/100 (see the table above)" >&2
            exit 1
        }
        tail -n 1 "$scratch/security"
    done
else
    echo "systemd-analyze not installed: unit syntax not checked (apt-get install systemd)"
fi
echo "deploy/: all checks passed"
