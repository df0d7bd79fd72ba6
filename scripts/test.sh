#!/usr/bin/env bash
# Runs every test: the unit tests (`swift test` under ThreadSanitizer, live clusters included), then the
# suites e2e.sh, e2e-faults.sh, load.sh, operations.sh, perf-check.sh, import-check.sh, serve-check.sh, k8s-check.sh and
# unprivileged-check.sh on one release build, readme-check.sh (the README's "Use your own model" steps as
# written, in place on CI's fresh clone), and every fuzz target for 15 s in debug and in release
# (fuzz.sh --config both --seconds 10). Installs the Debian packages the checks need. Every suite runs
# even if an earlier one fails; prints a summary and exits non-zero if any failed.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"
no_args "unit tests, then end-to-end checks, then a summary" "$@"

cd "$REPO_ROOT"
command -v swift >/dev/null 2>&1 || die "the 'swift' command is needed but was not found"
ensure_packages openssl:openssl python3:python3
mkdir -p run

echo "== unit tests under ThreadSanitizer (swift test --sanitize=thread)"
# One instrumented debug build in its own folder: a data race fails the run.
unit=0
TSAN_OPTIONS="halt_on_error=1 ${TSAN_OPTIONS:-}" swift test --sanitize=thread --scratch-path .build-tsan || unit=$?
ensure_built   # once (release), so that the suites share BRANCHY_BIN

suites=("e2e:end-to-end checks:end-to-end" "e2e-faults:fault checks:fault checks" "load:load check:load check"
        "operations:operations checks:operations" "perf-check:ONNX Runtime agreement and allocations:ONNX Runtime agreement and allocations"
        "import-check:ONNX import against ONNX Runtime:ONNX import"
        "serve-check:front door (Open Inference Protocol) with Triton's client:front door"
        "readme-check:README, use your own model, from a fresh clone:README's use-your-own-model steps"
        "k8s-check:Kubernetes manifests, offline:Kubernetes manifests" "unprivileged-check:unprivileged run:unprivileged run"
        "fuzz --config both --seconds 10:fuzz targets, 10 s each in debug and in release:fuzz targets")
declare -A status=() counts=()
for s in "${suites[@]}"; do
    IFS=: read -r cmd title _ <<< "$s"
    name="${cmd%% *}"
    echo "== $title (scripts/$name.sh)"
    status[$name]=0
    scripts/$name.sh ${cmd#"$name"} | tee "run/test-$name.out" || status[$name]=$?
    counts[$name]="$(grep -E '^(fuzz: )?[0-9]+ passed, [0-9]+ failed$' "run/test-$name.out" | tail -n 1 || true)"
done

verdict() { if [ "$1" -eq 0 ]; then echo "ok"; else echo "FAILED (exit $1)"; fi; }
failed=$(( unit != 0 ))
echo "== summary"
echo "unit tests (swift test --sanitize=thread): $(verdict "$unit")"
for s in "${suites[@]}"; do
    IFS=: read -r cmd _ label <<< "$s"
    name="${cmd%% *}" c="${counts[${cmd%% *}]#fuzz: }"
    echo "$label (scripts/$name.sh${cmd#"$name"}): $(verdict "${status[$name]}")${c:+, $c}"
    failed=$(( failed + (status[$name] != 0) ))
done
echo "suites: $(( ${#suites[@]} + 1 - failed )) passed, $failed failed"
[ "$failed" -eq 0 ]
