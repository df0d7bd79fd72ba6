# shellcheck shell=bash
# Network namespaces, veth links and link shaping for the scripts in scripts/.
# Source it after common.sh; needs root.
#   . "$(dirname "$0")/lib/common.sh"
#   . "$(dirname "$0")/lib/netns.sh"
#
#   netns_require                      iproute2, iptables and python3 present (installs them), root
#   netns_create NAME                  a namespace with its loopback up
#   netns_link NS_A IF_A IP_A NS_B IF_B IP_B
#                                      a veth pair, one end in each namespace; IP_x are
#                                      address/prefix, e.g. 10.77.1.1/24
#   netns_bridge NS BRIDGE IP          a bridge inside NS with address IP (CIDR), up
#   netns_attach NS_HOST IF NS_BR BRIDGE_IF BRIDGE IP
#                                      a veth pair from NS_HOST (IF, address IP) to a port
#                                      BRIDGE_IF of BRIDGE in NS_BR
#   netns_route NS DEST VIA            a route in NS (DEST may be `default`)
#   netns_forwarding NS                NS routes between its interfaces (ip_forward=1)
#   netns_shape NS IF RATE DELAY LOSS  shapes what leaves NS through IF: RATE (tc units, e.g.
#                                      1mbit; `-` or 0 for none), DELAY (e.g. 5ms, 0.04s;
#                                      0 for none), LOSS (e.g. 0.5%, 0 for none)
#   netns_exec NS COMMAND...           runs COMMAND inside NS
#   netns_listening NS PORT            true when something in NS listens on TCP PORT
#   netns_etc NS FILE                  writes standard input to /etc/netns/NS/FILE, which
#                                      `ip netns exec NS` bind-mounts over /etc/FILE for what
#                                      it runs (hosts, host.conf, ...; the rest of /etc is
#                                      the machine's); only for processes started after it
#   netns_cleanup PREFIX               ends every process inside each namespace named
#                                      PREFIX*, then deletes those namespaces (their veths,
#                                      qdiscs and firewall rules go with them) and the
#                                      files /etc/netns/PREFIX*
#
# How a link is shaped. The kernels this runs on may lack sch_netem (this one is built
# without it), so netns_shape does not use netem:
#   rate   tc tbf as the root qdisc of IF (the kernel's own token bucket);
#   loss   an iptables rule in the mangle table's POSTROUTING chain of NS that drops
#          packets leaving IF at random with probability LOSS (statistic match);
#   delay  an iptables NFQUEUE rule at the other end of the link, in the mangle table's
#          PREROUTING chain of the peer namespace: packets arriving there from IF wait in
#          a kernel queue until scripts/lib/netns_delay.py, a small process inside that
#          namespace, accepts each one DELAY after it arrived (fixed delay, arrival order
#          kept). The delay sits at the receiving end because a packet held on the
#          sending host still counts against its socket, and TCP small queues would then
#          throttle the sender to about 1 ms of data in flight (the sending host's netem
#          avoids that by orphaning the packet; NFQUEUE cannot). netns_link and
#          netns_attach record each end's peer for this.
# A packet is thus lost, then rate-limited, then delayed; for a fixed delay that is the
# same pipe as netem with a tbf child. Shaping both ends of a veth pair shapes both
# directions of the link.
#
# Files (delayer logs and ready marks) go to $NETNS_STATE_DIR (default run/netns).

NETNS_STATE_DIR="${NETNS_STATE_DIR:-$REPO_ROOT/run/netns}"
NETNS_DELAYER="$REPO_ROOT/scripts/lib/netns_delay.py"
NETNS_ETC_MARK=.made-by-branchy-scripts   # in /etc/netns when netns_etc made that folder

netns_require() {
    [ "$(id -u)" -eq 0 ] || die "network namespaces need root"
    ensure_packages ip:iproute2 tc:iproute2 iptables:iptables python3:python3
    mkdir -p "$NETNS_STATE_DIR"
}

netns_exec() {
    local ns="$1"
    shift
    ip netns exec "$ns" "$@"
}

netns_create() {
    ip netns add "$1" || return 1
    ip -n "$1" link set lo up
}

# netns_peer_file NS IF: where the other end of IF is recorded.
netns_peer_file() { printf '%s/peers/%s.%s\n' "$NETNS_STATE_DIR" "$1" "$2"; }

# netns_set_peer NS IF PEER_NS PEER_IF KIND (veth or bridge-port)
netns_set_peer() {
    mkdir -p "$NETNS_STATE_DIR/peers"
    printf '%s %s %s\n' "$3" "$4" "$5" > "$(netns_peer_file "$1" "$2")"
}

netns_link() {
    local ns_a="$1" if_a="$2" ip_a="$3" ns_b="$4" if_b="$5" ip_b="$6"
    ip link add "$if_a" netns "$ns_a" type veth peer name "$if_b" netns "$ns_b" || return 1
    ip -n "$ns_a" addr add "$ip_a" dev "$if_a"
    ip -n "$ns_b" addr add "$ip_b" dev "$if_b"
    ip -n "$ns_a" link set "$if_a" up
    ip -n "$ns_b" link set "$if_b" up
    netns_set_peer "$ns_a" "$if_a" "$ns_b" "$if_b" veth
    netns_set_peer "$ns_b" "$if_b" "$ns_a" "$if_a" veth
}

netns_bridge() {
    local ns="$1" bridge="$2" ip="$3"
    ip -n "$ns" link add "$bridge" type bridge || return 1
    [ -z "$ip" ] || [ "$ip" = - ] || ip -n "$ns" addr add "$ip" dev "$bridge"
    ip -n "$ns" link set "$bridge" up
    # Bridged IPv4 packets pass the iptables chains, so that a delay can hold them.
    ip netns exec "$ns" sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null \
        || say "netns_bridge: no bridge netfilter in $ns: delays on its ports will not apply"
}

netns_attach() {
    local ns_host="$1" if_host="$2" ns_br="$3" if_br="$4" bridge="$5" ip="$6"
    ip link add "$if_host" netns "$ns_host" type veth peer name "$if_br" netns "$ns_br" || return 1
    ip -n "$ns_br" link set "$if_br" master "$bridge"
    ip -n "$ns_br" link set "$if_br" up
    [ -z "$ip" ] || [ "$ip" = - ] || ip -n "$ns_host" addr add "$ip" dev "$if_host"
    ip -n "$ns_host" link set "$if_host" up
    netns_set_peer "$ns_host" "$if_host" "$ns_br" "$if_br" bridge-port
    netns_set_peer "$ns_br" "$if_br" "$ns_host" "$if_host" veth
}

netns_route() {
    ip -n "$1" route replace "$2" via "$3"
}

netns_forwarding() {
    ip netns exec "$1" sysctl -qw net.ipv4.ip_forward=1
}

netns_listening() {
    [ -n "$(ip netns exec "$1" ss -Hltn "sport = :$2" 2>/dev/null)" ]
}

netns_etc() {
    local ns="$1" file="$2"
    case "$file" in ''|*/*|.*) say "netns_etc: '$file' is not a file name of /etc"; return 1 ;; esac
    if [ ! -d /etc/netns ]; then
        # Marked, so that netns_cleanup removes it again once empty (after a crash too).
        mkdir -p /etc/netns && : > "/etc/netns/$NETNS_ETC_MARK" || return 1
    fi
    mkdir -p "/etc/netns/$ns" && cat > "/etc/netns/$ns/$file"
}

# netns_rate_bits RATE: a tc rate (1mbit, 10Mbit, 500kbit, 2mbps, 100000) in bits/s.
netns_rate_bits() {
    awk -v r="$1" 'BEGIN {
        r = tolower(r); n = r + 0; u = r; sub(/^[0-9.]+/, "", u)
        m["bit"] = 1; m["kbit"] = 1e3; m["mbit"] = 1e6; m["gbit"] = 1e9; m[""] = 1
        m["bps"] = 8; m["kbps"] = 8e3; m["mbps"] = 8e6; m["gbps"] = 8e9
        if (!(u in m) || n <= 0) { print 0; exit }
        printf "%.0f\n", n * m[u]
    }'
}

# netns_delay_ms DELAY: 5ms, 0.04s, 40 (ms), 500us, in milliseconds.
netns_delay_ms() {
    awk -v d="$1" 'BEGIN {
        d = tolower(d); n = d + 0; u = d; sub(/^[0-9.]+/, "", u)
        m["ms"] = 1; m[""] = 1; m["s"] = 1000; m["us"] = 0.001
        if (!(u in m)) { print -1; exit }
        printf "%g\n", n * m[u]
    }'
}

# netns_loss_prob LOSS: 0.5% or 0.005 as a probability.
netns_loss_prob() {
    awk -v l="$1" 'BEGIN {
        p = l + 0
        if (l ~ /%$/) p = p / 100
        if (p < 0 || p > 1) { print -1; exit }
        printf "%.6f\n", p
    }'
}

netns_shape() {
    local ns="$1" dev="$2" rate="$3" delay="$4" loss="$5"
    local bits ms prob
    bits="$(netns_rate_bits "${rate:-0}")"
    ms="$(netns_delay_ms "${delay:-0}")"
    prob="$(netns_loss_prob "${loss:-0}")"
    [ "$rate" = - ] || [ "$rate" = 0 ] || [ "$bits" -gt 0 ] || { say "netns_shape: bad rate '$rate'"; return 1; }
    [ "$ms" != -1 ] || { say "netns_shape: bad delay '$delay'"; return 1; }
    [ "$prob" != -1 ] || { say "netns_shape: bad loss '$loss'"; return 1; }

    if [ "$bits" -gt 0 ]; then
        # Burst: at least two full frames, and 10 ms worth at the rate; the queue holds
        # up to 1 s of traffic (as netem's 1000 packets would at these rates).
        local burst=$((bits / 8 / 100))
        [ "$burst" -ge 3200 ] || burst=3200
        tc -n "$ns" qdisc replace dev "$dev" root handle 1: tbf rate "$bits"bit burst "$burst" latency 1000ms || return 1
    fi
    if awk -v p="$prob" 'BEGIN { exit !(p > 0) }'; then
        ip netns exec "$ns" iptables -w -t mangle -A POSTROUTING -o "$dev" \
            -m statistic --mode random --probability "$prob" -j DROP || return 1
    fi
    if awk -v m="$ms" 'BEGIN { exit !(m > 0) }'; then
        local peer_ns peer_if kind match queue ready log waited=0 pid
        read -r peer_ns peer_if kind < "$(netns_peer_file "$ns" "$dev")" 2>/dev/null \
            || { say "netns_shape: no peer recorded for $ns/$dev (make it with netns_link or netns_attach)"; return 1; }
        if [ "$kind" = bridge-port ]; then match=(-m physdev --physdev-in "$peer_if"); else match=(-i "$peer_if"); fi
        queue="$(ip netns exec "$peer_ns" cat "/sys/class/net/$peer_if/ifindex")" || return 1
        ready="$NETNS_STATE_DIR/$peer_ns-$peer_if.ready"
        log="$NETNS_STATE_DIR/$peer_ns-$peer_if.log"
        rm -f "$ready"
        # Started from a subshell, so that it is not a child of the caller (a bare `wait`
        # there would wait for it too); netns_cleanup ends it with its namespace.
        pid="$( (ip netns exec "$peer_ns" python3 "$NETNS_DELAYER" --queue "$queue" --delay-ms "$ms" --ready "$ready" \
            </dev/null >"$log" 2>&1 & echo $!) )"
        while [ ! -s "$ready" ]; do
            proc_running "$pid" || { say "netns_shape: the delayer for $peer_ns/$peer_if exited: $(tail -n 1 "$log")"; return 1; }
            [ "$waited" -lt 100 ] || { say "netns_shape: the delayer for $peer_ns/$peer_if did not start"; return 1; }
            sleep 0.1
            waited=$((waited + 1))
        done
        ip netns exec "$peer_ns" iptables -w -t mangle -A PREROUTING "${match[@]}" -j NFQUEUE --queue-num "$queue" || return 1
    fi
}

# netns_list PREFIX: the namespaces whose names start with PREFIX.
netns_list() {
    ip netns list 2>/dev/null | awk -v p="$1" 'index($1, p) == 1 { print $1 }'
}

netns_cleanup() {
    local prefix="$1" ns pid pids waited
    [ -n "$prefix" ] || { say "netns_cleanup: an empty prefix would match every namespace"; return 1; }
    for ns in $(netns_list "$prefix"); do
        pids="$(ip netns pids "$ns" 2>/dev/null | tr '\n' ' ')"
        if [ -n "${pids// /}" ]; then
            for pid in $pids; do kill -CONT "$pid" 2>/dev/null || true; kill -TERM "$pid" 2>/dev/null || true; done
            waited=0
            while [ -n "$(ip netns pids "$ns" 2>/dev/null)" ] && [ "$waited" -lt 50 ]; do
                sleep 0.1
                waited=$((waited + 1))
            done
            for pid in $(ip netns pids "$ns" 2>/dev/null); do
                say "netns_cleanup: killing pid $pid in $ns, still running 5 s after SIGTERM"
                kill -KILL "$pid" 2>/dev/null || true
            done
        fi
        ip netns del "$ns" 2>/dev/null || say "netns_cleanup: could not delete $ns"
        rm -f "$NETNS_STATE_DIR/peers/$ns."* "$NETNS_STATE_DIR/$ns-"*.ready
    done
    # Also those of namespaces already gone (a run that crashed half-way through its cleanup),
    # and /etc/netns itself when netns_etc made it and nothing else is left in it.
    rm -rf "/etc/netns/$prefix"*
    if [ -f "/etc/netns/$NETNS_ETC_MARK" ] && [ -z "$(ls -A /etc/netns | grep -vxF "$NETNS_ETC_MARK")" ]; then
        rm -f "/etc/netns/$NETNS_ETC_MARK" && rmdir /etc/netns
    fi
}
