# shellcheck shell=bash
# Sourced by scripts/e2e-faults.sh (uses its helpers and variables).
# --- Hardening checks -------------------------------------------------------------------
# Each check function prints its reason on failure and appends its measured figures
# to $work/figures, which run_check shows after the name.

# Every probe ends by itself; `timeout` bounds one that hangs all the same.
hard=(timeout 90 "$bin/branchy-probe")
[ "$ONLY" = faults ] || [ -x "$bin/branchy-probe" ] \
    || die "no executable $bin/branchy-probe for the hardening checks (scripts/build.sh builds it)"
HARD_DEVICE_TIMEOUT=30   # seconds for a device run of the hardening checks (200 samples take 1 or 2)
HARD_CERTS="$(topology_certs_dir "$HARD_TOPO")"

# probe COMMAND ARGS...: runs a branchy-probe probe; its line of figures goes to
# the check's figures, or its reason to standard output when it fails.
probe() {
    local out
    if out="$("${hard[@]}" "$@")"; then
        [ -z "$out" ] || figure "$out"
    else
        echo "${out:-branchy-probe $1 failed}"
        return 1
    fi
}

seconds_since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }'; }

# start_node KEY TOPOLOGY NODE [ULIMIT_OPTIONS]: starts an edge or cloud node from /
# (as node_pid[KEY], with a fresh log node_log[KEY]), under `ulimit ULIMIT_OPTIONS`
# if given (e.g. "-n 256"), and waits until it listens. stop_server KEY stops it.
start_node() {
    local key="$1" topology="$2" name="$3" fds="${4:-}" role listen host port nlog pid waited=0
    role="$(node_field "$topology" "$name" 2)"
    listen="$(node_field "$topology" "$name" 3)"
    host="$(host_of "$listen")"; port="$(port_of "$listen")"
    if port_listening "$host" "$port"; then
        echo "port $port for $name is taken by another process: $(ss -Hltnp "sport = :$port" 2>/dev/null | head -n 1)"
        return 1
    fi
    starts=$((starts + 1))
    nlog="$REPO_ROOT/$work/$key-$starts.log"
    (
        # shellcheck disable=SC2086 # options and value
        [ -z "$fds" ] || ulimit $fds || exit 99
        cd / && exec "$bin/branchy-$role" --topology "$topology" --node "$name"
    ) </dev/null >"$nlog" 2>&1 &
    pid=$!
    started+=("$pid")
    node_pid[$key]=$pid
    node_log[$key]=$nlog
    echo "started $name of $(basename "$topology") (pid $pid${fds:+, ulimit $fds}), log $nlog" >&2
    while ! port_listening "$host" "$port"; do
        if ! proc_running "$pid"; then
            echo "$name of $(basename "$topology") exited before listening on $listen: $(tail -n 1 "$nlog")"
            return 1
        fi
        [ "$waited" -lt $((START_TIMEOUT * 10)) ] || { echo "$name did not listen on $listen within $START_TIMEOUT s"; return 1; }
        sleep 0.1
        waited=$((waited + 1))
    done
}

# node_up KEY TOPOLOGY NODE: start_node unless it runs.
node_up() { server_up "$1" || start_node "$@"; }

# start_device_of PREFIX TOPOLOGY NODE [OPTIONS]: starts a device node from / in the
# background (dev_pid), with its data set from the topology; finish_device waits.
start_device_of() {
    local prefix="$REPO_ROOT/$1" topology="$2" node="$3"
    shift 3
    (cd / && exec "$bin/branchy-device" --topology "$topology" --node "$node" \
        --report "$prefix.json" --predictions "$prefix.jsonl" "$@") </dev/null >"$prefix.out" 2>"$prefix.err" &
    dev_pid=$!
    started+=("$dev_pid")
    echo "started $node of $(basename "$topology") (pid $dev_pid) $*" >&2
}

# A device of $HARD_TOPO through its edge and cloud: PREFIX SAMPLES.
device_answers_all() {
    node_up hardening-cloud "$HARD_TOPO" cloud && node_up hardening-edge "$HARD_TOPO" edge || return 1
    start_device_of "$1" "$HARD_TOPO" device-1 --limit "$2"
    DEVICE_TIMEOUT="$HARD_DEVICE_TIMEOUT" finish_device
    [ "$dev_status" -eq 0 ] || { why_device "$1"; return 1; }
    probe device-report "$1.json" "$1.jsonl" "$2" answered
}

model_fingerprint=""
fingerprint() {
    if [ -z "$model_fingerprint" ]; then
        model_fingerprint="$("$bin/branchy" info --model "$(topology_path "$HARD_TOPO" model)" 2>&1 | awk '$1 == "fingerprint" { print $2 }')"
    fi
    [ -n "$model_fingerprint" ] || { echo "no model fingerprint from 'branchy info'"; return 1; }
    echo "$model_fingerprint"
}

# warnings LOG FROM: warning lines of a node log after line FROM.
warnings() { awk -v from="$2" 'NR > from && $2 == "warning"' "$1" | wc -l; }
lines_of() { wc -l < "$1"; }

check_hardening_certs() {
    local topology
    for topology in "$HARD_TOPO" "$TIMEOUTS_TOPO" "$FD_TOPO"; do
        [ "$(topology_certs_dir "$topology")" = "$HARD_CERTS" ] || { echo "$topology does not use $HARD_CERTS"; return 1; }
        scripts/gen-certs.sh "$topology" >&2 || { echo "could not make the certificates for $topology"; return 1; }
    done
    probe sans "$HARD_CERTS" || return 1
    # The fault checks' own certificates, when they were made above.
    [ ! -f "$(topology_certs_dir "$TOPO")/ca.pem" ] || probe sans "$(topology_certs_dir "$TOPO")"
}

# 1. An impostor on the edge's port, with another node's certificate from the same CA.
check_impostor() {
    stop_server hardening-edge TERM || true
    local listen host port dir="$work/impostor" cert ipid waited
    listen="$(node_field "$HARD_TOPO" edge 3)"
    host="$(host_of "$listen")"; port="$(port_of "$listen")"
    mkdir -p "$dir"
    for cert in cloud device-2; do
        : > "$dir/$cert.jsonl"
        if port_listening "$host" "$port"; then echo "port $port is taken by another process"; return 1; fi
        "${hard[@]}" impostor "$host" "$port" "$HARD_CERTS/$cert.pem" "$HARD_CERTS/$cert-key.pem" "$HARD_CERTS/ca.pem" \
            "$dir/$cert.jsonl" 2>>"$log" &
        ipid=$!
        started+=("$ipid")
        waited=0
        until port_listening "$host" "$port"; do
            proc_running "$ipid" || { echo "the impostor did not start"; return 1; }
            [ "$waited" -lt 100 ] || { echo "the impostor did not listen within 10 s"; return 1; }
            sleep 0.1; waited=$((waited + 1))
        done
        start_device_of "$dir/device-vs-$cert" "$HARD_TOPO" device-1 --limit 50 --connect-timeout 2
        DEVICE_TIMEOUT="$HARD_DEVICE_TIMEOUT" finish_device
        sleep 0.2   # the impostor notes the last close
        stop_children "$log" "$ipid"
        [ "$dev_status" -eq 0 ] || { why_device "$REPO_ROOT/$dir/device-vs-$cert"; return 1; }
        local verdict answers
        verdict="$("${hard[@]}" impostor-verdict "$dir/$cert.jsonl" 2>>"$log")" \
            || { echo "impostor with the $cert certificate: $verdict"; return 1; }
        answers="$("${hard[@]}" device-report "$dir/device-vs-$cert.json" "$dir/device-vs-$cert.jsonl" 50 local 2>>"$log")" \
            || { echo "device against the impostor with the $cert certificate: $answers"; return 1; }
        figure "$cert certificate: $verdict, $answers"
        grep -m 1 "presented a certificate" "$dir/device-vs-$cert.err" >&2 || true
    done
}

# 2. Connections that never authenticate, and one that goes idle, are closed in time.
check_timeouts() {
    node_up hardening-timeouts "$TIMEOUTS_TOPO" edge || return 1
    local fp listen handshake idle
    fp="$(fingerprint)" || { echo "$fp"; return 1; }
    listen="$(node_field "$TIMEOUTS_TOPO" edge 3)"
    handshake="$(node_key "$TIMEOUTS_TOPO" edge handshakeTimeoutMs)"
    idle="$(node_key "$TIMEOUTS_TOPO" edge idleTimeoutMs)"
    [ -n "$handshake" ] && [ -n "$idle" ] || { echo "$TIMEOUTS_TOPO gives the edge no handshakeTimeoutMs and idleTimeoutMs"; return 1; }
    probe timeouts "$(host_of "$listen")" "$(port_of "$listen")" "$HARD_CERTS/ca.pem" "$HARD_CERTS" device-1 edge "$fp" \
        "$handshake" "$idle" 750
    local status=$?
    stop_server hardening-timeouts TERM || true
    return "$status"
}

# 3. An edge with 256 descriptors (soft = hard) while hundreds of TCP connections that
# never authenticate are held against it: a device still gets in and is served.
FD_LIMIT=256
check_fd_limit() {
    stop_server hardening-fd-edge TERM || true
    node_up hardening-fd-cloud "$FD_TOPO" cloud || return 1
    local edge limits listen count
    # With room above the soft limit, the node raises it to the hard limit.
    start_node hardening-fd-edge "$FD_TOPO" edge "-Sn $FD_LIMIT" || return 1
    limits="$(awk '/^Max open files/ { print $4 "/" $5 }' "/proc/${node_pid[hardening-fd-edge]}/limits")"
    stop_server hardening-fd-edge TERM || true
    [ "${limits%/*}" = "${limits#*/}" ] && [ "${limits%/*}" != "$FD_LIMIT" ] \
        || { echo "started with a soft descriptor limit of $FD_LIMIT, the edge runs with soft/hard $limits"; return 1; }
    figure "soft descriptor limit raised from $FD_LIMIT to ${limits%/*}"
    # Without: soft = hard = FD_LIMIT.
    start_node hardening-fd-edge "$FD_TOPO" edge "-n $FD_LIMIT" || return 1
    edge="${node_pid[hardening-fd-edge]}"
    limits="$(awk '/^Max open files/ { print $4 "/" $5 }' "/proc/$edge/limits")"
    [ "$limits" = "$FD_LIMIT/$FD_LIMIT" ] || { echo "the edge runs with descriptor limits $limits, not $FD_LIMIT/$FD_LIMIT"; return 1; }
    listen="$(node_field "$FD_TOPO" edge 3)"
    for count in 300 1000; do
        fd_run "$(host_of "$listen")" "$(port_of "$listen")" "$count" "$edge" || return 1
    done
    local accept
    accept="$(grep -c 'accept failed' "${node_log[hardening-fd-edge]}")" || true
    figure "edge log: ${accept:-0} accept-failure lines"
    stop_server hardening-fd-edge TERM || true
    stop_server hardening-fd-cloud TERM || true
}

# fd_run HOST PORT COUNT EDGE_PID: one round of check_fd_limit.
fd_run() {
    local host="$1" port="$2" count="$3" edge="$4" prefix="$work/fd-$count" hpid waited=0 t0 connect="" c0 c1 cpu
    "${hard[@]}" hold "$host" "$port" "$count" 20 "$prefix.status" 2>>"$log" &
    hpid=$!
    started+=("$hpid")
    until [ -s "$prefix.status" ]; do
        proc_running "$hpid" || { echo "the connection holder ended before it opened its connections"; return 1; }
        [ "$waited" -lt 100 ] || { echo "the connection holder did not open its connections within 10 s"; return 1; }
        sleep 0.1; waited=$((waited + 1))
    done
    sleep 0.5   # let the first wave reach the edge
    echo "holding $(tail -n 1 "$prefix.status")" >&2
    t0="$(date +%s.%N)"
    waited=0
    start_device_of "$prefix-device" "$FD_TOPO" device --limit 200
    while [ -z "$connect" ] && proc_running "$dev_pid" && [ "$waited" -lt 1000 ]; do
        grep -q "connected to edge '" "$prefix-device.err" 2>/dev/null && connect="$(seconds_since "$t0")"
        sleep 0.02
        waited=$((waited + 1))
    done
    DEVICE_TIMEOUT="$HARD_DEVICE_TIMEOUT" finish_device
    [ -n "$connect" ] || ! grep -q "connected to edge '" "$prefix-device.err" || connect="$(seconds_since "$t0")"
    echo "$count held: the device connected after ${connect:-never} s; holder $(tail -n 1 "$prefix.status")" >&2
    c0="$(cpu_ticks "$edge")" || { echo "the edge is gone after $count held connections"; return 1; }
    sleep 3
    c1="$(cpu_ticks "$edge")" || { echo "the edge is gone after $count held connections"; return 1; }
    cpu="$(awk -v a="$c0" -v b="$c1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", 100 * (b - a) / hz / 3 }')"
    waited=0
    while proc_running "$hpid" && [ "$waited" -lt 400 ]; do sleep 0.1; waited=$((waited + 1)); done
    stop_children "$log" "$hpid"
    local held answers
    held="$("${hard[@]}" hold-verdict "$prefix.status" "$count" 10 2>>"$log")" || { echo "$count held: $held"; return 1; }
    figure "$count held: device connected in ${connect:-never} s, edge CPU ${cpu}% over 3 s, $held"
    [ "$dev_status" -eq 0 ] || { echo "$count held: $(why_device "$REPO_ROOT/$prefix-device")"; return 1; }
    answers="$("${hard[@]}" device-report "$prefix-device.json" "$prefix-device.jsonl" 200 answered 2>>"$log")" \
        || { echo "$count held: $answers"; return 1; }
    [ -n "$connect" ] || { echo "$count held: the device never logged 'connected to'"; return 1; }
    awk -v c="$connect" 'BEGIN { exit !(c < 1.0) }' || { echo "$count held: the device connected only after $connect s"; return 1; }
    awk -v c="$cpu" 'BEGIN { exit !(c < 10) }' || { echo "$count held: the edge used ${cpu}% CPU over 3 s after the run"; return 1; }
}

# Per-peer connection cap.
check_peer_cap() {
    node_up hardening-edge "$HARD_TOPO" edge || return 1
    local fp listen cap
    fp="$(fingerprint)" || { echo "$fp"; return 1; }
    listen="$(node_field "$HARD_TOPO" edge 3)"
    cap="$(node_key "$HARD_TOPO" edge maxConnectionsPerPeer)"
    probe peer-cap "$(host_of "$listen")" "$(port_of "$listen")" "$HARD_CERTS/ca.pem" "$HARD_CERTS" device-16 edge "$fp" "${cap:-8}"
}

# 4. Many authenticated connections each pinning most of a 4 MiB frame.
check_input_budget() {
    node_up hardening-cloud "$HARD_TOPO" cloud && node_up hardening-edge "$HARD_TOPO" edge || return 1
    local fp listen total per_peer
    fp="$(fingerprint)" || { echo "$fp"; return 1; }
    listen="$(node_field "$HARD_TOPO" edge 3)"
    total="$(node_key "$HARD_TOPO" edge inputBudgetBytes)"
    per_peer="$(node_key "$HARD_TOPO" edge peerInputBudgetBytes)"
    probe budget "$(host_of "$listen")" "$(port_of "$listen")" "$HARD_CERTS/ca.pem" "$HARD_CERTS" edge "$fp" \
        "${node_pid[hardening-edge]}" 60 4 "${total:-67108864}" "${per_peer:-16777216}" 256 || return 1
    device_answers_all "$work/budget-device" 200
}

# 5. model.json sizes that cannot be allocated.
check_model_sizes() {
    local variant dir out status field
    for variant in width input; do
        dir="$REPO_ROOT/$work/model-$variant"
        mkdir -p "$dir"
        "${hard[@]}" model-bomb "$(topology_path "$HARD_TOPO" model)" "$dir/model" "$variant" >/dev/null || { echo "could not make the $variant model"; return 1; }
        case "$variant" in width) field=out ;; input) field=input ;; esac
        "${hard[@]}" measure 20 "$dir/eval.json" "$bin/branchy" eval --model "$dir/model" --dataset "$(topology_path "$HARD_TOPO" dataset)" --limit 10 >"$dir/eval.out" 2>"$dir/eval.err"
        model_refused "$variant" "branchy eval" "$dir/eval" "$field" || return 1
        sed -e "s|^model:.*|model: $dir/model|" -e "s|^certs:.*|certs: $HARD_CERTS|" \
            -e "s|^dataset:.*|dataset: $(topology_path "$HARD_TOPO" dataset)|" \
            -e 's|127.0.0.1:7441|127.0.0.1:7447|' -e 's|127.0.0.1:7442|127.0.0.1:7448|' "$HARD_TOPO" > "$dir/topology.yaml"
        (cd / && exec "${hard[@]}" measure 20 "$dir/edge.json" "$bin/branchy-edge" --topology "$dir/topology.yaml" --node edge) \
            >"$dir/edge.out" 2>"$dir/edge.err"
        model_refused "$variant" "branchy-edge" "$dir/edge" "$field" || return 1
    done
}

# measured FILE: "STATUS SECONDS PEAK_RSS_MB" from the JSON object `branchy-probe measure` wrote.
measured() {
    sed -n 's/^{"status": "\{0,1\}\([^",]*\)"\{0,1\}, "seconds": \([0-9.]*\), "maxRssMB": \([0-9.]*\)}$/\1 \2 \3/p' "$1"
}

# model_refused VARIANT WHAT PREFIX FIELD: the run measured into PREFIX.json exited 1
# with an error naming FIELD.
model_refused() {
    local status seconds rss last
    read -r status seconds rss < <(measured "$3.json") \
        || { echo "$2 ($1): no measurement"; return 1; }
    last="$(grep -v '^[[:space:]]*$' "$3.err" | tail -n 1)"
    echo "$2 ($1): exit $status after $seconds s, peak RSS $rss MB: $last" >&2
    figure "$1: $2 exit $status in $seconds s"
    [ "$status" != timeout ] || { echo "$2 ($1 too large) still ran after 20 s"; return 1; }
    [ "$status" -eq 1 ] || { echo "$2 ($1 too large) exited $status, not 1: ${last:0:200}"; return 1; }
    grep -Eqw -- "$4" <<< "$last" || { echo "$2 ($1 too large): the error does not name '$4': ${last:0:200}"; return 1; }
}

# 6. A gzip IDX file whose header announces 10 images but which inflates to 1 GiB.
check_gzip_bomb() {
    local dir="$work/gzip-bomb" status seconds rss last
    probe gzip-bomb "$dir" $((1 << 30)) || return 1
    "${hard[@]}" measure 30 "$dir/eval.json" "$bin/branchy" eval --model "$(topology_path "$HARD_TOPO" model)" \
        --dataset "$dir" --limit 10 >"$dir/eval.out" 2>"$dir/eval.err"
    read -r status seconds rss < <(measured "$dir/eval.json") \
        || { echo "no measurement of branchy eval"; return 1; }
    last="$(grep -v '^[[:space:]]*$' "$dir/eval.err" | tail -n 1)"
    echo "branchy eval on the gzip bomb: exit $status after $seconds s, peak RSS $rss MB: $last" >&2
    figure "branchy eval exit $status in $seconds s, peak RSS $rss MB"
    [ "$status" != timeout ] || { echo "branchy eval ran for 30 s"; return 1; }
    [ "$status" -ne 0 ] || { echo "branchy eval accepted the file"; return 1; }
    [ "$status" -eq 1 ] || { echo "branchy eval exited $status, not 1: ${last:0:200}"; return 1; }
    awk -v r="$rss" 'BEGIN { exit !(r < 200) }' || { echo "branchy eval peaked at $rss MB RSS, not under 200 MB"; return 1; }
    awk -v s="$seconds" 'BEGIN { exit !(s < 3) }' || { echo "branchy eval took $seconds s to fail, not under 3 s"; return 1; }
    grep -q 't10k-images-idx3-ubyte' <<< "$last" || { echo "the error does not name the images file: ${last:0:200}"; return 1; }
}

# 7. Untrusted text in logs, and warnings that a peer can trigger at will.
FORGED_PREFIX='2026-11-28T00:00:00 critical edge : forged'
check_log_injection() {
    # A fresh edge, so that earlier checks' warnings do not count against the rate limit.
    stop_server hardening-edge TERM || true
    node_up hardening-cloud "$HARD_TOPO" cloud && node_up hardening-edge "$HARD_TOPO" edge || return 1
    local fp listen host port elog mark n_cycles n_refused
    fp="$(fingerprint)" || { echo "$fp"; return 1; }
    listen="$(node_field "$HARD_TOPO" edge 3)"
    host="$(host_of "$listen")"; port="$(port_of "$listen")"
    elog="${node_log[hardening-edge]}"
    sleep 0.5   # the edge's link to the cloud is up

    mark="$(lines_of "$elog")"
    "${hard[@]}" cycles "$host" "$port" "$HARD_CERTS/ca.pem" "$HARD_CERTS" device-1 edge 200 >"$work/cycles.out" 2>>"$log" \
        || { tail -n 1 "$work/cycles.out"; return 1; }
    sleep 0.5
    n_cycles="$(warnings "$elog" "$mark")"
    figure "200 TLS closes without close_notify: $n_cycles warning lines"

    mark="$(lines_of "$elog")"
    probe inject "$host" "$port" "$HARD_CERTS/ca.pem" "$HARD_CERTS" device-1 edge "$fp" \
        "device\\n$FORGED_PREFIX\\x1b[31m\\x00\\\\" || return 1
    sleep 0.3
    probe log-escaped "$elog" "$mark" "device\\n$FORGED_PREFIX\\u{1B}[31m\\u{0}\\\\" "$FORGED_PREFIX" || return 1

    mark="$(lines_of "$elog")"
    "${hard[@]}" refused-hellos "$host" "$port" "$HARD_CERTS/ca.pem" "$HARD_CERTS" device-1 edge "$fp" 30 \
        >"$work/refused.out" 2>>"$log" || { tail -n 1 "$work/refused.out"; return 1; }
    sleep 0.3
    n_refused="$(warnings "$elog" "$mark")"
    figure "30 refused hellos: $n_refused warning lines"
    [ "$n_cycles" -lt 5 ] || { echo "200 closes without close_notify logged $n_cycles warning lines"; return 1; }
    [ "$n_refused" -le 10 ] || { echo "30 refused hellos logged $n_refused warning lines: not rate-limited"; return 1; }
    proc_running "${node_pid[hardening-edge]}" || { echo "the edge is gone"; return 1; }
}
