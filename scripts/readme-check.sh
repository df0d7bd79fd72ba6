#!/usr/bin/env bash
# The README's "Use your own model" steps, run from a fresh clone as written. A working tree with nothing
# changed or added (as CI's fresh clone is) runs them in place, on the release build the other suites
# share (its run/mine and topology/mine.yaml removed before and after); otherwise this repository's HEAD is
# cloned into run/readme-check/clone. Takes the first fenced code block after the heading "## Use your own
# model" from that tree's README.md and runs each of its lines there with bash, one after the other, unchanged.
# The lines run with the Python venv run/venv-torch (made once, kept across runs) first on PATH, so that
# `pip install` installs into it and `python3` is its Python, and without BRANCHY_BIN, so that the cluster
# runs the executables the clone's own `swift build` made. Then checks what the steps should have left:
# the imported model (run/mine/model/model.json with its stages), the thresholds `branchy calibrate
# --write` chose, the per-exit table of `branchy eval` with an overall accuracy above 80%, a device run of
# all 10,000 test samples with none failed, and no server node of the clone left running. A failed step
# skips the rest; the cluster is stopped on exit whatever happened. Prints `ok`/`not ok` lines and
# `N passed, M failed`; every step's output is in run/readme-check/step-N.out.
#
# pip gives up on an unreachable package index at once (PIP_RETRIES=0, PIP_TIMEOUT=15) and takes torch
# from the indexes it reaches. The first run installs torch (CPU build) into run/venv-torch; a clone is
# built from nothing. The clone's .build folder is kept for the next run (moved aside while the fresh clone is made, then put
# back at the same path), so later runs compile the freshly checked-out sources again but mostly not the
# dependencies; delete run/readme-check to start cold. Environment: STEP_TIMEOUT (seconds per step,
# default 1800); BRANCHY_BIN is not used.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
no_args "runs the README's 'Use your own model' steps in a fresh clone and checks what they made" "$@"

cd "$REPO_ROOT"
ensure_packages git:git openssl:openssl python3:python3
ensure_training_set   # the steps train on Fashion-MNIST's training set (Debian's dataset-fashion-mnist)
work="$REPO_ROOT/run/readme-check"
clone="$work/clone"
venv="$REPO_ROOT/run/venv-torch"
log="$work/readme-check.log"
HEADING="## Use your own model"
TOPOLOGY=topology/mine.yaml          # what the steps' sed writes, in the clone
PORTS="7501 7502 8501 8502"          # its nodes' listen: and metrics: ports (those of topology/mobilenet-exits.yaml)

mkdir -p "$work"
[ ! -d "$clone/.build" ] || mv "$clone/.build" "$work/previous-build"
find "$work" -mindepth 1 -maxdepth 1 ! -name previous-build -exec rm -rf {} +
: > "$log"
# In place when nothing in the working tree differs from HEAD (ignored files aside): CI's fresh clone.
in_place=""
if git -C "$REPO_ROOT" rev-parse --verify -q HEAD > /dev/null && [ -z "$(git -C "$REPO_ROOT" status --porcelain 2>/dev/null)" ]; then
    in_place=1
    clone="$REPO_ROOT"
    rm -rf "$REPO_ROOT/run/mine" "$REPO_ROOT/$TOPOLOGY"
fi

# clone_pids: the edge and cloud nodes running from the clone's build (no one else's).
clone_pids() { pgrep -f "^$clone/\.build/.*/branchy-(edge|cloud) " || true; }
no_clone_pids() { [ -z "$(clone_pids)" ]; }
# Whatever happens: the clone's cluster is stopped (by its own cluster.sh, with its own executables), and
# any node still running from the clone's build after it gets SIGTERM, then SIGKILL 10 s later.
stop_clone_cluster() {
    if [ -f "$clone/$TOPOLOGY" ] && [ -x "$clone/.build/release/branchy" ]; then
        (cd "$clone" && BRANCHY_BIN="$clone/.build/release" scripts/cluster.sh down "$TOPOLOGY") >>"$log" 2>&1 || true
    fi
    no_clone_pids && return
    local pid
    for pid in $(clone_pids); do echo "cleanup: stopping pid $pid, still running from the clone" >> "$log"; kill -TERM "$pid" 2>/dev/null || true; done
    wait_for 10 no_clone_pids && return
    for pid in $(clone_pids); do echo "cleanup: killing pid $pid" >> "$log"; kill -KILL "$pid" 2>/dev/null || true; done
}
# In place, the tree is left as it was: what the steps wrote goes (run/mine is copied to run/readme-check).
clean_up() {
    stop_clone_cluster
    [ -n "$in_place" ] || return 0
    [ ! -d "$REPO_ROOT/run/mine" ] || { rm -rf "$work/mine" && mv "$REPO_ROOT/run/mine" "$work/mine"; } || true
    rm -f "$REPO_ROOT/$TOPOLOGY"
}
trap clean_up EXIT

ports_in_use() { local p; for p in $PORTS; do ! port_listening 127.0.0.1 "$p" || printf '%s ' "$p"; done; }
ports_free() { [ -z "$(ports_in_use)" ]; }

# The first fenced block after the heading, one line each; blank lines and comment lines left out.
steps=()
extract_steps() {
    local text
    text="$(awk -v heading="$HEADING" '
        $0 == heading { inside = 1; next }
        inside == 1 && /^## / { exit }
        inside == 1 && /^```/ { inside = 2; next }
        inside == 2 && /^```/ { exit }
        inside == 2 { print }' "$clone/README.md")"
    mapfile -t steps < <(grep -v '^[[:space:]]*\(#\|$\)' <<< "$text" || true)
    [ "${#steps[@]}" -gt 0 ] || { echo "no fenced code block after \"$HEADING\" in README.md"; return 1; }
    printf '%s\n' "${steps[@]}" > "$work/steps.sh"
    figure "${#steps[@]} lines, in $work/steps.sh"
}

check_clone() {
    git -C "$REPO_ROOT" rev-parse --verify -q HEAD > /dev/null || { echo "$REPO_ROOT is not a git repository with a commit"; return 1; }
    if [ -n "$in_place" ]; then
        figure "commit $(git -C "$REPO_ROOT" rev-parse --short HEAD), in place: the working tree is HEAD's"
        extract_steps
        return
    fi
    local head
    head="$(git -C "$REPO_ROOT" rev-parse HEAD)"
    git clone -q "$REPO_ROOT" "$clone" >&2 || { echo "git clone $REPO_ROOT failed"; return 1; }
    [ "$(git -C "$clone" rev-parse HEAD)" = "$head" ] || git -C "$clone" checkout -q --detach "$head" >&2 \
        || { echo "could not check out $head in the clone"; return 1; }
    if [ -d "$work/previous-build" ]; then
        mv "$work/previous-build" "$clone/.build"
        figure "commit $(git -C "$clone" rev-parse --short HEAD), the previous run's .build kept"
    else
        figure "commit $(git -C "$clone" rev-parse --short HEAD), built from nothing"
    fi
    extract_steps
}

check_ports() {
    local busy
    busy="$(ports_in_use)"
    [ -z "$busy" ] || { echo "ports in use before the steps start: $busy(another cluster of topology/mobilenet-exits.yaml?)"; return 1; }
}

check_venv() {
    [ -x "$venv/bin/python" ] && figure "reused $venv" && return
    ensure_venv "$venv"
    figure "made $venv"
}

# run_steps: each line in the clone with bash, as written, in order; stops at the first that fails.
step_seconds=()
run_steps() {
    local i line start status
    for i in "${!steps[@]}"; do
        line="${steps[$i]}"
        printf '\n### step %d: %s\n' "$((i + 1))" "$line" >> "$log"
        start="$(date +%s.%N)"
        status=0
        (cd "$clone" && env -u BRANCHY_BIN PATH="$venv/bin:$PATH" VIRTUAL_ENV="$venv" PIP_RETRIES=0 PIP_TIMEOUT=15 \
            timeout "${STEP_TIMEOUT:-1800}" bash -c "$line") > "$work/step-$((i + 1)).out" 2>&1 < /dev/null || status=$?
        step_seconds[i]="$(since "$start")"
        if [ "$status" -ne 0 ]; then
            echo "step $((i + 1)) exited $status after ${step_seconds[$i]} s: $line" >> "$log"
            [ "$status" -ne 124 ] || echo "step $((i + 1)) did not finish within ${STEP_TIMEOUT:-1800} s: $line"
            [ "$status" -eq 124 ] || echo "step $((i + 1)) exited $status ($(grep -v '^[[:space:]]*$' "$work/step-$((i + 1)).out" | tail -n 1 | cut -c1-200)): $line"
            return 1
        fi
        echo "step $((i + 1)) took ${step_seconds[$i]} s" >> "$log"
    done
}
check_steps() {
    run_steps || return 1
    touch "$work/steps.done"
    figure "seconds per step: $(printf '%.0f\n' "${step_seconds[@]}" | paste -sd ' ' -)"
}
# steps_ran: every step ran (else a check of what they made is skipped rather than failed for no new reason).
steps_ran() { [ -f "$work/steps.done" ] || { echo "skipped: the steps did not all run"; return 1; }; }

# step_out PATTERN: the output file of the first step whose line matches the extended regular expression.
step_out() {
    local i
    for i in "${!steps[@]}"; do
        grep -Eq -- "$1" <<< "${steps[$i]}" && { [ -f "$work/step-$((i + 1)).out" ] && echo "$work/step-$((i + 1)).out"; return; }
    done
    return 1
}

check_import() {
    steps_ran || return 1
    local model="$clone/run/mine/model"
    [ -f "$model/model.json" ] || { echo "no run/mine/model/model.json in the clone"; return 1; }
    [ -f "$model/weights.safetensors" ] || { echo "no run/mine/model/weights.safetensors in the clone"; return 1; }
    python3 - "$model/model.json" <<'PY' >> "$work/figures" || { echo "run/mine/model/model.json does not describe three stages"; return 1; }
import json, sys
m = json.load(open(sys.argv[1]))
stages = m.get("stages") or []
print(f"{len(stages)} stages")
sys.exit(len(stages) != 3)
PY
}

check_calibrate() {
    steps_ran || return 1
    local model="$clone/run/mine/model" out
    out="$(step_out 'branchy calibrate')" || { echo "no step runs branchy calibrate"; return 1; }
    grep -q '^thresholds written to' "$out" || { echo "branchy calibrate did not say it wrote the thresholds"; return 1; }
    [ -f "$model/calibration.json" ] || { echo "no calibration.json in run/mine/model"; return 1; }
    python3 - "$model/model.json" "$model/calibration.json" <<'PY' >> "$work/figures" || { echo "model.json's thresholds are not the chosen ones"; return 1; }
import json, sys
m, c = (json.load(open(f)) for f in sys.argv[1:])
t = (m.get("defaults") or {}).get("thresholds")
print("thresholds " + ",".join(f"{x:g}" for x in t or []))
ok = isinstance(t, list) and len(t) == len(m["stages"]) - 1 and all(0 < x <= 1 for x in t)
sys.exit(not ok or [round(x, 6) for x in t] != [round(x, 6) for x in c["chosenThresholds"]])
PY
    figure "$(grep -m 1 '^chosen' "$out" | cut -c1-160)"
}

check_eval() {
    steps_ran || return 1
    local out
    out="$(step_out 'branchy eval')" || { echo "no step runs branchy eval"; return 1; }
    python3 - "$out" <<'PY' >> "$work/figures" || { tail -n 1 "$work/figures"; return 1; }
import re, sys
lines = open(sys.argv[1], errors="replace").read().replace("\r", "\n").splitlines()
header = next((i for i, l in enumerate(lines) if re.match(r"exit\s+threshold\s+samples\s+fraction\s+accuracy", l)), None)
overall = next((re.search(r"overall accuracy ([0-9.]+)% over ([0-9]+) samples", l) for l in lines if l.startswith("overall accuracy")), None)
if header is None or overall is None:
    print("branchy eval printed no per-exit table"); sys.exit(1)
rows = [l for l in lines[header + 1:] if re.match(r"\S+\s+(-|[0-9.]+)\s+[0-9]+\s+[0-9.]+%\s+[0-9.]+%", l)]
accuracy, samples = float(overall.group(1)), int(overall.group(2))
print(f"{len(rows)} exits, overall accuracy {accuracy:.2f}% over {samples} samples")
sys.exit(len(rows) != 3 or samples != 10000 or not accuracy > 80)
PY
}

check_device() {
    steps_ran || return 1
    local out
    out="$(step_out 'branchy-device')" || { echo "no step runs branchy-device"; return 1; }
    python3 - "$out" <<'PY' >> "$work/figures" || { tail -n 1 "$work/figures"; return 1; }
import re, sys
text = open(sys.argv[1], errors="replace").read()
m = re.search(r"^([0-9]+) samples: ([0-9]+) answered, ([0-9]+) degraded, ([0-9]+) failed; accuracy ([0-9.]+)%", text, re.M)
if m is None:
    print("branchy-device printed no summary"); sys.exit(1)
samples, answered, degraded, failed = map(int, m.groups()[:4])
accuracy = float(m.group(5))
print(f"{samples} samples: {answered} answered, {degraded} degraded, {failed} failed; accuracy {accuracy:.2f}%")
sys.exit(samples != 10000 or answered != 10000 or failed != 0 or not accuracy > 80)
PY
}

check_down() {   # after the trap's clean-up too, in case a step failed
    local pids busy out
    pids="$(clone_pids)"
    [ -z "$pids" ] || { echo "server nodes of the clone still running: $(tr '\n' ' ' <<< "$pids")"; return 1; }
    busy="$(wait_for 10 ports_free || ports_in_use)"
    [ -z "$busy" ] || { echo "ports still in use after the steps: $busy"; return 1; }
    [ -f "$work/steps.done" ] || { figure "after the clean-up: the steps did not all run"; return 0; }
    out="$(step_out 'cluster\.sh down')" || { echo "no step runs scripts/cluster.sh down"; return 1; }
    grep -q '^stopped ' "$out" || { echo "the steps' scripts/cluster.sh down stopped no node"; return 1; }
    ! ls "$clone/run/mine"/*.pid > /dev/null 2>&1 || { echo "pid files left in the clone's run/mine"; return 1; }
    figure "the steps stopped $(grep -c '^stopped ' "$out") nodes"
}

SECONDS=0
run_check "a fresh clone of HEAD (or HEAD's own working tree), and the first code block after \"$HEADING\" in its README.md" check_clone
if [ -f "$clone/README.md" ] && [ -s "$work/steps.sh" ]; then
    run_check "ports $PORTS free" check_ports
    run_check "Python venv for the steps' pip and python3" check_venv
    run_check "every line of the block runs in the clone, as written" check_steps
    run_check "branchy import wrote the model: run/mine/model/model.json, three stages" check_import
    run_check "branchy calibrate --write stored the chosen thresholds" check_calibrate
    run_check "branchy eval printed the per-exit table, overall accuracy above 80%" check_eval
    run_check "the device classified all 10,000 test samples through edge and cloud, none failed" check_device
fi
stop_clone_cluster
run_check "the cluster is down: no edge or cloud of the clone running, ports free" check_down
echo "readme-check: $SECONDS s in all" >> "$log"
summary
