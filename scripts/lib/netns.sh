# shellcheck shell=bash
# Network namespaces, veth links and link shaping (root); source it after common.sh.
#   netns_create NAME                      a namespace with its loopback up
#   netns_link NS_A IF_A IP_A NS_B IF_B IP_B   a veth pair between two namespaces (IPs as CIDR)
#   netns_bridge NS BRIDGE IP|-            a bridge inside NS, up
#   netns_attach NS IF NS_BR BRIDGE_IF BRIDGE IP   a veth from NS (IF, IP) to a port of BRIDGE in NS_BR
#   netns_route NS DEST VIA; netns_forwarding NS; netns_listening NS PORT
#   netns_etc NS FILE                      standard input to /etc/netns/NS/FILE, which `ip netns exec NS`
#                                          puts over /etc/FILE for what it starts afterwards
#   netns_shape NS IF RATE DELAY LOSS      shapes what leaves NS through IF (`-` or 0: none)
#   netns_cleanup PREFIX                   ends every process in the namespaces PREFIX*, deletes them (their
#                                          veths, qdiscs and rules go too) and the files /etc/netns/PREFIX*
#   netns_trap NAME                        on exit: stops $device_pid and `started`, then netns_cleanup $PREFIX
# Shaping without sch_netem (which kernels may lack): the rate is a tbf root qdisc of IF; loss an iptables
# rule in NS's mangle POSTROUTING that drops packets leaving IF at random; the delay an NFQUEUE rule at
# the other end of the link (mangle PREROUTING of the peer namespace) whose packets
# scripts/lib/netns_delay.py, inside that namespace, accepts DELAY after they arrived. The delay sits at
# the receiving end because a packet held on the sending host still counts against its socket, and TCP
# small queues would throttle the sender to about 1 ms of data in flight. Lost, rate-limited, then
# delayed: for a fixed delay the same pipe as netem with a tbf child; shaping both ends shapes both
# directions. Delayer logs and the recorded peers go to $NETNS_STATE_DIR (default run/netns).

NETNS_STATE_DIR="${NETNS_STATE_DIR:-$REPO_ROOT/run/netns}"
NETNS_ETC_MARK=.made-by-branchy-scripts   # in /etc/netns when netns_etc made that folder

netns_require() {
    [ "$(id -u)" -eq 0 ] || die "network namespaces need root"
    ensure_packages ip:iproute2 tc:iproute2 iptables:iptables python3:python3
}
netns_create() { ip netns add "$1" && ip -n "$1" link set lo up; }
# netns_veth NS_A IF_A IP_A NS_B IF_B IP_B KIND_A: a veth pair, each end up, with its peer recorded.
netns_veth() {
    ip link add "$2" netns "$1" type veth peer name "$5" netns "$4" || return 1
    local ns ifc ip
    for ns in "$1 $2 $3" "$4 $5 $6"; do
        read -r ns ifc ip <<< "$ns"
        [ "$ip" = - ] || ip -n "$ns" addr add "$ip" dev "$ifc"
        ip -n "$ns" link set "$ifc" up
    done
    mkdir -p "$NETNS_STATE_DIR/peers"
    echo "$4 $5 $7" > "$NETNS_STATE_DIR/peers/$1.$2"
    echo "$1 $2 veth" > "$NETNS_STATE_DIR/peers/$4.$5"
}
netns_link() { netns_veth "$@" veth; }
netns_attach() { ip -n "$3" link set "$5" up && netns_veth "$1" "$2" "${6:--}" "$3" "$4" - bridge-port && ip -n "$3" link set "$4" master "$5"; }
netns_bridge() {
    ip -n "$1" link add "$2" type bridge || return 1
    [ -z "$3" ] || [ "$3" = - ] || ip -n "$1" addr add "$3" dev "$2"
    ip -n "$1" link set "$2" up
    # Bridged IPv4 packets pass the iptables chains, so that a delay can hold them.
    ip netns exec "$1" sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || say "netns_bridge: no bridge netfilter in $1: delays on its ports will not apply"
}
netns_route() { ip -n "$1" route replace "$2" via "$3"; }
netns_forwarding() { ip netns exec "$1" sysctl -qw net.ipv4.ip_forward=1; }
netns_listening() { [ -n "$(ip netns exec "$1" ss -Hltn "sport = :$2" 2>/dev/null)" ]; }
netns_etc() {
    case "$2" in ''|*/*|.*) say "netns_etc: '$2' is not a file name of /etc"; return 1 ;; esac
    # A folder made here is marked, so that netns_cleanup removes it again once empty (after a crash too).
    [ -d /etc/netns ] || { mkdir -p /etc/netns && : > "/etc/netns/$NETNS_ETC_MARK"; } || return 1
    mkdir -p "/etc/netns/$1" && cat > "/etc/netns/$1/$2"
}
# netns_rate_bits RATE (1mbit, 500kbit, 2mbps, 100000) in bits/s, 0 if bad; netns_delay_ms DELAY (5ms,
# 0.04s, 40, 500us) in ms, -1 if bad; netns_loss_prob LOSS (0.5% or 0.005), -1 if bad.
netns_rate_bits() {
    awk -v r="$1" 'BEGIN { r = tolower(r); n = r + 0; u = r; sub(/^[0-9.]+/, "", u)
        split("bit 1 kbit 1e3 mbit 1e6 gbit 1e9 bps 8 kbps 8e3 mbps 8e6 gbps 8e9", a); m[""] = 1; for (i = 1; i < 16; i += 2) m[a[i]] = a[i + 1]
        printf "%.0f\n", (u in m && n > 0) ? n * m[u] : 0 }'
}
netns_delay_ms() { awk -v d="$1" 'BEGIN { d = tolower(d); n = d + 0; u = d; sub(/^[0-9.]+/, "", u); m["ms"] = 1; m[""] = 1; m["s"] = 1000; m["us"] = 0.001
    if (u in m) printf "%g\n", n * m[u]; else print -1 }'; }
netns_loss_prob() { awk -v l="$1" 'BEGIN { p = l + 0; if (l ~ /%$/) p /= 100; if (p < 0 || p > 1) print -1; else printf "%.6f\n", p }'; }

netns_shape() {
    local ns="$1" dev="$2" rate="$3" bits ms prob
    bits="$(netns_rate_bits "${rate:-0}")" ms="$(netns_delay_ms "${4:-0}")" prob="$(netns_loss_prob "${5:-0}")"
    [ "$rate" = - ] || [ "$rate" = 0 ] || [ "$bits" -gt 0 ] || { say "netns_shape: bad rate '$rate'"; return 1; }
    [ "$ms" != -1 ] || { say "netns_shape: bad delay '$4'"; return 1; }
    [ "$prob" != -1 ] || { say "netns_shape: bad loss '$5'"; return 1; }
    # Burst: two full frames at least, and 10 ms at the rate; the queue holds up to 1 s of traffic.
    [ "$bits" -eq 0 ] || tc -n "$ns" qdisc replace dev "$dev" root handle 1: tbf rate "${bits}bit" \
        burst "$(( bits / 800 > 3200 ? bits / 800 : 3200 ))" latency 1000ms || return 1
    ! awk -v p="$prob" 'BEGIN { exit !(p > 0) }' \
        || ip netns exec "$ns" iptables -w -t mangle -A POSTROUTING -o "$dev" -m statistic --mode random --probability "$prob" -j DROP || return 1
    awk -v m="$ms" 'BEGIN { exit !(m > 0) }' || return 0
    local peer_ns peer_if kind match queue ready pid
    read -r peer_ns peer_if kind < "$NETNS_STATE_DIR/peers/$ns.$dev" 2>/dev/null || { say "netns_shape: no peer recorded for $ns/$dev"; return 1; }
    if [ "$kind" = bridge-port ]; then match=(-m physdev --physdev-in "$peer_if"); else match=(-i "$peer_if"); fi
    queue="$(ip netns exec "$peer_ns" cat "/sys/class/net/$peer_if/ifindex")" || return 1
    ready="$NETNS_STATE_DIR/$peer_ns-$peer_if.ready"
    rm -f "$ready"
    # From a subshell, so that it is no child of the caller; netns_cleanup ends it with its namespace.
    pid="$( (ip netns exec "$peer_ns" python3 "$REPO_ROOT/scripts/lib/netns_delay.py" --queue "$queue" --delay-ms "$ms" --ready "$ready" \
        </dev/null >"${ready%.ready}.log" 2>&1 & echo $!) )"
    started_delayer() { [ -s "$ready" ] || ! proc_running "$pid"; }
    wait_for 10 started_delayer && [ -s "$ready" ] || { say "netns_shape: the delayer for $peer_ns/$peer_if did not start: $(tail -n 1 "${ready%.ready}.log")"; return 1; }
    ip netns exec "$peer_ns" iptables -w -t mangle -A PREROUTING "${match[@]}" -j NFQUEUE --queue-num "$queue"
}

netns_list() { ip netns list 2>/dev/null | awk -v p="$1" 'index($1, p) == 1 { print $1 }'; }
netns_cleanup() {
    local prefix="$1" ns pid
    [ -n "$prefix" ] || { say "netns_cleanup: an empty prefix would match every namespace"; return 1; }
    for ns in $(netns_list "$prefix"); do
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -CONT "$pid"; kill -TERM "$pid"; done 2>/dev/null
        wait_for 5 eval '[ -z "$(ip netns pids "$ns" 2>/dev/null)" ]' || true
        for pid in $(ip netns pids "$ns" 2>/dev/null); do say "netns_cleanup: killing pid $pid in $ns, still running 5 s after SIGTERM"; kill -KILL "$pid" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null || say "netns_cleanup: could not delete $ns"
        rm -f "$NETNS_STATE_DIR/peers/$ns."* "$NETNS_STATE_DIR/$ns-"*.ready
    done
    # Also the files of namespaces already gone, and /etc/netns itself when netns_etc made it and it is empty.
    rm -rf "/etc/netns/$prefix"*
    [ ! -f "/etc/netns/$NETNS_ETC_MARK" ] || [ -n "$(ls -A /etc/netns | grep -vxF "$NETNS_ETC_MARK")" ] || { rm -f "/etc/netns/$NETNS_ETC_MARK" && rmdir /etc/netns; }
}
netns_trap() {
    netns_finish() {
        local status=$? name
        name="$(basename "$0" .sh)"
        trap '' INT TERM
        [ -z "${device_pid:-}" ] || stop_children "$log" "$device_pid"
        [ "${#started[@]}" -eq 0 ] || stop_children "$log" "${started[@]}"
        netns_cleanup "$PREFIX" 2>>"$log" || true
        [ -z "$(netns_list "$PREFIX")" ] || say "$name: namespaces left over: $(netns_list "$PREFIX" | tr '\n' ' ')"
        ! compgen -G "/etc/netns/$PREFIX*" >/dev/null || say "$name: files left over: $(echo /etc/netns/"$PREFIX"*)"
        [ "$status" -eq 0 ] || say "$name: failed (exit $status); details in $log"
        exit "$status"
    }
    device_pid=""
    trap netns_finish EXIT
}
