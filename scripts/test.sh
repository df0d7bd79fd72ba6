#!/usr/bin/env bash
# Runs every test: the unit tests (`swift test`, debug build under
# ThreadSanitizer, live clusters included), then the end-to-end checks
# (scripts/e2e.sh, release build, real processes over TLS), the fault checks
# (scripts/e2e-faults.sh), the load check (scripts/load.sh), the operations checks
# (scripts/operations.sh: Prometheus, replica fail-over, reload), the ONNX Runtime
# agreement and allocation checks (scripts/perf-check.sh), the offline check of
# the Kubernetes manifests (scripts/k8s-check.sh, no cluster needed), the nodes run
# as an unprivileged user without capabilities, as the manifests run them
# (scripts/unprivileged-check.sh), and a bounded run of every fuzz target, built in
# debug and in release (scripts/fuzz.sh --config both --seconds 15).
# Installs the Debian packages the checks need when they are missing. Every
# suite runs even if an earlier one fails; exits non-zero if any failed.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() { echo "usage: $(basename "$0")   (unit tests, then end-to-end checks, then a summary)"; }
case "${1:-}" in
    -h|--help) usage; exit 0 ;;
    "") ;;
    *) usage >&2; exit 2 ;;
esac

cd "$REPO_ROOT"
command -v swift >/dev/null 2>&1 || die "the 'swift' command is needed but was not found"
ensure_packages openssl:openssl python3:python3
mkdir -p run

echo "== unit tests under ThreadSanitizer (swift test --sanitize=thread)"
# One debug build, instrumented: every test, the live clusters included, runs under TSan,
# and a data race fails the run. Its own build folder keeps the plain debug build intact.
unit=0
TSAN_OPTIONS="halt_on_error=1 ${TSAN_OPTIONS:-}" swift test --sanitize=thread --scratch-path .build-tsan || unit=$?

ensure_built   # once (release), so the end-to-end scripts share BRANCHY_BIN

echo "== end-to-end checks (scripts/e2e.sh)"
e2e=0
scripts/e2e.sh | tee run/test-e2e.out || e2e=$?
e2e_counts="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' run/test-e2e.out | tail -n 1 || true)"

echo "== fault checks (scripts/e2e-faults.sh)"
faults=0
scripts/e2e-faults.sh | tee run/test-faults.out || faults=$?
faults_counts="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' run/test-faults.out | tail -n 1 || true)"

echo "== load check (scripts/load.sh)"
load=0
scripts/load.sh | tee run/test-load.out || load=$?
load_counts="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' run/test-load.out | tail -n 1 || true)"

echo "== operations checks (scripts/operations.sh)"
ops=0
scripts/operations.sh | tee run/test-operations.out || ops=$?
ops_counts="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' run/test-operations.out | tail -n 1 || true)"

echo "== ONNX Runtime agreement and allocations (scripts/perf-check.sh)"
perf=0
scripts/perf-check.sh | tee run/test-perf.out || perf=$?
perf_counts="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' run/test-perf.out | tail -n 1 || true)"

echo "== Kubernetes manifests, offline (scripts/k8s-check.sh)"
k8s=0
scripts/k8s-check.sh | tee run/test-k8s.out || k8s=$?
k8s_counts="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' run/test-k8s.out | tail -n 1 || true)"

echo "== unprivileged run (scripts/unprivileged-check.sh)"
unpriv=0
scripts/unprivileged-check.sh | tee run/test-unprivileged.out || unpriv=$?
unpriv_counts="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' run/test-unprivileged.out | tail -n 1 || true)"

echo "== fuzz targets, 15 s each in debug and in release (scripts/fuzz.sh)"
fuzz=0
scripts/fuzz.sh --config both --seconds 15 | tee run/test-fuzz.out || fuzz=$?
fuzz_counts="$(grep -E '^fuzz: [0-9]+ passed, [0-9]+ failed$' run/test-fuzz.out | tail -n 1 || true)"

verdict() { if [ "$1" -eq 0 ]; then echo "ok"; else echo "FAILED (exit $1)"; fi; }
suites_failed=$(( (unit != 0) + (e2e != 0) + (faults != 0) + (load != 0) + (ops != 0) + (perf != 0) + (k8s != 0) + (unpriv != 0) + (fuzz != 0) ))
echo "== summary"
echo "unit tests (swift test --sanitize=thread): $(verdict "$unit")"
echo "end-to-end (scripts/e2e.sh): $(verdict "$e2e")${e2e_counts:+, $e2e_counts}"
echo "fault checks (scripts/e2e-faults.sh): $(verdict "$faults")${faults_counts:+, $faults_counts}"
echo "load check (scripts/load.sh): $(verdict "$load")${load_counts:+, $load_counts}"
echo "operations (scripts/operations.sh): $(verdict "$ops")${ops_counts:+, $ops_counts}"
echo "ONNX Runtime agreement and allocations (scripts/perf-check.sh): $(verdict "$perf")${perf_counts:+, $perf_counts}"
echo "Kubernetes manifests (scripts/k8s-check.sh): $(verdict "$k8s")${k8s_counts:+, $k8s_counts}"
echo "unprivileged run (scripts/unprivileged-check.sh): $(verdict "$unpriv")${unpriv_counts:+, $unpriv_counts}"
echo "fuzz targets (scripts/fuzz.sh --config both --seconds 15): $(verdict "$fuzz")${fuzz_counts:+, ${fuzz_counts#fuzz: }}"
echo "suites: $((9 - suites_failed)) passed, $suites_failed failed"
[ "$suites_failed" -eq 0 ]
