#!/usr/bin/env python3
"""Holds the packets of one netfilter queue for a fixed time, then accepts them.

The stand-in for `tc qdisc ... netem delay` on kernels built without sch_netem:
an iptables rule `-j NFQUEUE --queue-num N` sends a link's outgoing packets
here (only their metadata is copied), and each one gets its ACCEPT verdict
DELAY milliseconds after it arrived, in arrival order, so the link keeps FIFO
order as netem with a fixed delay does. Packets go on to the interface's qdisc
(tbf for the rate) after the verdict, so the order is delay, then rate, as with
netem and a tbf child.

    netns_delay.py --queue N --delay-ms D [--ready FILE]

Runs in the network namespace whose queue it serves (`ip netns exec`). Writes
FILE once it is bound, and runs until SIGTERM or SIGINT. Only the standard
library: netlink (NETLINK_NETFILTER) by hand.
"""
import argparse
import collections
import os
import select
import signal
import socket
import struct
import sys
import time

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQNL_COPY_META = 1
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NF_ACCEPT = 1
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLMSG_ERROR = 2
NLMSG_DONE = 3


def attr(kind, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def message(msg_type, queue, attrs, flags=NLM_F_REQUEST, seq=0, family=socket.AF_UNSPEC):
    body = struct.pack("=BBH", family, 0, socket.htons(queue)) + b"".join(attrs)
    kind = (NFNL_SUBSYS_QUEUE << 8) | msg_type
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


def config(sock, queue, attrs, seq):
    """Sends a config message and waits for its acknowledgement."""
    sock.send(message(NFQNL_MSG_CONFIG, queue, attrs, NLM_F_REQUEST | NLM_F_ACK, seq))
    while True:
        data = sock.recv(65536)
        for kind, _, mseq, payload in messages(data):
            if kind == NLMSG_ERROR and mseq == seq:
                (error,) = struct.unpack_from("=i", payload)
                if error != 0:
                    raise OSError(-error, os.strerror(-error))
                return


def messages(data):
    """(type, flags, seq, payload) of each netlink message in one datagram."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind, flags, seq, _ = struct.unpack_from("=IHHII", data, offset)
        if length < 16:
            break
        yield kind, flags, seq, data[offset + 16:offset + length]
        offset += (length + 3) & ~3


def packet_id(payload):
    """The id in NFQA_PACKET_HDR of a queued-packet message (after nfgenmsg)."""
    offset = 4
    while offset + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, offset)
        if length < 4:
            break
        if (kind & 0x7FFF) == NFQA_PACKET_HDR:
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
    delay = args.delay_ms / 1000.0

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((0, 0))
    config(sock, args.queue, [attr(NFQA_CFG_CMD, struct.pack("=BxH", NFQNL_CFG_CMD_BIND, socket.htons(socket.AF_INET)))], 1)
    config(sock, args.queue, [attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0, NFQNL_COPY_META))], 2)
    config(sock, args.queue, [attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", args.maxlen))], 3)
    if args.ready:
        with open(args.ready, "w") as f:
            f.write(f"{os.getpid()}\n")

    held = collections.deque()   # (due time, packet id), in arrival order
    sock.setblocking(False)
    while not stop:
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, pid = held.popleft()
            verdict = attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, pid))
            try:
                sock.send(message(NFQNL_MSG_VERDICT, args.queue, [verdict]))
            except BlockingIOError:
                held.appendleft((now, pid))
                break
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else 0.5
        try:
            ready, _, _ = select.select([sock], [], [], timeout)
        except InterruptedError:
            continue
        if not ready:
            continue
        while True:
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                break
            except OSError as e:   # ENOBUFS: the kernel dropped messages; go on
                print(f"netns_delay: queue {args.queue}: {e}", file=sys.stderr)
                break
            arrived = time.monotonic()
            for kind, _, _, payload in messages(data):
                if kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                    pid = packet_id(payload)
                    if pid is not None:
                        held.append((arrived + delay, pid))
    # Let what is held go now rather than drop it, then unbind.
    sock.setblocking(True)
    for _, pid in held:
        verdict = attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, pid))
        try:
            sock.send(message(NFQNL_MSG_VERDICT, args.queue, [verdict]))
        except OSError:
            break
    try:
        config(sock, args.queue, [attr(NFQA_CFG_CMD, struct.pack("=BxH", NFQNL_CFG_CMD_UNBIND, socket.htons(socket.AF_INET)))], 4)
    except OSError:
        pass


if __name__ == "__main__":
    main()
