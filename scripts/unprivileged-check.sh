#!/usr/bin/env bash
# The nodes as the Kubernetes manifests run them: a user of their own with no capabilities. A system
# user (BRANCHY_TEST_USER, default branchy-test, made with useradd when missing) runs edge and cloud
# through scripts/cluster.sh and the device, each via `setpriv --reuid --regid --clear-groups
# --inh-caps=-all --bounding-set=-all --no-new-privs`, from a folder under /tmp with root's copies of
# the executables, model, test set and topology/local.yaml (ports of its own) and certificates of the
# user's own (keys 0600, folder 0700, no CA key). /proc/PID/status of each node (the device's read
# while the edge is paused) must show the user's uid and gid, no groups, every capability set empty
# and NoNewPrivs 1; 1,000 samples must be answered at every exit with the predictions of `branchy
# eval`; the cluster must stop on SIGTERM; then the same cluster as root. Needs root. Prints
# `ok`/`not ok` lines and `N passed, M failed`; details in run/unprivileged-check/.
# Environment: BRANCHY_BIN, BRANCHY_TEST_USER, DEVICE_TIMEOUT (seconds per device run, default 300).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
no_args "runs device, edge and cloud as an unprivileged user without capabilities, then as root" "$@"

cd "$REPO_ROOT"
TEST_USER="${BRANCHY_TEST_USER:-branchy-test}" DEVICE_TIMEOUT="${DEVICE_TIMEOUT:-300}" LOCAL=topology/local.yaml LIMIT=1000
EDGE_LISTEN=127.0.0.1:7561 CLOUD_LISTEN=127.0.0.1:7562   # ports of their own, beside a cluster of topology/local.yaml
work=run/unprivileged-check
log="$work/unprivileged-check.log"
ensure_packages openssl:openssl python3:python3 setpriv:util-linux useradd:passwd
ensure_built
bin="$BRANCHY_BIN"
rm -rf "$work"
mkdir -p "$work"
: > "$log"
stage="" user_topology="" root_topology="" uid="" gid="" paused="" device_pid=""
cleanup() {
    [ -z "$paused" ] || kill -CONT "$paused" 2>/dev/null || true
    [ -z "$device_pid" ] || stop_children "$log" "$device_pid"
    [ -z "$stage" ] || { for t in "$user_topology" "$root_topology"; do [ ! -f "$t" ] || scripts/cluster.sh down "$t" >>"$log" 2>&1 || true; done; rm -rf "$stage"; }
}
trap cleanup EXIT
model="$(topology_path "$LOCAL" model)" || die "cannot read $LOCAL"

# The user and its folder: executables, model, test set and topology are root's (0755 folders, 0644
# files); the certificates are the user's alone.
check_setup() {
    [ "$(id -u)" -eq 0 ] || { echo "needs root: it makes the user $TEST_USER and drops to it with setpriv"; return 1; }
    id -u "$TEST_USER" >/dev/null 2>&1 || useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$TEST_USER" >&2 \
        || { echo "useradd could not make the user $TEST_USER"; return 1; }
    uid="$(id -u "$TEST_USER")" gid="$(id -g "$TEST_USER")"
    [ "$uid" -ne 0 ] && [ "$gid" -ne 0 ] || { echo "$TEST_USER has uid $uid and gid $gid; it must not be root"; return 1; }
    stage="$(mktemp -d /tmp/branchy-unprivileged.XXXXXX)" || { echo "mktemp could not make a folder in /tmp"; return 1; }
    chmod 0755 "$stage"
    mkdir -p "$stage/bin" "$stage/as-user" "$stage/model" "$stage/data" "$stage/out"
    local exe f bad=""
    for exe in branchy branchy-device branchy-edge branchy-cloud; do
        cp "$bin/$exe" "$stage/bin/$exe" || { echo "cannot copy $bin/$exe"; return 1; }
        # A wrapper that becomes the user, without groups or capabilities (cluster.sh runs branchy as root).
        [ "$exe" = branchy ] && ln -s "$stage/bin/branchy" "$stage/as-user/branchy" && continue
        printf '#!/bin/sh\nexec setpriv --reuid=%s --regid=%s --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs %s "$@"\n' \
            "$uid" "$gid" "$stage/bin/$exe" > "$stage/as-user/$exe"
    done
    chmod 0755 "$stage/bin"/* "$stage/as-user"/branchy-*
    cp "$model/model.json" "$model/weights.safetensors" "$stage/model/" || { echo "cannot copy the model $model"; return 1; }
    cp "$(topology_path "$LOCAL" dataset)"/t10k-* "$stage/data/" || { echo "no test set in $(topology_path "$LOCAL" dataset)"; return 1; }
    chmod 0644 "$stage/model"/* "$stage/data"/*
    user_topology="$stage/unprivileged.yaml" root_topology="$stage/unprivileged-root.yaml"
    topology_with "$LOCAL" "$user_topology" model=model dataset=data certs=certs "edge.listen=$EDGE_LISTEN" "cloud.listen=$CLOUD_LISTEN" \
        edge.metrics=127.0.0.1:8561 cloud.metrics=127.0.0.1:8562 && [ "$(node_dial "$user_topology" edge)" = "$EDGE_LISTEN" ] \
        || { echo "could not move $LOCAL's edge and cloud to $EDGE_LISTEN and $CLOUD_LISTEN"; return 1; }
    cp "$user_topology" "$root_topology"
    chmod 0644 "$user_topology" "$root_topology"
    scripts/gen-certs.sh "$user_topology" "$stage/certs" >&2 || { echo "scripts/gen-certs.sh failed"; return 1; }
    rm -f "$stage/certs/ca-key.pem"   # the nodes need the CA's certificate, not its key
    chown -R "$uid:$gid" "$stage/certs" "$stage/out"
    chmod 0700 "$stage/certs" "$stage/out"
    chmod 0600 "$stage/certs"/*
    for f in "$stage/certs"/*-key.pem; do [ "$(stat -c '%u %a' "$f")" = "$uid 600" ] || bad+=" $(basename "$f")"; done
    [ -z "$bad" ] || { echo "keys not 0600 and the user's:$bad"; return 1; }
    figure "user $TEST_USER: uid $uid, gid $gid; folder $stage"
}

needs_setup() { [ -n "$stage" ] && [ -f "$user_topology" ] || { echo "no set-up"; return 1; }; }
pid_of() { cat "run/$(basename "$1" .yaml)/$2.pid" 2>/dev/null || true; }   # the pid cluster.sh recorded
# up TOPOLOGY BIN_DIR: edge and cloud with the executables of BIN_DIR; says which did not come up.
up() {
    local out="$work/$(basename "$1" .yaml)-up.out" name
    needs_setup || return 1
    BRANCHY_BIN="$2" scripts/cluster.sh up "$1" > "$out" 2>&1 && { cat "$out" >&2; return; }
    cat "$out" >&2
    name="$(sed -nE 's/^([A-Za-z0-9._-]+) (exited before listening|did not listen) .*/\1/p' "$out" | head -n 1)"
    [ -z "$name" ] || { echo "$name did not come up; its log ends: $(awk 'NF { l = $0 } END { print l }' "run/$(basename "$1" .yaml)/$name.log")"; return 1; }
    echo "the cluster did not start: $(awk 'NF { l = $0 } END { print l }' "$out")"
    return 1
}
# down TOPOLOGY: stops the cluster with SIGTERM; fails when a node had to be killed.
down() { local out; out="$(scripts/cluster.sh down "$1" 2>&1)"; echo "$out" >&2; ! grep -m 1 '^killed' <<< "$out"; }
# privileges NAME PID: PID runs as the user, without groups, capabilities or a way to gain them.
privileges() {
    [ -r "/proc/$2/status" ] || { echo "$1 (pid $2) is not running"; return 1; }
    python3 - "$@" "$uid" "$gid" <<'PY' || return 1
import sys
name, pid, uid, gid = sys.argv[1:]
get = dict((l.split(":", 1)[0], l.split(":", 1)[1].split()) for l in open(f"/proc/{pid}/status") if ":" in l).get
problems = [f"{k} {' '.join(get(k) or [])}, not {v}" for k, v in (("Uid", uid), ("Gid", gid)) if get(k) != [v] * 4]
problems += [f"supplementary groups {' '.join(get('Groups'))}"] if get("Groups") else []
problems += [f"{k} {' '.join(get(k) or []) or 'missing'}" for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb") if not get(k) or int(get(k)[0], 16)]
problems += [f"NoNewPrivs {' '.join(get('NoNewPrivs') or []) or 'missing'}"] if get("NoNewPrivs") != ["1"] else []
if problems:
    sys.exit(print(f"{name} (pid {pid}): " + "; ".join(problems)) or 1)
PY
    figure "$1 pid $2: uid $uid, capabilities 0"
}
# run_as TOPOLOGY BIN_DIR PREFIX [pause]: the device on LIMIT samples (its report and predictions
# written in the user's folder, then copied to PREFIX.json and .jsonl). With pause the edge is stopped
# until the device runs its own executable, whose privileges are then checked.
run_as() {
    local out="$stage/out/$(basename "$3")" why="" status=0
    needs_setup || return 1
    if [ -n "${4:-}" ]; then
        paused="$(pid_of "$1" edge)"
        [ -n "$paused" ] && kill -STOP "$paused" || { echo "cannot pause the edge"; paused=""; return 1; }
    fi
    "$2/branchy-device" --topology "$1" --node device --limit "$LIMIT" --report "$out.json" --predictions "$out.jsonl" > "$3.out" 2> "$3.err" &
    device_pid=$!
    if [ -n "$paused" ]; then   # the wrapper execs setpriv, which execs the device: the same pid throughout
        execd() { [ "$(readlink "/proc/$device_pid/exe" 2>/dev/null)" = "$stage/bin/branchy-device" ] || ! proc_running "$device_pid"; }
        wait_for 10 execd || true
        if [ "$(readlink "/proc/$device_pid/exe" 2>/dev/null)" = "$stage/bin/branchy-device" ]; then why="$(privileges device "$device_pid")" || true
        elif proc_running "$device_pid"; then why="the device process did not run $stage/bin/branchy-device within 10 s"; fi
        kill -CONT "$paused" 2>/dev/null || true
        paused=""
    fi
    finished() { ! proc_running "$device_pid"; }
    wait_for "$DEVICE_TIMEOUT" finished || { stop_children "$log" "$device_pid"; device_pid=""; echo "branchy-device did not finish within $DEVICE_TIMEOUT s"; return 1; }
    wait "$device_pid" || status=$?
    device_pid=""
    [ -z "$why" ] || { echo "$why"; return 1; }
    [ "$status" -eq 0 ] || { echo "branchy-device exited $status: $(tail -n 1 "$3.err")"; return 1; }
    cp "$out.json" "$3.json" && cp "$out.jsonl" "$3.jsonl" || { echo "no report or predictions in $stage/out"; return 1; }
    "${PY[@]}" report "$3.json" "$LIMIT" "$3.jsonl" && "${PY[@]}" every-exit "$3.json"   # both links carried requests
}
same() { same_as_eval "$1" "$2" --device device --limit "$LIMIT"; }

user_up=0 root_up=0
check_user_up() { up "$user_topology" "$stage/as-user" && user_up=1; }
check_user_privileges() {
    needs_setup || return 1
    local name pid
    for name in edge cloud; do
        pid="$(pid_of "$user_topology" "$name")"
        [ -n "$pid" ] || { echo "no pid for $name"; return 1; }
        [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$stage/bin/branchy-$name" ] || { echo "$name (pid $pid) does not run $stage/bin/branchy-$name"; return 1; }
        privileges "$name" "$pid" || return 1
    done
}
check_user_samples() { run_as "$user_topology" "$stage/as-user" "$work/unprivileged" pause; }
check_user_eval() { [ -s "$work/unprivileged.jsonl" ] || { echo "no predictions from the unprivileged run"; return 1; }; same "$user_topology" "$work/unprivileged"; }
check_user_down() { [ "$user_up" -eq 1 ] || { echo "the unprivileged cluster did not start"; return 1; }; down "$user_topology"; }
check_root_up() { up "$root_topology" "$stage/bin" && root_up=1; }
check_root_samples() { run_as "$root_topology" "$stage/bin" "$work/root" && same "$root_topology" "$work/root"; }
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
summary
