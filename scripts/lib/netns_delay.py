#!/usr/bin/env python3
"""Holds the packets of one netfilter queue for a fixed time, then accepts them: the stand-in for
`tc qdisc ... netem delay` on kernels without sch_netem. An iptables rule `-j NFQUEUE --queue-num N`
sends a link's packets here (metadata only); each gets its ACCEPT verdict DELAY ms after it arrived, in
arrival order (FIFO, as netem with a fixed delay), then goes on to the interface's qdisc (tbf for the
rate). Runs in the namespace whose queue it serves (`ip netns exec`), writes FILE once bound, and runs
until SIGTERM or SIGINT. Only the standard library: netlink (NETLINK_NETFILTER) by hand.
    netns_delay.py --queue N --delay-ms D [--ready FILE] [--maxlen PACKETS]
"""
import argparse, collections, os, select, signal, socket, struct, sys, time

QUEUE = 3 << 8                                # NFNL_SUBSYS_QUEUE
PACKET, VERDICT, CONFIG = QUEUE | 0, QUEUE | 1, QUEUE | 2
REQUEST, ACK, ERROR = 1, 4, 2                 # NLM_F_REQUEST, NLM_F_ACK, NLMSG_ERROR


def attr(kind, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def message(kind, queue, attrs, flags=REQUEST, seq=0):
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + b"".join(attrs)
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


def messages(data):
    """(type, seq, payload) of each netlink message in one datagram."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind, _, seq, _ = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            break
        yield kind, seq, data[offset + 16:offset + length]
        offset += (length + 3) & ~3


def config(sock, queue, attribute, seq):
    """A config message, acknowledged."""
    sock.send(message(CONFIG, queue, [attribute], REQUEST | ACK, seq))
    while True:
        for kind, mseq, payload in messages(sock.recv(65536)):
            if kind == ERROR and mseq == seq:
                error = struct.unpack_from("=i", payload)[0]
                if error:
                    raise OSError(-error, os.strerror(-error))
                return


def packet_id(payload):
    """The id in NFQA_PACKET_HDR of a queued packet (after nfgenmsg)."""
    offset = 4
    while offset + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, offset)
        if length < 4:
            break
        if kind & 0x7FFF == 1:
            return struct.unpack_from("!I", payload, offset + 4)[0]
        offset += (length + 3) & ~3
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queue", type=int, required=True)
    parser.add_argument("--delay-ms", type=float, required=True)
    parser.add_argument("--ready", help="file to create once the queue is bound")
    parser.add_argument("--maxlen", type=int, default=10000, help="packets the kernel may hold for us")
    args = parser.parse_args()
    q, delay, stop = args.queue, args.delay_ms / 1000.0, []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    bind = lambda command: attr(1, struct.pack("=BxH", command, socket.htons(socket.AF_INET)))   # NFQA_CFG_CMD: bind 1, unbind 2
    accept = lambda pid: message(VERDICT, q, [attr(2, struct.pack("!II", 1, pid))])             # NFQA_VERDICT_HDR, NF_ACCEPT

    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)   # NETLINK_NETFILTER
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((0, 0))
    config(sock, q, bind(1), 1)
    config(sock, q, attr(2, struct.pack("!IB", 0, 1)), 2)              # NFQA_CFG_PARAMS: copy metadata only
    config(sock, q, attr(3, struct.pack("!I", args.maxlen)), 3)       # NFQA_CFG_QUEUE_MAXLEN
    if args.ready:
        open(args.ready, "w").write(f"{os.getpid()}\n")
    held = collections.deque()   # (due time, packet id), in arrival order
    sock.setblocking(False)
    while not stop:
        now = time.monotonic()
        while held and held[0][0] <= now:
            try:
                sock.send(accept(held[0][1]))
            except BlockingIOError:
                break
            held.popleft()
        try:
            ready = select.select([sock], [], [], max(0.0, held[0][0] - time.monotonic()) if held else 0.5)[0]
        except InterruptedError:
            continue
        while ready:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                break
            except OSError as e:   # ENOBUFS: the kernel dropped messages; go on
                print(f"netns_delay: queue {q}: {e}", file=sys.stderr)
                break
            arrived = time.monotonic()
            held.extend((arrived + delay, pid) for kind, _, payload in messages(data)
                        if kind == PACKET and (pid := packet_id(payload)) is not None)
    sock.setblocking(True)   # let what is held go now rather than drop it, then unbind
    try:
        for _, pid in held:
            sock.send(accept(pid))
        config(sock, q, bind(2), 4)
    except OSError:
        pass


if __name__ == "__main__":
    main()
