#!/usr/bin/env bash
# Renders the device's HTML report in headless Chromium and checks what it drew.
#
#   report-check.sh                 starts a copy of topology/local.yaml on free
#                                   loopback ports, runs branchy-device --limit 2000
#                                   with --html and the example calibration
#                                   (scripts/lib/calibration-example.json), stops it
#   report-check.sh [--frontier] FILE.html
#                                   checks a report written earlier; --frontier
#                                   requires the calibration frontier chart
#
# Checks: Chromium takes a screenshot (--window-size=1280,2000) and dumps the DOM;
# the screenshot is a valid 1280x2000 PNG; it is not blank and the charts' colours
# are painted; the DOM has the charts (samples and accuracy per exit, bytes per
# sample, latency per exit, and the frontier or the note that there is no
# calibration data) with their marks, finite SVG coordinates, no scripts and no
# external resources.
#
# Installs Debian's chromium with apt-get when it is missing. Prints `ok - NAME`
# or `not ok - NAME: why` per check, then `N passed, M failed`; exits 1 if any
# check failed. Details go to run/report-check/ (report-check.log, report.html,
# screenshot.png, dom.html). Environment: BRANCHY_BIN (folder of built
# executables: skips the build), CHROMIUM_TIMEOUT (seconds per Chromium run, default 60).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() { echo "usage: $(basename "$0") [[--frontier] REPORT.html]   (no file: runs a short cluster and checks its report)"; }
html=""
frontier=0
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
WIDTH=1280
HEIGHT=2000
CHROMIUM_TIMEOUT="${CHROMIUM_TIMEOUT:-60}"
work=run/report-check
log="$work/report-check.log"
helper=(python3 scripts/lib/report_check.py)
topology="$REPO_ROOT/$work/cluster/report-check.yaml"

ensure_packages python3:python3 chromium:chromium
mkdir -p "$work"
rm -f "$work"/screenshot.png "$work"/dom.html "$work"/cluster.up "$log"
[ -n "$html" ] || rm -f "$work"/report.html "$work"/report.json "$work"/device.*
profile="$(mktemp -d "${TMPDIR:-/tmp}/report-check-chromium.XXXXXX")"

cleanup() {
    # Only a cluster this run started (its marker is removed once it is down).
    [ ! -f "$work/cluster.up" ] || scripts/cluster.sh down "$topology" >>"$log" 2>&1 || true
    rm -f "$work/cluster.up"
    rm -rf "$profile"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

passed=0
failed=0


# free_port: a TCP port on 127.0.0.1 that nothing listens on now.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# A copy of topology/local.yaml with absolute paths, its own certificates and
# free ports, so that it runs beside any other cluster on this machine.
write_topology() {
    local edge_port cloud_port listens
    edge_port="$(free_port)"
    cloud_port="$(free_port)"
    [ "$edge_port" != "$cloud_port" ] || cloud_port="$(free_port)"
    mkdir -p "$(dirname "$topology")"
    sed -E \
        -e "s|^model: .*|model: $(topology_path topology/local.yaml model)|" \
        -e "s|^dataset: .*|dataset: $(topology_path topology/local.yaml dataset)|" \
        -e "s|^certs: .*|certs: $REPO_ROOT/$work/certs|" \
        -e "s|127\.0\.0\.1:7401|127.0.0.1:$edge_port|" \
        -e "s|127\.0\.0\.1:7402|127.0.0.1:$cloud_port|" \
        topology/local.yaml > "$topology"
    listens="$(topology_nodes "$topology" | cut -f3)" || { echo "branchy topology show could not read $topology"; return 1; }
    grep -qx "127.0.0.1:$edge_port" <<< "$listens" && grep -qx "127.0.0.1:$cloud_port" <<< "$listens" \
        || { echo "topology/local.yaml no longer listens on 7401 and 7402; update $0"; return 1; }
}

check_report_written() {
    ensure_built >&2
    # Nodes left over from an interrupted run have pid files here: stop them first.
    [ ! -f "$topology" ] || scripts/cluster.sh down "$topology" >&2 || true
    write_topology || return 1
    touch "$work/cluster.up"
    scripts/cluster.sh up "$topology" >&2 || { echo "the cluster did not start (logs in run/report-check/)"; return 1; }
    local status=0
    timeout 300 "$BRANCHY_BIN/branchy-device" --topology "$topology" --node device --limit 2000 \
        --report "$work/report.json" --html "$work/report.html" --calibration scripts/lib/calibration-example.json \
        > "$work/device.out" 2> "$work/device.err" || status=$?
    cat "$work/device.out" >&2
    scripts/cluster.sh down "$topology" >&2 && rm -f "$work/cluster.up"
    [ "$status" -eq 0 ] || { echo "branchy-device exited $status: $(tail -n 1 "$work/device.err")"; return 1; }
    [ -s "$work/report.html" ] || { echo "branchy-device wrote no $work/report.html"; return 1; }
}

chromium_run() {
    echo "chromium $*" >&2
    timeout "$CHROMIUM_TIMEOUT" chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --user-data-dir="$profile" --no-first-run --disable-extensions "$@"
}

check_screenshot() {
    [ -s "$html" ] || { echo "no report at $html"; return 1; }
    local status=0
    chromium_run --screenshot="$REPO_ROOT/$work/screenshot.png" --window-size="$WIDTH,$HEIGHT" "file://$html" >&2 || status=$?
    [ "$status" -eq 0 ] || { echo "chromium exited $status"; return 1; }
    [ -s "$work/screenshot.png" ] || { echo "chromium wrote no screenshot"; return 1; }
}

check_png() {
    [ -s "$work/screenshot.png" ] || { echo "no screenshot"; return 1; }
    "${helper[@]}" png "$work/screenshot.png" "$WIDTH" "$HEIGHT"
}

check_dom() {
    [ -s "$html" ] || { echo "no report at $html"; return 1; }
    local status=0
    chromium_run --dump-dom "file://$html" > "$work/dom.html" || status=$?
    [ "$status" -eq 0 ] || { echo "chromium --dump-dom exited $status"; return 1; }
    local -a args=(dom "$work/dom.html")
    [ "$frontier" -eq 0 ] || args+=(--frontier)
    "${helper[@]}" "${args[@]}"
}

if [ -z "$html" ]; then
    html="$REPO_ROOT/$work/report.html"
    frontier=1
    check "branchy-device --html writes a report (2,000 samples, local topology on free ports)" check_report_written
fi
check "chromium renders a screenshot of the report" check_screenshot
check "screenshot is a valid ${WIDTH}x${HEIGHT} PNG with the charts painted" check_png
check "rendered DOM has the charts and their marks" check_dom

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
