#!/usr/bin/env bash
# Renders the device's HTML report in headless Chromium (installed when missing) and checks what it
# drew: a valid 1280x2000 PNG screenshot, not blank, the charts' colours painted; a DOM with the
# charts (samples and accuracy per exit, bytes per sample, latency, the calibration frontier or the
# note that there is none) and their marks, finite SVG coordinates, no scripts, no external resources.
# Without a file it first runs a copy of topology/local.yaml on free loopback ports and
# branchy-device --limit 2000 --html with scripts/lib/calibration-example.json; --frontier requires
# the frontier chart. Prints `ok`/`not ok` lines and `N passed, M failed`; details in run/report-check/.
# Environment: BRANCHY_BIN, CHROMIUM_TIMEOUT (seconds per Chromium run, default 60).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() { echo "usage: $(basename "$0") [[--frontier] REPORT.html]   (no file: runs a short cluster and checks its report)"; }
html="" frontier=0
while [ "$#" -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --frontier) frontier=1 ;;
        -*) usage >&2; exit 2 ;;
        *) [ -z "$html" ] || { usage >&2; exit 2; }; html="$(abs_path "$1")" ;;
    esac
    shift
done
[ -n "$html" ] || [ "$frontier" -eq 0 ] || { usage >&2; exit 2; }

cd "$REPO_ROOT"
WIDTH=1280 HEIGHT=2000
work=run/report-check
log="$work/report-check.log"
topology="$REPO_ROOT/$work/cluster/report-check.yaml"
ensure_packages python3:python3 chromium:chromium
mkdir -p "$work/cluster"
rm -f "$work"/screenshot.png "$work"/dom.html "$work"/cluster.up "$log"
[ -n "$html" ] || rm -f "$work"/report.html "$work"/report.json "$work"/device.*
profile="$(mktemp -d "${TMPDIR:-/tmp}/report-check-chromium.XXXXXX")"
# Only a cluster this run started (its marker goes once it is down).
trap '[ ! -f "$work/cluster.up" ] || scripts/cluster.sh down "$topology" >>"$log" 2>&1 || true; rm -rf "$work/cluster.up" "$profile"' EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

check_report_written() {
    ensure_built >&2
    [ ! -f "$topology" ] || scripts/cluster.sh down "$topology" >&2 || true   # left by an interrupted run
    local edge_port cloud_port
    edge_port="$(free_port)" cloud_port="$(free_port)"
    [ "$edge_port" != "$cloud_port" ] || cloud_port="$(free_port)"
    topology_with topology/local.yaml "$topology" "certs=$REPO_ROOT/$work/certs" \
        "edge.listen=127.0.0.1:$edge_port" "cloud.listen=127.0.0.1:$cloud_port" \
        || { echo "branchy topology show could not read $topology"; return 1; }
    touch "$work/cluster.up"
    cluster up "$topology" || return 1
    DEVICE_TIMEOUT=300 run_device "$topology" device "$work/device" --limit 2000 --html "$work/report.html" \
        --calibration scripts/lib/calibration-example.json || { cluster down "$topology"; return 1; }
    cat "$work/device.out" >&2
    cluster down "$topology" && rm -f "$work/cluster.up"
    [ -s "$work/report.html" ] || { echo "branchy-device wrote no $work/report.html"; return 1; }
}
chromium_run() {
    echo "chromium $*" >&2
    timeout "${CHROMIUM_TIMEOUT:-60}" chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --user-data-dir="$profile" --no-first-run --disable-extensions "$@"
}
check_screenshot() {
    [ -s "$html" ] || { echo "no report at $html"; return 1; }
    chromium_run --screenshot="$REPO_ROOT/$work/screenshot.png" --window-size="$WIDTH,$HEIGHT" "file://$html" >&2 || { echo "chromium exited $?"; return 1; }
    [ -s "$work/screenshot.png" ] || { echo "chromium wrote no screenshot"; return 1; }
}
check_png() {
    [ -s "$work/screenshot.png" ] || { echo "no screenshot"; return 1; }
    "${PY[@]}" png "$work/screenshot.png" "$WIDTH" "$HEIGHT"
}
check_dom() {
    [ -s "$html" ] || { echo "no report at $html"; return 1; }
    chromium_run --dump-dom "file://$html" > "$work/dom.html" || { echo "chromium --dump-dom exited $?"; return 1; }
    "${PY[@]}" dom "$work/dom.html" $([ "$frontier" -eq 0 ] || echo --frontier)
}

if [ -z "$html" ]; then
    html="$REPO_ROOT/$work/report.html" frontier=1
    run_check "branchy-device --html writes a report (2,000 samples, local topology on free ports)" check_report_written
fi
run_check "chromium renders a screenshot of the report" check_screenshot
run_check "screenshot is a valid ${WIDTH}x${HEIGHT} PNG with the charts painted" check_png
run_check "rendered DOM has the charts and their marks" check_dom
summary
