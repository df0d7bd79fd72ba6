#!/usr/bin/env bash
# Builds the libFuzzer targets of Fuzz/ (-sanitize=fuzzer,address; debug, release or both: the optimised
# build must keep every check) and runs each, bounded, on a scratch copy of its seed corpus
# (Fuzz/Corpus/<target>/). Prints per target and configuration the executions, libFuzzer's final `cov:`
# and `ft:`, and pass or fail; exits non-zero if any crashed, hung, ran out of memory or leaked. Each run
# writes (corpora, logs, reproducers) to run/fuzz/<config>/<target>/, afresh.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

all_targets=(frame hello infer-request infer-result safetensors model-spec topology idx onnx oip-request)

usage() {
    cat <<EOF
usage: $(basename "$0") [--config debug|release|both] [--seconds N] [--runs N] [--timeout S] [--rss-mb M] [--jobs J] [--no-build] [TARGET...]
  --config C    build configuration of the targets: debug (default), release, or both (each target runs in each)
  --seconds N   stop each target after N seconds (-max_total_time; default 30 unless --runs is given)
  --runs N      stop each target after N executions (-runs)
  --timeout S   an input that takes longer than S seconds counts as a hang (default 10)
  --rss-mb M    memory limit per target in MB (-rss_limit_mb, also the largest single malloc; default 2048)
  --jobs J      run J targets at the same time (default: 2, or 1 on a single core)
  --no-build    use the executables of an earlier build
targets: ${all_targets[*]} (default: all)
EOF
}

cores="$(nproc 2>/dev/null || echo 1)"
seconds="" runs="" timeout=10 rss_mb=2048 jobs=$((cores >= 2 ? 2 : 1)) build=1 targets=() config=debug
number() { [[ "${2:-}" =~ ^[0-9]+$ ]] || die "$1 needs a whole number, got '${2:-}'"; }
while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --config)
            case "${2:-}" in debug|release|both) config="$2" ;; *) die "--config takes debug, release or both, got '${2:-}'" ;; esac
            shift 2 ;;
        --seconds) number "$1" "${2:-}"; seconds="$2"; shift 2 ;;
        --runs) number "$1" "${2:-}"; runs="$2"; shift 2 ;;
        --timeout) number "$1" "${2:-}"; timeout="$2"; shift 2 ;;
        --rss-mb) number "$1" "${2:-}"; rss_mb="$2"; shift 2 ;;
        --jobs) number "$1" "${2:-}"; jobs="$2"; shift 2 ;;
        --no-build) build=0; shift ;;
        -*) usage >&2; exit 2 ;;
        *)
            [[ " ${all_targets[*]} " == *" $1 "* ]] || die "unknown target '$1' (targets: ${all_targets[*]})"
            targets+=("$1"); shift ;;
    esac
done
[ "${#targets[@]}" -gt 0 ] || targets=("${all_targets[@]}")
[ -n "$seconds$runs" ] || seconds=30
[ "$jobs" -ge 1 ] || die "--jobs must be at least 1"

cd "$REPO_ROOT"
command -v swift >/dev/null 2>&1 || die "the 'swift' command is needed but was not found"
out="$REPO_ROOT/run/fuzz"
mkdir -p "$out"

# One product at a time (without --product, swift build would also build the seed generator, which has a
# main of its own), each configuration in its own build folder under Fuzz/.
case "$config" in both) configs=(debug release) ;; *) configs=("$config") ;; esac
flags_of() { printf '%s\n' -c "$1" --package-path Fuzz --scratch-path "Fuzz/.build-$1" -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library; }
declare -A bins
for c in "${configs[@]}"; do
    mapfile -t flags < <(flags_of "$c")
    if [ "$build" -eq 1 ]; then
        say "building ${#targets[@]} fuzz target(s) ($c, -sanitize=fuzzer,address); log: run/fuzz/build-$c.log"
        start=$SECONDS
        : > "$out/build-$c.log"
        for t in "${targets[@]}"; do
            if ! swift build "${flags[@]}" --product "fuzz-$t" >> "$out/build-$c.log" 2>&1; then
                grep -v 'Cannot export local symbol' "$out/build-$c.log" | tail -n 30 >&2
                die "building fuzz-$t ($c) failed (see run/fuzz/build-$c.log)"
            fi
        done
        say "built in $((SECONDS - start)) s"
    fi
    bins[$c]="$(swift build "${flags[@]}" --show-bin-path)"
done

# fuzz_one CONFIG TARGET: runs one target; its summary line goes to run/fuzz/CONFIG/TARGET/summary.
fuzz_one() {
    local c="$1" t="$2" status=0
    local dir="$out/$c/$t" exe="${bins[$c]}/fuzz-$t"
    rm -rf "$dir"
    mkdir -p "$dir/corpus"
    if [ ! -x "$exe" ]; then
        printf '%s\tFAIL\t?\t?\t?\t0\tno executable %s (build first)\n' "$t/$c" "$exe" > "$dir/summary"
        return
    fi
    cp -R "Fuzz/Corpus/$t/." "$dir/corpus/"
    local args=(-timeout="$timeout" -rss_limit_mb="$rss_mb" -print_final_stats=1
                -artifact_prefix="$dir/" -close_fd_mask=1)
    [ -n "$seconds" ] && args+=(-max_total_time="$seconds")
    [ -n "$runs" ] && args+=(-runs="$runs")
    [ -f "Fuzz/Dictionaries/$t.dict" ] && args+=(-dict="Fuzz/Dictionaries/$t.dict")
    local start=$SECONDS
    # Swift's backtracer reads the crashed thread's stack, which ASan reports as a bad access instead of
    # the real failure: crashes are left to libFuzzer. Fuzz/lsan.supp lists known leaks outside Branchy.
    SWIFT_BACKTRACE="${SWIFT_BACKTRACE:-enable=no}" ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" \
        LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$REPO_ROOT/Fuzz/lsan.supp}" "$exe" "${args[@]}" "$dir/corpus" > "$dir/fuzz.log" 2>&1 || status=$?
    local elapsed=$((SECONDS - start))
    # Scratch folders (/dev/shm/branchy-fuzz-TARGET-PID) that a crashed process left behind.
    local scratch
    for scratch in /dev/shm/branchy-fuzz-"$t"-* "${TMPDIR:-/tmp}"/branchy-fuzz-"$t"-*; do
        [ -d "$scratch" ] && ! kill -0 "${scratch##*-}" 2>/dev/null && rm -rf "$scratch"
    done
    local stats execs cov ft
    stats="$(grep -E '^#[0-9]+' "$dir/fuzz.log" | tail -n 1 || true)"
    execs="$(awk -F': *' '/^stat::number_of_executed_units:/ { print $2 }' "$dir/fuzz.log" | tail -n 1)"
    [ -n "$execs" ] || execs="$(sed -nE 's/^#([0-9]+).*/\1/p' <<<"$stats")"
    cov="$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$stats")"
    ft="$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$stats")"
    local verdict="ok" note=""
    if [ "$status" -ne 0 ]; then
        verdict="FAIL"
        local artifact
        artifact="$(ls -t "$dir" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' | head -n 1 || true)"
        note="exit $status"
        [ -n "$artifact" ] && note+=", reproducer run/fuzz/$c/$t/$artifact"
        note+=", log run/fuzz/$c/$t/fuzz.log"
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t/$c" "$verdict" "${execs:-?}" "${cov:-?}" "${ft:-?}" "$elapsed" "$note" > "$dir/summary"
}

limit="${seconds:+${seconds} s}${seconds:+${runs:+ or }}${runs:+${runs} runs}"
say "fuzzing ${#targets[@]} target(s) in ${configs[*]}, each for $limit, $jobs at a time; output in run/fuzz/<config>/<target>/"
running=0
for c in "${configs[@]}"; do
    for t in "${targets[@]}"; do
        if [ "$running" -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
        fuzz_one "$c" "$t" &
        running=$((running + 1))
    done
done
wait

passed=0 failed=0
printf '%-22s %-6s %12s %7s %8s %6s  %s\n' target result executions cov ft time notes
for c in "${configs[@]}"; do
    for t in "${targets[@]}"; do
        if [ -f "$out/$c/$t/summary" ]; then
            IFS=$'\t' read -r name verdict execs cov ft elapsed note < "$out/$c/$t/summary"
        else
            name="$t/$c" verdict=FAIL execs="?" cov="?" ft="?" elapsed="?" note="the run did not finish (see run/fuzz/$c/$t/)"
        fi
        printf '%-22s %-6s %12s %7s %8s %5ss  %s\n' "$name" "$verdict" "$execs" "$cov" "$ft" "$elapsed" "$note"
        if [ "$verdict" = ok ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    done
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
