#!/usr/bin/env bash
# Unprivileged run: the Kubernetes manifests run every node as a user of its own with no
# capabilities; this checks that device, edge and cloud work that way, on this machine's
# loopback, and that the same cluster still works as root:
#   - a system user (BRANCHY_TEST_USER, default branchy-test; made with `useradd --system`
#     when missing, its uid chosen by the system) and a folder under /tmp holding copies of
#     the executables, the model, the test set and topology/local.yaml (on ports of its
#     own), owned by root and only readable by others, and a fresh CA and node certificates
#     (scripts/gen-certs.sh) owned by the user alone: keys 0600, folder 0700, no CA key
#   - edge and cloud started by scripts/cluster.sh through
#     `setpriv --reuid --regid --clear-groups --inh-caps=-all --bounding-set=-all
#     --no-new-privs`: they listen, and /proc/PID/status of each node shows the user's uid and
#     gid, no supplementary group, every capability set empty (CapInh, CapPrm, CapEff, CapBnd,
#     CapAmb) and NoNewPrivs 1
#   - 1,000 test samples through the device, run the same way (its status read while the edge
#     is paused, so that the device is still running), with a complete report and samples
#     answered at every exit, so both links carried requests
#   - the device's --predictions equal `branchy eval --predictions` on the same samples with
#     the same thresholds and link codecs
#   - the cluster stops on SIGTERM
#   - the same cluster as root: starts, 1,000 samples, the same predictions as branchy eval,
#     stops on SIGTERM
# Needs root (to make the user and drop to it); installs util-linux (setpriv) and passwd
# (useradd) when missing. The user is kept for the next run; the folder is removed.
#
# Prints `ok - NAME` or `not ok - NAME: why` per check, then `N passed, M failed`; exits 1
# if any check failed. Details go to run/unprivileged-check/ (unprivileged-check.log,
# reports, predictions); the nodes' logs to run/unprivileged/ and run/unprivileged-root/.
# Environment: BRANCHY_BIN (folder of already built executables: skips the build),
# BRANCHY_TEST_USER, DEVICE_TIMEOUT (seconds per device run, default 300).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() { echo "usage: $(basename "$0")   (runs device, edge and cloud as an unprivileged user without capabilities, then as root)"; }
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; exit 2 ;;
esac

cd "$REPO_ROOT"
TEST_USER="${BRANCHY_TEST_USER:-branchy-test}"
DEVICE_TIMEOUT="${DEVICE_TIMEOUT:-300}"
LOCAL=topology/local.yaml
LIMIT=1000
# Ports of their own, so that a cluster of topology/local.yaml may run at the same time.
EDGE_LISTEN=127.0.0.1:7561
CLOUD_LISTEN=127.0.0.1:7562
EDGE_METRICS=127.0.0.1:8561
CLOUD_METRICS=127.0.0.1:8562
work=run/unprivileged-check
log="$work/unprivileged-check.log"
helper=(python3 scripts/lib/e2e.py)

ensure_packages openssl:openssl python3:python3 setpriv:util-linux useradd:passwd
ensure_built
bin="$BRANCHY_BIN"

rm -rf "$work"
mkdir -p "$work"
: > "$log"

stage=""          # the folder under /tmp with the user's copy of everything
user_topology=""  # its topology, for the unprivileged cluster (run/unprivileged/)
root_topology=""  # the same file under another name, for the root cluster (run/unprivileged-root/)
uid=""
gid=""
paused=""         # the edge's pid while it is stopped with SIGSTOP
device_pid=""

cleanup() {
    [ -z "$paused" ] || kill -CONT "$paused" 2>/dev/null || true
    [ -z "$device_pid" ] || stop_children "$log" "$device_pid"
    if [ -n "$stage" ]; then
        [ ! -f "$user_topology" ] || scripts/cluster.sh down "$user_topology" >>"$log" 2>&1 || true
        [ ! -f "$root_topology" ] || scripts/cluster.sh down "$root_topology" >>"$log" 2>&1 || true
        rm -rf "$stage"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

model="$(topology_path "$LOCAL" model)" || die "cannot read $LOCAL"

passed=0
failed=0

# --- Set-up ----------------------------------------------------------------------

# The user, and the folder it runs from: executables, model, test set and topology are
# root's (0755 folders, 0644 files); the certificates are the user's alone.
check_setup() {
    [ "$(id -u)" -eq 0 ] || { echo "needs root: it makes the user $TEST_USER and drops to it with setpriv"; return 1; }
    if ! id -u "$TEST_USER" >/dev/null 2>&1; then
        useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$TEST_USER" >&2 \
            || { echo "useradd could not make the user $TEST_USER"; return 1; }
    fi
    uid="$(id -u "$TEST_USER")"; gid="$(id -g "$TEST_USER")"
    [ "$uid" -ne 0 ] && [ "$gid" -ne 0 ] || { echo "$TEST_USER has uid $uid and gid $gid; it must not be root"; return 1; }

    stage="$(mktemp -d /tmp/branchy-unprivileged.XXXXXX)" || { echo "mktemp could not make a folder in /tmp"; return 1; }
    chmod 0755 "$stage"
    mkdir -p "$stage/bin" "$stage/as-user" "$stage/model" "$stage/data" "$stage/out"
    local exe
    for exe in branchy-device branchy-edge branchy-cloud; do
        cp "$bin/$exe" "$stage/bin/$exe" || { echo "cannot copy $bin/$exe"; return 1; }
        # A wrapper that becomes the user, without groups or capabilities, and runs the node.
        printf '#!/bin/sh\nexec setpriv --reuid=%s --regid=%s --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs %s "$@"\n' \
            "$uid" "$gid" "$stage/bin/$exe" > "$stage/as-user/$exe"
    done
    # scripts/cluster.sh reads the topology with `branchy topology show`, as root.
    cp "$bin/branchy" "$stage/bin/branchy" || { echo "cannot copy $bin/branchy"; return 1; }
    ln -s "$stage/bin/branchy" "$stage/as-user/branchy"
    chmod 0755 "$stage/bin"/* "$stage/as-user"/branchy-*
    cp "$model/model.json" "$model/weights.safetensors" "$stage/model/" || { echo "cannot copy the model $model"; return 1; }
    local dataset
    dataset="$(topology_path "$LOCAL" dataset)"
    cp "$dataset"/t10k-* "$stage/data/" || { echo "no test set in $dataset"; return 1; }
    chmod 0644 "$stage/model"/* "$stage/data"/*

    user_topology="$stage/unprivileged.yaml"
    root_topology="$stage/unprivileged-root.yaml"
    sed -E -e 's|^model:.*|model: model|' -e 's|^dataset:.*|dataset: data|' -e 's|^certs:.*|certs: certs|' \
        -e "s|127\.0\.0\.1:7401|$EDGE_LISTEN|; s|127\.0\.0\.1:7402|$CLOUD_LISTEN|" \
        -e "s|127\.0\.0\.1:8401|$EDGE_METRICS|; s|127\.0\.0\.1:8402|$CLOUD_METRICS|" \
        "$LOCAL" > "$user_topology"
    cp "$user_topology" "$root_topology"
    chmod 0644 "$user_topology" "$root_topology"
    [ "$(node_dial "$user_topology" edge)" = "$EDGE_LISTEN" ] && [ "$(node_dial "$user_topology" cloud)" = "$CLOUD_LISTEN" ] \
        || { echo "could not move $LOCAL's edge and cloud to $EDGE_LISTEN and $CLOUD_LISTEN"; return 1; }

    scripts/gen-certs.sh "$user_topology" "$stage/certs" >&2 || { echo "scripts/gen-certs.sh failed"; return 1; }
    rm -f "$stage/certs/ca-key.pem"   # the nodes need the CA's certificate, not its key
    chown -R "$uid:$gid" "$stage/certs" "$stage/out"
    chmod 0700 "$stage/certs" "$stage/out"
    chmod 0600 "$stage/certs"/*
    local f bad=""
    for f in "$stage/certs"/*-key.pem; do
        [ "$(stat -c '%u %a' "$f")" = "$uid 600" ] || bad+=" $(basename "$f")"
    done
    [ -z "$bad" ] || { echo "keys not 0600 and the user's:$bad"; return 1; }
    echo "user $TEST_USER: uid $uid, gid $gid; folder $stage" >> "$work/figures"
}

# --- Helpers ----------------------------------------------------------------------

needs_setup() { [ -n "$stage" ] && [ -f "$user_topology" ] || { echo "no set-up"; return 1; }; }

# cluster_name TOPOLOGY: the folder name scripts/cluster.sh uses under run/.
cluster_name() { local n; n="$(basename "$1")"; echo "${n%.*}"; }

# node_pid TOPOLOGY NODE: the pid scripts/cluster.sh recorded for NODE.
node_pid() { cat "run/$(cluster_name "$1")/$2.pid" 2>/dev/null || true; }

# up TOPOLOGY BIN_DIR: starts the topology's edge and cloud with the executables of BIN_DIR;
# when one does not come up, says which and how its log ends.
up() {
    local status=0 out="$work/$(cluster_name "$1")-up.out" name
    BRANCHY_BIN="$2" scripts/cluster.sh up "$1" > "$out" 2>&1 || status=$?
    cat "$out" >&2
    [ "$status" -ne 0 ] || return 0
    name="$(sed -nE 's/^([A-Za-z0-9._-]+) (exited before listening|did not listen) .*/\1/p' "$out" | head -n 1)"
    if [ -n "$name" ]; then
        echo "$name did not come up; its log ends: $(awk 'NF { last = $0 } END { print last }' "run/$(cluster_name "$1")/$name.log")"
    else
        echo "the cluster did not start: $(awk 'NF { last = $0 } END { print last }' "$out")"
    fi
    return 1
}

# down TOPOLOGY: stops the cluster with SIGTERM; fails when a node had to be killed.
down() {
    local out
    out="$(scripts/cluster.sh down "$1" 2>&1)"
    echo "$out" >&2
    ! grep -q '^killed' <<< "$out" || { grep '^killed' <<< "$out" | head -n 1; return 1; }
}

# privileges NAME PID: PID runs as the user, without groups, capabilities or a way to gain them.
privileges() {
    local name="$1" pid="$2" status
    status="$(cat "/proc/$pid/status" 2>/dev/null)" || { echo "$name (pid $pid) is not running"; return 1; }
    STATUS="$status" python3 - "$name" "$pid" "$uid" "$gid" <<'PY' || return 1
import os, sys
name, pid, uid, gid = sys.argv[1:]
fields = dict(line.split(":", 1) for line in os.environ["STATUS"].splitlines() if ":" in line)
get = lambda key: fields.get(key, "").split()
problems = []
if get("Uid") != [uid] * 4: problems.append(f"Uid {' '.join(get('Uid'))}, not {uid}")
if get("Gid") != [gid] * 4: problems.append(f"Gid {' '.join(get('Gid'))}, not {gid}")
if get("Groups"): problems.append(f"supplementary groups {' '.join(get('Groups'))}")
for key in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
    value = get(key)
    if not value or int(value[0], 16) != 0: problems.append(f"{key} {' '.join(value) or 'missing'}")
if get("NoNewPrivs") != ["1"]: problems.append(f"NoNewPrivs {' '.join(get('NoNewPrivs')) or 'missing'}")
if problems:
    print(f"{name} (pid {pid}): " + "; ".join(problems)); sys.exit(1)
PY
    echo "$name pid $pid: uid $uid, capabilities 0" >> "$work/figures"
}

# run_device TOPOLOGY BIN_DIR PREFIX [PAUSE]: runs the device on LIMIT samples, writing
# PREFIX.json and PREFIX.jsonl (in the user's folder, then copied to run/), PREFIX.out and
# PREFIX.err. With PAUSE, the edge is stopped (SIGSTOP) until the device process is running
# its own executable, whose privileges are then checked.
run_device() {
    local topology="$1" exe="$2/branchy-device" prefix="$3" pause="${4:-}" out="$stage/out/$(basename "$3")"
    local status=0 waited=0 why=""
    if [ -n "$pause" ]; then
        paused="$(node_pid "$topology" edge)"
        [ -n "$paused" ] && kill -STOP "$paused" || { echo "cannot pause the edge"; paused=""; return 1; }
    fi
    "$exe" --topology "$topology" --node device --limit "$LIMIT" --report "$out.json" --predictions "$out.jsonl" \
        > "$prefix.out" 2> "$prefix.err" &
    device_pid=$!
    if [ -n "$pause" ]; then
        # The wrapper execs setpriv, which execs the device: the same pid throughout. With the
        # edge paused the device cannot finish, so it is there to be looked at.
        local running=0
        while [ "$waited" -lt 1000 ] && proc_running "$device_pid"; do
            if [ "$(readlink "/proc/$device_pid/exe" 2>/dev/null)" = "$stage/bin/branchy-device" ]; then
                running=1
                break
            fi
            sleep 0.01
            waited=$((waited + 1))
        done
        if [ "$running" -eq 1 ]; then
            why="$(privileges device "$device_pid")" || true
        elif proc_running "$device_pid"; then
            why="the device process did not run $stage/bin/branchy-device within 10 s"
        fi
        kill -CONT "$paused" 2>/dev/null || true
        paused=""
    fi
    waited=0
    while proc_running "$device_pid" && [ "$waited" -lt $((DEVICE_TIMEOUT * 10)) ]; do
        sleep 0.1
        waited=$((waited + 1))
    done
    if proc_running "$device_pid"; then
        stop_children "$log" "$device_pid"
        device_pid=""
        echo "branchy-device did not finish within $DEVICE_TIMEOUT s"
        return 1
    fi
    wait "$device_pid" || status=$?
    device_pid=""
    [ -z "$why" ] || { echo "$why"; return 1; }
    [ "$status" -eq 0 ] || { echo "branchy-device exited $status: $(tail -n 1 "$prefix.err")"; return 1; }
    cp "$out.json" "$prefix.json" && cp "$out.jsonl" "$prefix.jsonl" || { echo "no report or predictions in $stage/out"; return 1; }
    "${helper[@]}" report "$prefix.json" "$LIMIT" "$prefix.jsonl" || return 1
    # Samples answered at every exit: both links carried requests.
    python3 - "$prefix.json" <<'PY' || return 1
import json, sys
exits = json.load(open(sys.argv[1]))["exits"]
idle = [e["name"] for e in exits if e["count"] == 0]
if idle: print(f"no sample answered at {', '.join(idle)}"); sys.exit(1)
print("; ".join(f"{e['name']} {e['count']}" for e in exits), file=sys.stderr)
PY
}

# same_as_eval TOPOLOGY PREFIX: PREFIX.jsonl equals `branchy eval --predictions` on the same
# samples; with --topology, eval runs the topology's model, data set, thresholds and each
# link's codec as the cluster applies them.
same_as_eval() {
    local topology="$1" prefix="$2"
    local -a args=(eval --topology "$topology" --device device --limit "$LIMIT" --predictions "$prefix-eval.jsonl")
    echo "branchy ${args[*]}" >&2
    "$bin/branchy" "${args[@]}" > "$prefix-eval.out" 2> "$prefix-eval.err" \
        || { echo "branchy eval failed: $(tail -n 1 "$prefix-eval.err")"; return 1; }
    "${helper[@]}" same-predictions "$prefix.jsonl" "$prefix-eval.jsonl" "$prefix.json"
}

# --- Checks -------------------------------------------------------------------------

user_up=0
root_up=0
check_user_up() { needs_setup || return 1; up "$user_topology" "$stage/as-user" && user_up=1; }

check_user_privileges() {
    needs_setup || return 1
    local name pid
    for name in edge cloud; do
        pid="$(node_pid "$user_topology" "$name")"
        [ -n "$pid" ] || { echo "no pid for $name"; return 1; }
        [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$stage/bin/branchy-$name" ] \
            || { echo "$name (pid $pid) does not run $stage/bin/branchy-$name"; return 1; }
        privileges "$name" "$pid" || return 1
    done
}

check_user_samples() { needs_setup || return 1; run_device "$user_topology" "$stage/as-user" "$work/unprivileged" pause; }
check_user_eval() { [ -s "$work/unprivileged.jsonl" ] || { echo "no predictions from the unprivileged run"; return 1; }; same_as_eval "$user_topology" "$work/unprivileged"; }
check_user_down() { [ "$user_up" -eq 1 ] || { echo "the unprivileged cluster did not start"; return 1; }; down "$user_topology"; }

check_root_up() { needs_setup || return 1; up "$root_topology" "$stage/bin" && root_up=1; }
check_root_samples() {
    needs_setup || return 1
    run_device "$root_topology" "$stage/bin" "$work/root" || return 1
    same_as_eval "$root_topology" "$work/root"
}
check_root_down() { [ "$root_up" -eq 1 ] || { echo "the root cluster did not start"; return 1; }; down "$root_topology"; }

run_check "set-up: user $TEST_USER, certificates its own (keys 0600, folder 0700), executables, model and test set readable" check_setup
run_check "edge and cloud start as $TEST_USER with no capabilities (setpriv --inh-caps=-all --bounding-set=-all)" check_user_up
run_check "edge and cloud run as $TEST_USER: no groups, CapInh/CapPrm/CapEff/CapBnd/CapAmb 0, NoNewPrivs 1" check_user_privileges
run_check "$LIMIT samples through device, edge and cloud, all three as $TEST_USER with no capabilities" check_user_samples
run_check "unprivileged run: predictions identical to branchy eval" check_user_eval
run_check "unprivileged cluster stops on SIGTERM" check_user_down
run_check "the same cluster as root starts" check_root_up
run_check "$LIMIT samples through the cluster as root, predictions identical to branchy eval" check_root_samples
run_check "root cluster stops on SIGTERM" check_root_down

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
