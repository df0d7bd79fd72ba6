#!/usr/bin/env python3
"""Probes for the hardening checks of scripts/e2e-faults.sh (Python 3 standard library only;
zstd-flood loads the system's libzstd.so.1 with ctypes, as the nodes do).

Each probe prints one line of figures on standard output (for the check's `ok` line)
and details on standard error, and exits 0 when its check holds; otherwise the last
line on standard output says why and it exits 1. Every probe runs in bounded time.

  impostor HOST PORT CERT KEY CA LOG
      A TLS 1.3 server that presents CERT (another node's certificate from the cluster
      CA) and requires a client certificate; appends one JSON line per event to LOG
      (`handshake` once a client finished the handshake, `closed` with the bytes it sent
      afterwards). Runs until killed.
  impostor-verdict LOG
      From LOG: at least one client finished the handshake and none sent a byte after it.
  sans CERTS_DIR
      Every node certificate (*.pem but ca.pem and *-key.pem) names exactly DNS:<node>:
      no IP address, no localhost.
  timeouts HOST PORT CA CERTS NODE SERVER FINGERPRINT HANDSHAKE_MS IDLE_MS MARGIN_MS
      Three connections at once: raw TCP, TLS with NODE's certificate and no hello, and
      TLS + hello then idle. The first two must be closed within HANDSHAKE_MS (+ margin)
      of connecting, the third must get `goodbye` and be closed IDLE_MS (+ margin)
      after its hello, and not before.
  hold HOST PORT COUNT SECONDS STATUS
      Opens COUNT TCP connections at once (non-blocking; half of them send the first
      5 bytes of a TLS record and stop, the rest send nothing), never reconnects, and
      appends a JSON status line to STATUS every 100 ms. Ends when every connection was
      closed or reset by the server (or failed to connect), or after SECONDS.
  hold-verdict STATUS COUNT SECONDS
      From STATUS: the count of open connections reached 0 within SECONDS.
  peer-cap HOST PORT CA CERTS NODE SERVER FINGERPRINT MAX_PER_PEER
      MAX_PER_PEER connections of NODE are accepted; one more gets error 17 and is closed.
  budget HOST PORT CA CERTS SERVER FINGERPRINT PID CONNECTIONS PER_PEER TOTAL_BUDGET PEER_BUDGET MAX_RSS_MB
      CONNECTIONS authenticated connections (PER_PEER per device identity, device-1,
      device-2, ...) each announce a 4 MiB infer frame and send all of it but 4 KiB.
      Those beyond the input budgets must get error 17 and be closed, the others stay
      open; the VmRSS/VmHWM of PID must stay under MAX_RSS_MB. After all are closed, a
      new connection may buffer a 4 MiB frame again (the budget was released).
  inject HOST PORT CA CERTS NODE SERVER FINGERPRINT NAME_ESCAPED
      Sends a hello with NAME (Python escapes such as \\n, \\x1b, \\x00 are decoded)
      under NODE's certificate: it must be answered with an error frame and closed.
  cycles HOST PORT CA CERTS NODE SERVER COUNT
      COUNT TLS connect/close cycles, closed without TLS close_notify.
  refused-hellos HOST PORT CA CERTS NODE SERVER FINGERPRINT COUNT
      COUNT hellos claiming a node name that NODE's certificate does not hold.
  gzip-bomb DIR BYTES
      Writes DIR/t10k-images-idx3-ubyte.gz (header: 10 images of 28x28) inflating to
      BYTES bytes, and DIR/t10k-labels-idx1-ubyte.gz with 10 labels.
  device-report REPORT PREDICTIONS SAMPLES MODE
      A device run's report: MODE `answered` (all answered, none degraded or failed) or
      `local` (all answered at the device's own exit, never connected upstream).
  measure SECONDS OUT COMMAND...
      Runs COMMAND for at most SECONDS and writes its exit status, wall time and peak
      RSS (from wait4) to OUT as JSON.
  log-escaped LOG OFFSET ESCAPED FORGED
      After line OFFSET, LOG holds ESCAPED literally; no line of LOG starts with FORGED;
      LOG holds no raw control byte but newline and tab.
  stats-flood HOST PORT CA CERTS SERVER FINGERPRINT PID PEERS CONNECTIONS SECONDS MAX_RSS_MB
      CONNECTIONS version 2 connections (as the comma-separated node names PEERS in turn)
      send statsRequest frames with fresh ids as fast as they are taken and never read.
      Each must stop being read and be closed by the node within SECONDS; the VmRSS of
      PID, sampled every 100 ms, must stay under MAX_RSS_MB.
  zstd-flood HOST PORT CA CERTS SERVER FINGERPRINT PID STAGE FRAMES PER_CONNECTION SECONDS
      Up to FRAMES version 2 infer frames for STAGE, PER_CONNECTION per connection in one
      write, for at most SECONDS: a float32 tensor stating [1, 2048, 2048] as a ~530-byte
      Zstandard stream (made with the system's libzstd.so.1) that inflates to 16 MiB.
      Every connection must get badTensor and be closed; prints the CPU time of PID.
  metrics-exhaust HOST PORT PID COUNT SECONDS
      Holds COUNT TCP connections (nothing sent) to the metrics port of the node PID for
      SECONDS; its descriptor table must fill (the rest wait in the accept queue); prints
      its CPU use while full and, from its /readyz after the release, how many accepts
      failed in the episode.
  small-cases HOST PORT CA CERTS SERVER FINGERPRINT HANDSHAKE_MS MARGIN_MS
      A version 1 frame header dribbled one byte every 250 ms is cut with error 17
      HANDSHAKE_MS (+ MARGIN_MS) after its first byte; a statsRequest reusing the id of an
      infer in flight gets error 8 and the infer is answered; a client hello with a names
      table gets error 1.
  latency REPORT
      `p50 mean p99 edge-exit-p50 answered degraded failed` of a device report (ms).
  model-bomb SRC DST VARIANT
      Copies the model folder SRC to DST and makes model.json announce a huge size:
      VARIANT `width` sets the first conv layer's `out` to 2^40, `input` sets `input`
      to [2^31, 2^31, 2^31].
"""
import http.client
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import zlib

MAGIC = b"BRNY"
VERSION = 1
HELLO, HELLO_ACK, INFER, RESULT, ERROR, GOODBYE = 1, 2, 3, 4, 5, 6
HEADER = struct.Struct(">4sBBHQI")  # magic, version, type, flags, requestID, payloadLength
ROLE_DEVICE = 1
LIMIT_REACHED = 17
MAX_PAYLOAD = 4 * 1024 * 1024


class CheckFailed(Exception):
    pass


def require(cond, why):
    if not cond:
        raise CheckFailed(why)


def note(*args):
    print(*args, file=sys.stderr, flush=True)


# --- Frames --------------------------------------------------------------------------


def frame(kind, payload=b"", request_id=0, length=None):
    return HEADER.pack(MAGIC, VERSION, kind, 0, request_id, len(payload) if length is None else length) + payload


def hello(name, fingerprint, role=ROLE_DEVICE):
    encoded = name.encode() if isinstance(name, str) else name
    fp = bytes.fromhex(fingerprint)
    require(len(fp) == 32, f"fingerprint must be 32 bytes, got {len(fp)}")
    return frame(HELLO, struct.pack(">HBH", VERSION, role, len(encoded)) + encoded + fp)


def error_code(payload):
    return struct.unpack_from(">H", payload)[0] if len(payload) >= 2 else None


def error_text(payload):
    if len(payload) < 4:
        return ""
    n = struct.unpack_from(">H", payload, 2)[0]
    return payload[4:4 + n].decode(errors="replace")


class Reader:
    """Frames from a socket (plain or TLS); `None` at the end of the stream."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except (socket.timeout, TimeoutError):
            raise TimeoutError
        except (ssl.SSLError, ConnectionError, OSError):
            data = b""
        if not data:
            return False
        self.buf += data
        return True

    def frame(self, timeout):
        """(type, requestID, payload), None at EOF; raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while len(self.buf) < HEADER.size:
            if not self._fill(deadline):
                return None
        magic, _, kind, _, rid, length = HEADER.unpack_from(self.buf)
        require(magic == MAGIC, f"the server sent bytes that are not a Branchy frame: {self.buf[:24].hex()}")
        while len(self.buf) < HEADER.size + length:
            if not self._fill(deadline):
                return None
        payload = self.buf[HEADER.size:HEADER.size + length]
        self.buf = self.buf[HEADER.size + length:]
        return kind, rid, payload

    def until_closed(self, timeout):
        """Frames received until the end of the stream; raises TimeoutError if still open."""
        frames = []
        deadline = time.monotonic() + timeout
        while True:
            f = self.frame(max(0.001, deadline - time.monotonic()))
            if f is None:
                return frames
            frames.append(f)


# --- TLS -----------------------------------------------------------------------------


def client_context(ca, certs, node):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(ca)
    ctx.load_cert_chain(os.path.join(certs, f"{node}.pem"), os.path.join(certs, f"{node}-key.pem"))
    return ctx


def tls_connect(ctx, host, port, server, timeout=5.0):
    raw = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        s = ctx.wrap_socket(raw, server_hostname=server)
    except Exception:
        raw.close()
        raise
    return s


def hard_close(sock):
    """Closes without TLS close_notify (the TCP connection just ends)."""
    try:
        sock.close()
    except OSError:
        pass


def authenticated(ctx, host, port, server, node, fingerprint, timeout=5.0, version=1):
    """A TLS connection whose hello (protocol VERSION, 1 or 2) as NODE was acknowledged:
    (socket, reader), the reader a CompactReader for version 2's compact frames."""
    s = tls_connect(ctx, host, port, server, timeout)
    s.sendall(hello(node, fingerprint) if version == 1 else hello_v2(node, fingerprint))
    r = Reader(s)
    f = r.frame(timeout)
    what = "hello" if version == 1 else "version 2 hello"
    require(f is not None, f"the server closed the connection of '{node}' after its {what}")
    kind, _, payload = f
    if kind == ERROR:
        raise CheckFailed(f"{what} as '{node}' refused with error {error_code(payload)}: {error_text(payload)}")
    require(kind == HELLO_ACK, f"{what} as '{node}' answered with a frame of type {kind}")
    return (s, r) if version == 1 else (s, CompactReader(s, r.buf))


# --- impostor ------------------------------------------------------------------------


def impostor(host, port, cert, key, ca, log):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    lock = threading.Lock()

    def record(event):
        with lock, open(log, "a") as f:
            f.write(json.dumps(event) + "\n")

    def serve(conn, peer):
        conn.settimeout(5)
        try:
            s = ctx.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError) as e:
            record({"event": "failed", "peer": str(peer), "error": str(e)})
            conn.close()
            return
        names = [v for k, v in s.getpeercert().get("subjectAltName", ()) if k == "DNS"]
        record({"event": "handshake", "peer": str(peer), "client": names})
        data = b""
        try:
            while len(data) < 65536:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (ssl.SSLError, OSError):
            pass
        record({"event": "closed", "peer": str(peer), "bytes": len(data), "head": data[:24].hex(),
                "brny": MAGIC in data})
        hard_close(s)

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, int(port)))
    srv.listen(16)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    while True:
        conn, peer = srv.accept()
        threading.Thread(target=serve, args=(conn, peer), daemon=True).start()


def impostor_verdict(log):
    events = []
    try:
        with open(log) as f:
            events = [json.loads(line) for line in f if line.strip()]
    except OSError:
        pass
    handshakes = [e for e in events if e["event"] == "handshake"]
    closed = [e for e in events if e["event"] == "closed"]
    sent = sum(e["bytes"] for e in closed)
    note(f"impostor: {len(handshakes)} TLS handshakes, {len(closed)} closes, {sent} bytes after the handshake; "
         f"client certificates {sorted({n for e in handshakes for n in e['client']})}")
    require(handshakes, "no client finished a TLS handshake with the impostor: the check proves nothing")
    hellos = [e for e in closed if e["brny"]]
    if hellos:
        raise CheckFailed(f"the device sent a Branchy frame to the impostor: {hellos[0]['head']}")
    require(sent == 0, f"the device sent {sent} bytes to the impostor after the handshake")
    print(f"{len(handshakes)} handshakes with the impostor, 0 bytes after them")


# --- certificates --------------------------------------------------------------------


def sans(certs):
    checked = 0
    for name in sorted(os.listdir(certs)):
        if not name.endswith(".pem") or name == "ca.pem" or name.endswith("-key.pem"):
            continue
        node = name[:-4]
        out = subprocess.run(["openssl", "x509", "-in", os.path.join(certs, name), "-noout", "-ext", "subjectAltName"],
                             capture_output=True, text=True, timeout=30)
        require(out.returncode == 0, f"openssl cannot read {name}: {out.stderr.strip()}")
        values = [v.strip() for line in out.stdout.splitlines()[1:] for v in line.split(",") if v.strip()]
        require(not any(v.startswith("IP") for v in values), f"{name} names an IP address: {', '.join(values)}")
        require(not any("localhost" in v for v in values), f"{name} names localhost: {', '.join(values)}")
        require(values == [f"DNS:{node}"], f"{name} names {', '.join(values) or 'nothing'}, not only DNS:{node}")
        checked += 1
    require(checked > 0, f"no node certificate in {certs}")
    print(f"{checked} certificates in {os.path.basename(os.path.normpath(certs))}/ name only DNS:<node>")


# --- timeouts ------------------------------------------------------------------------


def timeouts(host, port, ca, certs, node, server, fingerprint, handshake_ms, idle_ms, margin_ms):
    handshake, idle, margin = int(handshake_ms) / 1000, int(idle_ms) / 1000, int(margin_ms) / 1000
    ctx = client_context(ca, certs, node)
    wait = handshake + idle + margin + 3
    results = {}

    def raw():
        t0 = time.monotonic()
        s = socket.create_connection((host, int(port)), timeout=5)
        t0 = time.monotonic()
        try:
            Reader(s).until_closed(wait)
            results["raw"] = ("closed", time.monotonic() - t0)
        except TimeoutError:
            results["raw"] = ("open", time.monotonic() - t0)
        except CheckFailed as e:
            results["raw"] = ("bytes", str(e))
        s.close()

    def no_hello():
        t0 = time.monotonic()
        s = tls_connect(ctx, host, port, server)
        try:
            Reader(s).until_closed(wait)
            results["tls"] = ("closed", time.monotonic() - t0)
        except TimeoutError:
            results["tls"] = ("open", time.monotonic() - t0)
        hard_close(s)

    def idle_after_hello():
        s, r = authenticated(ctx, host, port, server, node, fingerprint)
        t0 = time.monotonic()
        goodbye = None
        try:
            while True:
                f = r.frame(max(0.001, t0 + wait - time.monotonic()))
                if f is None:
                    break
                if f[0] == GOODBYE and goodbye is None:
                    goodbye = time.monotonic() - t0
            results["idle"] = ("closed", time.monotonic() - t0, goodbye)
        except TimeoutError:
            results["idle"] = ("open", time.monotonic() - t0, goodbye)
        hard_close(s)

    errors = []

    def run(fn):
        try:
            fn()
        except Exception as e:  # reported below
            errors.append(f"{fn.__name__}: {e}")

    threads = [threading.Thread(target=run, args=(fn,)) for fn in (raw, no_hello, idle_after_hello)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(wait + 10)
    note(f"timeouts: {results}; errors {errors}")
    require(not errors, errors[0] if errors else "")
    low = 0.1  # timers may fire a little before our clock says so
    for key, what in (("raw", "raw TCP connection"), ("tls", "TLS connection without hello")):
        state, t = results[key][0], results[key][1]
        require(state != "bytes", f"{what}: {t}")
        require(state == "closed", f"{what} still open after {t:.1f} s (handshakeTimeoutMs {handshake_ms})")
        require(handshake - low <= t <= handshake + margin,
                f"{what} closed after {t:.2f} s, expected {handshake:.1f} s to {handshake + margin:.1f} s")
    state, t, goodbye = results["idle"]
    require(state == "closed", f"connection idle after hello still open after {t:.1f} s (idleTimeoutMs {idle_ms})")
    require(goodbye is not None, f"connection idle after hello closed after {t:.2f} s without a goodbye frame")
    require(idle - low <= t <= idle + margin,
            f"connection idle after hello closed after {t:.2f} s, expected {idle:.1f} s to {idle + margin:.1f} s")
    print(f"raw TCP closed after {results['raw'][1]:.2f} s, TLS without hello after {results['tls'][1]:.2f} s "
          f"(handshake timeout {handshake:.1f} s); idle after hello: goodbye at {goodbye:.2f} s, closed at {t:.2f} s "
          f"(idle timeout {idle:.1f} s)")


# --- hold ----------------------------------------------------------------------------


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))


def hold(host, port, count, seconds, status):
    count, seconds = int(count), float(seconds)
    raise_fd_limit(count + 64)
    sel = selectors.DefaultSelector()
    t0 = time.monotonic()
    open_ = {}
    connected = closed = reset = failed = 0
    for i in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        # When the edge's accept queue overflows, the kernel may drop the last ACK of the
        # TCP handshake (SYN cookies): this end then believes it is connected to a server
        # that never heard of it, and an idle socket would never learn otherwise. A
        # keepalive probe draws a reset there, and only an ACK from a live connection.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3)
        rc = s.connect_ex((host, int(port)))
        if rc not in (0, 115, 11):  # EINPROGRESS, EAGAIN
            failed += 1
            s.close()
            continue
        open_[s.fileno()] = (s, i, False)
        sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ)
    started = time.monotonic() - t0
    last = 0.0

    def write_status(final=False):
        with open(status, "a") as f:
            f.write(json.dumps({"t": round(time.monotonic() - t0, 3), "open": len(open_), "connected": connected,
                                "closed": closed, "reset": reset, "failed": failed, "final": final}) + "\n")

    write_status()
    while open_ and time.monotonic() - t0 < seconds:
        for key, mask in sel.select(timeout=0.05):
            s, i, up = open_[key.fd]
            if not up:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    failed += 1
                    sel.unregister(s)
                    s.close()
                    del open_[key.fd]
                    continue
                if mask & selectors.EVENT_WRITE:
                    connected += 1
                    up = True
                    open_[key.fd] = (s, i, True)
                    if i % 2:
                        try:
                            s.send(b"\x16\x03\x01\x02\x00")  # a TLS record header; the ClientHello never follows
                        except OSError:
                            pass
                    sel.modify(s, selectors.EVENT_READ)
                    if not mask & selectors.EVENT_READ:
                        continue
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = None
            if not data:
                if data is None:
                    reset += 1
                else:
                    closed += 1
                sel.unregister(s)
                s.close()
                del open_[key.fd]
        now = time.monotonic() - t0
        if now - last >= 0.1:
            write_status()
            last = now
    write_status(final=True)
    for s, _, _ in list(open_.values()):
        s.close()
    note(f"hold: {count} connections started in {started:.2f} s; connected {connected}, closed by the server {closed}, "
         f"reset {reset}, failed {failed}, still open {len(open_)} after {time.monotonic() - t0:.1f} s")


def hold_verdict(status, count, seconds):
    rows = []
    try:
        with open(status) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except OSError:
        pass
    require(rows, f"no status from the connection holder in {status}")
    peak = max(r["open"] for r in rows)
    last = rows[-1]
    zero = next((r["t"] for r in rows if r["open"] == 0), None)
    note(f"hold: peak {peak} open, last {last}")
    require(last["connected"] > 0, "none of the held connections was established")
    require(zero is not None, f"{last['open']} of {count} held connections still open after {last['t']:.1f} s")
    require(zero <= float(seconds), f"the last held connection was closed after {zero:.1f} s, not within {seconds} s")
    print(f"{last['connected']} held connections established, all ended after {zero:.1f} s "
          f"({last['closed']} closed by the edge, {last['reset']} reset, {last['failed']} failed to connect)")


# --- per-peer cap --------------------------------------------------------------------


def peer_cap(host, port, ca, certs, node, server, fingerprint, max_per_peer):
    n = int(max_per_peer)
    ctx = client_context(ca, certs, node)
    held = []
    try:
        for _ in range(n):
            held.append(authenticated(ctx, host, port, server, node, fingerprint))
        s = tls_connect(ctx, host, port, server)
        held.append((s, Reader(s)))
        s.sendall(hello(node, fingerprint))
        try:
            frames = held[-1][1].until_closed(5)
        except TimeoutError:
            raise CheckFailed(f"hello number {n + 1} of '{node}' was not refused: the connection is still open after 5 s")
        kinds = [k for k, _, _ in frames]
        require(kinds and kinds[0] == ERROR,
                f"hello number {n + 1} of '{node}' got frames {kinds} instead of an error, then the close")
        code = error_code(frames[0][2])
        require(code == LIMIT_REACHED, f"hello number {n + 1} of '{node}' got error {code} ({error_text(frames[0][2])}), "
                                       f"expected {LIMIT_REACHED} (limitReached)")
        note(f"peer cap: {error_text(frames[0][2])}")
        print(f"{n} connections of '{node}' accepted, the next refused with error {LIMIT_REACHED}")
    finally:
        for s, _ in held:
            hard_close(s)


# --- input budget --------------------------------------------------------------------


def rss(pid):
    """(VmRSS, VmHWM) of PID in MB."""
    values = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def budget(host, port, ca, certs, server, fingerprint, pid, connections, per_peer, total_budget, peer_budget, max_rss):
    connections, per_peer = int(connections), int(per_peer)
    total_budget, peer_budget, max_rss = int(total_budget), int(peer_budget), float(max_rss)
    size = HEADER.size + MAX_PAYLOAD
    send = MAX_PAYLOAD - 4096
    start_rss, start_hwm = rss(pid)
    peak = [start_rss, start_hwm]

    def sample():
        r, h = rss(pid)
        peak[0], peak[1] = max(peak[0], r), max(peak[1], h)

    # Which connections should get their reservation, in the order the frames are sent.
    peers = [f"device-{i // per_peer + 1}" for i in range(connections)]
    used, by_peer, expected = 0, {}, 0
    for p in peers:
        if by_peer.get(p, 0) + size <= peer_budget and used + size <= total_budget:
            used += size
            by_peer[p] = by_peer.get(p, 0) + size
            expected += 1
    contexts = {p: client_context(ca, certs, p) for p in set(peers)}
    conns = []
    try:
        t0 = time.monotonic()
        for p in peers:
            conns.append(authenticated(contexts[p], host, port, server, p, fingerprint))
        note(f"budget: {connections} connections said hello in {time.monotonic() - t0:.2f} s; "
             f"edge RSS {start_rss:.0f} MB before")
        header = frame(INFER, request_id=1, length=MAX_PAYLOAD)
        first = bytes(65536)
        # Every connection announces a 4 MiB frame, one after the other.
        for s, _ in conns:
            s.settimeout(10)
            try:
                s.sendall(header + first)
            except OSError:
                pass
            time.sleep(0.002)
        time.sleep(1)
        sample()
        # Refusals arrive as an error frame, then the close.
        refused, codes, texts = set(), {}, []
        for i, (s, r) in enumerate(conns):
            try:
                f = r.frame(0.05)
            except TimeoutError:
                continue
            refused.add(i)
            if f is None:
                codes[i] = None
                continue
            codes[i] = error_code(f[2]) if f[0] == ERROR else f"frame type {f[0]}"
            texts.append(error_text(f[2]))
            try:
                r.until_closed(3)
            except TimeoutError:
                raise CheckFailed(f"connection {i} ({peers[i]}) got error {codes[i]} but was not closed within 3 s")
        sample()
        accepted = [i for i in range(connections) if i not in refused]
        # The accepted ones send all of their frame but the last 4 KiB.
        chunk = bytes(256 * 1024)
        for i in accepted:
            s, _ = conns[i]
            s.settimeout(10)
            left = send - len(first)
            try:
                while left > 0:
                    n = min(left, len(chunk))
                    s.sendall(chunk[:n])
                    left -= n
            except OSError as e:
                raise CheckFailed(f"connection {i} ({peers[i]}) within the budget failed while sending its frame: {e}")
            sample()
        time.sleep(0.5)
        sample()
        still = 0
        for i in accepted:
            s, r = conns[i]
            try:
                r.frame(0.01)
            except TimeoutError:
                still += 1
        note(f"budget: {len(accepted)} connections hold a 4 MiB frame, {len(refused)} refused with codes "
             f"{sorted({str(c) for c in codes.values()})}; edge RSS peak {peak[0]:.0f} MB, HWM {peak[1]:.0f} MB; "
             f"first refusal: {texts[0] if texts else '-'}")
        bad = {i: c for i, c in codes.items() if c != LIMIT_REACHED}
        if bad:
            i = min(bad)
            raise CheckFailed(f"{len(bad)} refused connections got no limitReached error, e.g. connection {i} "
                              f"({peers[i]}): {bad[i]}")
        require(len(accepted) <= expected,
                f"{len(accepted)} connections buffer a 4 MiB frame, the budgets allow {expected}")
        require(still == len(accepted), f"{len(accepted) - still} connections within the budget were closed")
        require(peak[0] < max_rss and peak[1] < max_rss,
                f"edge VmRSS peaked at {peak[0]:.0f} MB (VmHWM {peak[1]:.0f} MB), not under {max_rss:.0f} MB")
        require(len(accepted) >= 1, "no connection could buffer a frame: the budget admits nothing")
    finally:
        for s, _ in conns:
            hard_close(s)
    time.sleep(0.5)
    # The budget is free again once those connections closed.
    s, r = authenticated(contexts[peers[0]], host, port, server, peers[0], fingerprint)
    try:
        s.sendall(frame(INFER, request_id=1, length=MAX_PAYLOAD) + bytes(1 << 20))
        try:
            f = r.frame(1.0)
            raise CheckFailed("after every connection closed, a new 4 MiB frame was refused: "
                              + (f"error {error_code(f[2])}: {error_text(f[2])}" if f and f[0] == ERROR else "connection closed"))
        except TimeoutError:
            pass
    finally:
        hard_close(s)
    print(f"{len(accepted)} of {connections} connections buffer a 4 MiB frame, {len(refused)} refused with error "
          f"{LIMIT_REACHED}; edge VmRSS peak {peak[0]:.0f} MB, VmHWM {peak[1]:.0f} MB (start {start_rss:.0f} MB)")


# --- log injection -------------------------------------------------------------------


def inject(host, port, ca, certs, node, server, fingerprint, name_escaped):
    name = name_escaped.encode().decode("unicode_escape")
    ctx = client_context(ca, certs, node)
    s = tls_connect(ctx, host, port, server)
    try:
        s.sendall(hello(name, fingerprint))
        try:
            frames = Reader(s).until_closed(5)
        except TimeoutError:
            raise CheckFailed("a hello with a forged node name was not refused: the connection is still open after 5 s")
    finally:
        hard_close(s)
    kinds = [k for k, _, _ in frames]
    require(HELLO_ACK not in kinds, "a hello with a forged node name was accepted")
    require(kinds and kinds[0] == ERROR, f"a hello with a forged node name got frames {kinds}, not an error")
    note(f"inject: refused with error {error_code(frames[0][2])}: {error_text(frames[0][2])!r}")
    print(f"forged hello refused with error {error_code(frames[0][2])}")


def cycles(host, port, ca, certs, node, server, count):
    ctx = client_context(ca, certs, node)
    t0 = time.monotonic()
    done = 0
    for _ in range(int(count)):
        try:
            s = tls_connect(ctx, host, port, server)
        except (OSError, ssl.SSLError) as e:
            raise CheckFailed(f"connect/close cycle {done + 1}: {e}")
        hard_close(s)
        done += 1
    note(f"cycles: {done} TLS connect/close cycles without close_notify in {time.monotonic() - t0:.2f} s")
    print(f"{done} cycles in {time.monotonic() - t0:.1f} s")


def refused_hellos(host, port, ca, certs, node, server, fingerprint, count):
    ctx = client_context(ca, certs, node)
    t0 = time.monotonic()
    for i in range(int(count)):
        s = tls_connect(ctx, host, port, server)
        try:
            s.sendall(hello(f"not-{node}-{i}", fingerprint))
            try:
                frames = Reader(s).until_closed(5)
            except TimeoutError:
                raise CheckFailed(f"hello {i + 1} with a name not in the certificate was not refused within 5 s")
            require(frames and frames[0][0] == ERROR, f"hello {i + 1} with a name not in the certificate got {frames}")
        finally:
            hard_close(s)
    print(f"{count} refused hellos in {time.monotonic() - t0:.1f} s")


# --- files ---------------------------------------------------------------------------


def gzip_bomb(directory, total):
    """Builds the deflate stream from one compressed block of zeros repeated: compressing
    1 GiB at run time would take longer than the check itself."""
    block = 8 << 20
    blocks = max(1, int(total) // block)
    total = blocks * block
    os.makedirs(directory, exist_ok=True)
    header = struct.pack(">IIII", 0x803, 10, 28, 28)
    z = zlib.compressobj(9, zlib.DEFLATED, -15)  # raw deflate; the gzip wrapper is written here
    first = z.compress(header + bytes(block - len(header))) + z.flush(zlib.Z_FULL_FLUSH)
    zeros = z.compress(bytes(block)) + z.flush(zlib.Z_FULL_FLUSH)
    again = z.compress(bytes(block)) + z.flush(zlib.Z_FULL_FLUSH)
    require(zeros == again, "zlib does not compress equal blocks after a full flush to equal bytes")
    last = z.flush(zlib.Z_FINISH)
    crc = zlib.crc32(header + bytes(block - len(header)))
    zero_crc_block = bytes(block)
    for _ in range(blocks - 1):
        crc = zlib.crc32(zero_crc_block, crc)
    images = os.path.join(directory, "t10k-images-idx3-ubyte.gz")
    with open(images, "wb") as f:
        f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")
        f.write(first)
        for _ in range(blocks - 1):
            f.write(zeros)
        f.write(last)
        f.write(struct.pack("<II", crc & 0xFFFFFFFF, total & 0xFFFFFFFF))
        written = f.tell()
    labels = os.path.join(directory, "t10k-labels-idx1-ubyte.gz")
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(labels, "wb") as f:
        f.write(z.compress(struct.pack(">II", 0x801, 10) + bytes(range(10))) + z.flush())
    note(f"gzip bomb: {images}: {written} bytes inflating to {total} bytes; header: 10 images of 28x28")
    print(f"{written} bytes inflating to {total >> 20} MiB")


def model_bomb(src, dst, variant):
    if os.path.exists(dst):
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    path = os.path.join(dst, "model.json")
    with open(path) as f:
        spec = json.load(f)
    if variant == "width":
        layer = next(l for l in spec["stages"][0]["trunk"] if l.get("op") == "conv")
        layer["out"] = 1 << 40
    elif variant == "input":
        spec["input"] = [1 << 31, 1 << 31, 1 << 31]
    else:
        raise CheckFailed(f"unknown variant {variant}")
    with open(path, "w") as f:
        json.dump(spec, f, indent=2)
    print(dst)


# --- Protocol version 2 ----------------------------------------------------------------

VERSION2 = 2
STATS_REQUEST, STATS = 7, 8
BAD_FRAME, DUPLICATE_REQUEST_ID, BAD_TENSOR = 1, 8, 9
COMPACT_MARKER = 0xA0
CODEC_FLOAT32, ZSTD = 0, 2
TCP_ESTABLISHED = 1


def varint(n):
    """Unsigned LEB128, shortest form."""
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def compact(kind, payload=b"", request_id=0):
    """A version 2 frame: `0xA0 | type`, varint request id, varint length, payload."""
    return bytes([COMPACT_MARKER | kind]) + varint(request_id) + varint(len(payload)) + payload


def hello_v2(name, fingerprint, names=(), role=ROLE_DEVICE):
    """A version 2 hello: the 20-byte header with version byte 2, protocolVersion 2 in the
    payload, then the names table (a client's is empty; NAMES makes a non-empty one)."""
    encoded = name.encode() if isinstance(name, str) else name
    fp = bytes.fromhex(fingerprint)
    require(len(fp) == 32, f"fingerprint must be 32 bytes, got {len(fp)}")
    table = bytes([len(names)]) + b"".join(bytes([len(n.encode())]) + n.encode() for n in names)
    payload = struct.pack(">HBH", VERSION2, role, len(encoded)) + encoded + fp + table
    return HEADER.pack(MAGIC, VERSION2, HELLO, 0, 0, len(payload)) + payload


def parse_varint(buf, i):
    """(value, next index), or (None, i) when BUF ends inside the varint."""
    value = shift = 0
    while i < len(buf):
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7
        require(shift < 70, "the server sent a varint longer than 10 bytes")
    return None, i


class CompactReader(Reader):
    """Frames of a version 2 connection after its helloAck (compact headers)."""

    def __init__(self, sock, buf=b""):
        super().__init__(sock)
        self.buf = buf

    def frame(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if self.buf:
                first = self.buf[0]
                require(first & 0xF0 == COMPACT_MARKER, f"the server sent bytes that are not a compact frame: {self.buf[:24].hex()}")
                rid, i = parse_varint(self.buf, 1)
                length, j = (None, i) if rid is None else parse_varint(self.buf, i)
                if length is not None and len(self.buf) >= j + length:
                    payload = self.buf[j:j + length]
                    self.buf = self.buf[j + length:]
                    return first & 0x0F, rid, payload
            if not self._fill(deadline):
                return None


def tcp_state(sock):
    """The kernel's TCP state of SOCK (1 = established; 7 = closed, 8 = close-wait: the peer
    closed), read with TCP_INFO so that nothing is read from the stream."""
    try:
        return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
    except OSError:
        return 7


def zstd_zeros(size, level=19):
    """One Zstandard frame (stating its content size) of SIZE zero bytes, made by the system's
    libzstd.so.1, the library the nodes load."""
    import ctypes
    try:
        lib = ctypes.CDLL("libzstd.so.1")
    except OSError as e:
        raise CheckFailed(f"cannot load libzstd.so.1 ({e}); install it with: apt-get install libzstd1")
    lib.ZSTD_compressBound.restype = ctypes.c_size_t
    lib.ZSTD_compressBound.argtypes = [ctypes.c_size_t]
    lib.ZSTD_compress.restype = ctypes.c_size_t
    lib.ZSTD_compress.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    lib.ZSTD_isError.restype = ctypes.c_uint
    lib.ZSTD_isError.argtypes = [ctypes.c_size_t]
    lib.ZSTD_getFrameContentSize.restype = ctypes.c_ulonglong
    lib.ZSTD_getFrameContentSize.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    cap = lib.ZSTD_compressBound(size)
    dst = ctypes.create_string_buffer(cap)
    n = lib.ZSTD_compress(dst, cap, bytes(size), size, level)
    require(not lib.ZSTD_isError(n), f"ZSTD_compress failed with code {n}")
    stated = lib.ZSTD_getFrameContentSize(dst, n)
    require(stated == size, f"the zstd frame states a content size of {stated}, not {size}")
    return dst.raw[:n]


def cpu_ticks(pid):
    """User + system time of PID so far, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def fd_limit(pid):
    with open(f"/proc/{pid}/limits") as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise CheckFailed(f"no descriptor limit in /proc/{pid}/limits")


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def flood_peers(count):
    """Peer identities for COUNT attacking connections: device-16, device-15, ... (never
    device-1, the real device), spread so that none holds more than four."""
    return [f"device-{16 - i % 12}" for i in range(count)]


# --- (1) statsRequest frames, answers never read ------------------------------------------


def stats_flood(host, port, ca, certs, server, fingerprint, pid, peers, connections, seconds, max_rss):
    """CONNECTIONS version 2 connections, as the comma-separated node names PEERS in turn,
    send statsRequest frames (empty payload, fresh non-zero ids) as fast as the edge takes
    them and never read. The edge must stop reading them and close each within SECONDS; its
    VmRSS, sampled every 100 ms, must stay under MAX_RSS_MB."""
    connections, seconds, max_rss = int(connections), float(seconds), float(max_rss)
    names = peers.split(",")
    peers = [names[i % len(names)] for i in range(connections)]
    contexts = {p: client_context(ca, certs, p) for p in set(peers)}
    conns = [authenticated(contexts[p], host, port, server, p, fingerprint, version=2)[0] for p in peers]
    start_rss, start_hwm = rss(pid)
    hz, c0 = os.sysconf("SC_CLK_TCK"), cpu_ticks(pid)
    t0 = time.monotonic()
    sent = [0] * connections          # statsRequest frames written
    last_sent = [0.0] * connections   # when the last batch was taken
    stalled = [None] * connections    # when a batch first waited more than 200 ms
    ended = [None] * connections      # when the edge closed the connection
    stop = threading.Event()
    per_batch = 3000                  # 3000 frames of at most 5 bytes: one TLS record

    def flood(i):
        s = conns[i]
        s.settimeout(0.2)
        rid, batch = 1, None
        while not stop.is_set() and ended[i] is None:
            if batch is None:
                batch = b"".join(compact(STATS_REQUEST, b"", rid + k) for k in range(per_batch))
            try:
                s.send(batch)     # all or nothing (no partial TLS writes); retried as is after a timeout
            except (socket.timeout, ssl.SSLWantWriteError):
                if stalled[i] is None:
                    stalled[i] = time.monotonic() - t0
                continue
            except (ssl.SSLError, OSError):
                break
            sent[i] += per_batch
            rid += per_batch
            batch = None
            last_sent[i] = time.monotonic() - t0

    threads = [threading.Thread(target=flood, args=(i,), daemon=True) for i in range(connections)]
    for t in threads:
        t.start()
    peak, hwm, samples, gone = start_rss, start_hwm, 0, False
    try:
        while time.monotonic() - t0 < seconds:
            now = time.monotonic() - t0
            try:
                r, h = rss(pid)
            except OSError:
                gone = True
                break
            peak, hwm, samples = max(peak, r), max(hwm, h), samples + 1
            for i, s in enumerate(conns):
                if ended[i] is None and tcp_state(s) != TCP_ESTABLISHED:
                    ended[i] = now
            if all(e is not None for e in ended):
                break
            time.sleep(0.1)
    finally:
        stop.set()
        for t in threads:
            t.join(2)
        end_rss = rss(pid)[0] if alive(pid) else 0.0
        cpu = (cpu_ticks(pid) - c0) / hz if alive(pid) else 0.0
        for s in conns:
            hard_close(s)
    total = sum(sent)
    closed = [e for e in ended if e is not None]
    delays = [e - l for e, l in zip(ended, last_sent) if e is not None]
    note(f"stats flood: {connections} connections, {total} statsRequest frames written; per connection sent {sent}, "
         f"stalled at {[None if x is None else round(x, 2) for x in stalled]} s, last batch at "
         f"{[round(x, 2) for x in last_sent]} s, closed by the edge at {[None if x is None else round(x, 2) for x in ended]} s; "
         f"edge VmRSS {start_rss:.0f} MB before, peak {peak:.0f} MB over {samples} samples, {end_rss:.0f} MB after; "
         f"VmHWM {start_hwm:.0f} -> {hwm:.0f} MB")
    require(not gone and alive(pid), "the edge is gone (it crashed or was killed during the stats flood)")
    waited = [x for x in stalled if x is not None]
    summary = (f"{total} statsRequest frames on {connections} connections that never read; edge VmRSS "
               f"{start_rss:.0f} MB before, peak {peak:.0f} MB (VmHWM {hwm:.0f} MB, {samples} samples every 100 ms), "
               f"{end_rss:.0f} MB at the end; edge CPU {cpu:.2f} s; {len(waited)} connections stopped being read "
               + (f"({min(waited):.1f} to {max(waited):.1f} s in)" if waited else "")
               + f", {len(closed)} closed by the edge"
               + (f" {min(delays):.1f} to {max(delays):.1f} s after their last accepted batch" if delays else ""))
    require(peak < max_rss, f"{summary}: VmRSS not under {max_rss:.0f} MB")
    require(len(waited) == connections,
            f"{summary}: {connections - len(waited)} connections never had to wait: the edge kept reading")
    require(len(closed) == connections,
            f"{summary}: {connections - len(closed)} of {connections} connections still open after {seconds:.0f} s")
    print(summary)


# --- (2) compressed tensors of a huge stated shape --------------------------------------------


def zstd_flood(host, port, ca, certs, server, fingerprint, pid, stage, frames, per_connection, seconds):
    """Sends up to FRAMES infer frames (for stage STAGE) whose float32 tensor states the shape
    [1, 2048, 2048] and carries a ~530-byte zstd stream that inflates to exactly that (16 MiB),
    PER_CONNECTION in one write per connection, for at most SECONDS. Each connection must be
    answered with badTensor and closed; the edge's CPU time over the attack is measured."""
    frames, per_connection, seconds = int(frames), int(per_connection), float(seconds)
    shape = (1, 2048, 2048)
    stream = zstd_zeros(4 * shape[0] * shape[1] * shape[2])

    def infer(rid):
        tensor = bytes([ZSTD << 4 | CODEC_FLOAT32, len(shape)]) + b"".join(varint(d) for d in shape) + stream
        return compact(INFER, varint(rid) + varint(0) + bytes([int(stage)]) + tensor, rid)

    batch = b"".join(infer(rid) for rid in range(1, per_connection + 1))
    peers = flood_peers(12)
    contexts = {p: client_context(ca, certs, p) for p in peers}
    hz = os.sysconf("SC_CLK_TCK")
    c0, t0 = cpu_ticks(pid), time.monotonic()
    sent = conns = 0
    outcomes = {}
    first_text = ""
    close_times = []
    while sent < frames and time.monotonic() - t0 < seconds:
        p = peers[conns % len(peers)]
        s, r = authenticated(contexts[p], host, port, server, p, fingerprint, version=2)
        conns += 1
        try:
            t1 = time.monotonic()
            try:
                s.sendall(batch)
            except (ssl.SSLError, OSError):
                pass    # the edge may close before it took every frame
            sent += per_connection
            try:
                got = r.until_closed(5)
            except TimeoutError:
                raise CheckFailed(f"connection {conns}: {per_connection} shape bombs sent, still open after 5 s")
            close_times.append(time.monotonic() - t1)
            if got and got[0][0] == ERROR:
                code = error_code(got[0][2])
                first_text = first_text or error_text(got[0][2])
            else:
                code = f"frame type {got[0][0]}" if got else "closed without a frame"
            outcomes[code] = outcomes.get(code, 0) + 1
            require(not any(k == RESULT for k, _, _ in got), f"connection {conns}: a shape bomb was answered with a result")
        finally:
            hard_close(s)
    elapsed = time.monotonic() - t0
    require(alive(pid), "the edge is gone (it crashed or was killed during the zstd flood)")
    cpu = (cpu_ticks(pid) - c0) / hz
    note(f"zstd flood: stream of {len(stream)} bytes for {shape}; {sent} frames on {conns} connections in {elapsed:.2f} s; "
         f"outcomes {outcomes}; closed {min(close_times) * 1000:.1f} to {max(close_times) * 1000:.1f} ms after the write; "
         f"edge CPU {cpu:.2f} s; first refusal: {first_text!r}")
    summary = (f"{sent} frames stating {list(shape)} ({len(stream)}-byte zstd stream, 16 MiB inflated) on {conns} connections "
               f"in {elapsed:.1f} s; edge CPU {cpu:.2f} s")
    require(outcomes.get(BAD_TENSOR, 0) == conns,
            f"{summary}: not every connection got badTensor ({BAD_TENSOR}): {outcomes}")
    print(f"{summary}; every connection refused with badTensor and closed")


# --- (3) the metrics port out of descriptors ---------------------------------------------------


def metrics_exhaust(host, port, pid, count, seconds):
    """Opens COUNT plain TCP connections to the metrics port HOST:PORT (non-blocking, nothing
    sent) and holds them for SECONDS: once the node's descriptors are all taken, the rest wait
    in its accept queue and every accept fails with EMFILE. Samples the node's descriptors and
    CPU time every 100 ms and reports its CPU use from the moment the table was full."""
    count, seconds = int(count), float(seconds)
    raise_fd_limit(3 * count + 64)
    limit = fd_limit(pid)
    hz = os.sysconf("SC_CLK_TCK")
    start_fds = fd_count(pid)
    socks = []
    t0 = time.monotonic()

    def open_connections(n):
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            if s.connect_ex((host, int(port))) not in (0, 115, 11):
                s.close()
                continue
            socks.append(s)

    open_connections(count)
    peak, full_at, full_ticks, samples = start_fds, None, None, []
    while time.monotonic() - t0 < seconds:
        if not alive(pid):
            break
        # Connections whose SYN the full accept queue dropped are retried by the kernel only after
        # a second or more: until the table is full, keep adding some (at most 3 x COUNT in all).
        if full_at is None and len(socks) < 3 * count:
            open_connections(min(32, 3 * count - len(socks)))
        try:
            n, ticks = fd_count(pid), cpu_ticks(pid)
        except OSError:
            break
        now = time.monotonic() - t0
        samples.append((now, n, ticks))
        peak = max(peak, n)
        if full_at is None and n >= limit:
            full_at, full_ticks = now, ticks
        time.sleep(0.1)
    end = time.monotonic() - t0
    established = sum(1 for s in socks if tcp_state(s) == TCP_ESTABLISHED)
    for s in socks:
        s.close()
    require(alive(pid), "the node is gone (it crashed or was killed while its descriptors were exhausted)")
    end_ticks = samples[-1][2] if samples else 0
    # While the episode lasts (5 s after its last failure) the node's readiness counts its failed accepts.
    time.sleep(0.6)
    readiness, failures = "", None
    try:
        conn = http.client.HTTPConnection(host, int(port), timeout=3)
        conn.request("GET", "/readyz")
        answer = conn.getresponse()
        readiness = f"{answer.status} {answer.read().decode(errors='replace').strip()}"
        conn.close()
        m = re.search(r"\((\d+) failed accepts\)", readiness)
        failures = int(m.group(1)) if m else None
    except (OSError, http.client.HTTPException) as e:
        readiness = f"no answer from /readyz: {e}"
    note(f"metrics exhaust: {len(socks)} connections started, {established} established at the end; node descriptors "
         f"{start_fds} before, peak {peak} of {limit}; full after {full_at if full_at is None else round(full_at, 2)} s; "
         f"samples (t, fds, ticks): {[(round(t, 1), n, k) for t, n, k in samples[::5]]}; readiness after: {readiness}")
    require(full_at is not None, f"the node's descriptors peaked at {peak} of {limit}: never exhausted, the check proves nothing")
    window = max(0.1, samples[-1][0] - full_at)
    cpu = 100 * (end_ticks - full_ticks) / hz / window
    print(f"{established} connections held on the metrics port for {end:.1f} s; node descriptors {start_fds} -> {peak} of "
          f"{limit} (full after {full_at:.2f} s); node CPU {cpu:.1f}% over the {window:.1f} s exhausted; "
          f"{'?' if failures is None else failures} failed accepts in the episode (its /readyz)")


# --- (4) smaller ones -------------------------------------------------------------------------


def small_cases(host, port, ca, certs, server, fingerprint, handshake_ms, margin_ms):
    """Three quick replays on one edge (stage 1, input [8, 7, 7]):
    a version 1 frame header dribbled one byte every 250 ms after the hello must be cut with
    limitReached HANDSHAKE_MS (+ MARGIN_MS) after its first byte; a statsRequest reusing the
    id of an infer in flight gets duplicateRequestID while the infer is still answered; a client
    hello with a non-empty names table gets badFrame and the close."""
    handshake, margin = int(handshake_ms) / 1000, int(margin_ms) / 1000
    ctx = client_context(ca, certs, "device-16")
    figures = []

    # A v1 header, one byte at a time (it never completes: 19 of its 20 bytes at most).
    s, r = authenticated(ctx, host, port, server, "device-16", fingerprint)
    try:
        header = frame(INFER, request_id=1, length=2000)
        t0 = time.monotonic()
        cut, got = None, []
        for i in range(HEADER.size - 1):
            try:
                s.sendall(header[i:i + 1])
            except (ssl.SSLError, OSError):
                cut = time.monotonic() - t0
                break
            try:
                got = r.until_closed(0.25)
                cut = time.monotonic() - t0
                break
            except TimeoutError:
                pass
        if cut is None:
            try:
                got = r.until_closed(handshake + margin)
                cut = time.monotonic() - t0
            except TimeoutError:
                raise CheckFailed(f"a frame header dribbled one byte every 250 ms is still open after "
                                  f"{time.monotonic() - t0:.1f} s (handshakeTimeoutMs {handshake_ms})")
        note(f"dribble: cut after {cut:.2f} s; frames {[(k, error_code(p), error_text(p)) for k, _, p in got]}")
        require(handshake - 0.1 <= cut <= handshake + margin,
                f"a dribbled frame header was cut {cut:.2f} s after its first byte, expected {handshake:.1f} "
                f"to {handshake + margin:.1f} s")
        require(got and got[0][0] == ERROR and error_code(got[0][2]) == LIMIT_REACHED,
                f"a dribbled frame header was cut with {[(k, error_code(p)) for k, _, p in got]}, not error {LIMIT_REACHED}")
        figures.append(f"dribbled v1 header cut after {cut:.2f} s with error {LIMIT_REACHED}")
    finally:
        hard_close(s)

    # An infer in flight, and a statsRequest with its id in the same write.
    s, r = authenticated(ctx, host, port, server, "device-16", fingerprint, version=2)
    try:
        features = bytes([CODEC_FLOAT32, 3]) + varint(8) + varint(7) + varint(7) + bytes(4 * 8 * 7 * 7)
        s.sendall(compact(INFER, varint(1) + varint(0) + bytes([1]) + features, 5) + compact(STATS_REQUEST, b"", 5))
        got = []
        deadline = time.monotonic() + 5
        while not (any(k == ERROR for k, _, _ in got) and any(k == RESULT for k, _, _ in got)):
            try:
                f = r.frame(max(0.001, deadline - time.monotonic()))
            except TimeoutError:
                break
            if f is None:
                break
            got.append(f)
        kinds = [(k, rid, error_code(p) if k == ERROR else None) for k, rid, p in got]
        note(f"duplicate id: frames {kinds}")
        require((ERROR, 5, DUPLICATE_REQUEST_ID) in kinds,
                f"a statsRequest reusing the id of an infer in flight got {kinds}, not error {DUPLICATE_REQUEST_ID} for id 5")
        require(any(k == RESULT and rid == 5 for k, rid, _ in kinds), f"the infer in flight was not answered: {kinds}")
        time.sleep(0.2)
        require(tcp_state(s) == TCP_ESTABLISHED, "the edge closed the connection after duplicateRequestID")
        figures.append(f"statsRequest reusing an in-flight id: error {DUPLICATE_REQUEST_ID}, the infer answered, connection open")
    finally:
        hard_close(s)

    # A client hello with a names table.
    s = tls_connect(ctx, host, port, server)
    try:
        s.sendall(hello_v2("device-16", fingerprint, names=("edge", "cloud")))
        try:
            got = Reader(s).until_closed(5)
        except TimeoutError:
            raise CheckFailed("a client hello with a names table is still open after 5 s")
        note(f"names table: frames {[(k, error_code(p), error_text(p)) for k, _, p in got]}")
        require(got and got[0][0] == ERROR and error_code(got[0][2]) == BAD_FRAME,
                f"a client hello with a names table got {[(k, error_code(p)) for k, _, p in got]}, not error {BAD_FRAME}")
        figures.append(f"client hello with 2 names: error {BAD_FRAME}, closed")
    finally:
        hard_close(s)
    print("; ".join(figures))


def latency(report):
    """`p50 mean p99 edge-p50 answered degraded failed` of a device report (the edge-p50 is that
    of the samples answered at exit 1, - if none); exits 1 when the report is missing."""
    try:
        with open(report) as f:
            r = json.load(f)
    except (OSError, ValueError) as e:
        raise CheckFailed(f"no readable device report {report}: {e}")
    edge = next((e for e in r.get("exits", []) if e.get("index") == 1 and e.get("count")), None)
    print(f"{r['latencyMs']['p50']:.3f} {r['latencyMs']['mean']:.3f} {r['latencyMs']['p99']:.3f} "
          f"{format(edge['latencyMs']['p50'], '.3f') if edge else '-'} {r['answered']} {r['degraded']} {r['failed']}")


# --- device runs, measured commands, logs ---------------------------------------------


def device_report(report, predictions, samples, mode):
    """MODE `answered`: every sample answered, none degraded or failed.
    MODE `local`: every sample answered at the device's own exit (index 0), none failed,
    and the device never completed a handshake upstream."""
    samples = int(samples)
    try:
        with open(report) as f:
            r = json.load(f)
        with open(predictions) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError) as e:
        raise CheckFailed(f"no readable device report: {e}")
    require(r.get("samples") == samples, f"the device report has {r.get('samples')} samples, expected {samples}")
    require(len(rows) == samples and sorted(p["sample"] for p in rows) == list(range(samples)),
            f"{len(rows)} predictions, not each of the {samples} samples once")
    counts = {k: r.get(k) for k in ("answered", "degraded", "failed")}
    note(f"device report: {counts}, connections {r.get('deviceLinkConnections')}, "
         f"exits {[(e['name'], e['count']) for e in r.get('exits', [])]}")
    require(counts["failed"] == 0, f"{counts['failed']} samples failed")
    if mode == "answered":
        require(counts["answered"] == samples, f"answered {counts['answered']}, degraded {counts['degraded']} of {samples}")
        require(all(p["status"] == "answered" for p in rows), "some predictions are not 'answered'")
        print(f"{samples} answered, none degraded")
    elif mode == "local":
        upstream = [p for p in rows if p["exit"] != 0]
        if upstream:
            raise CheckFailed(f"{len(upstream)} samples answered by exit {upstream[0]['exit']}, not the device's")
        require(not r.get("deviceLinkConnections"), f"the device counted {r.get('deviceLinkConnections')} upstream handshakes")
        print(f"{samples} answered by the device itself ({counts['degraded']} degraded)")
    else:
        raise CheckFailed(f"unknown mode {mode}")


def measure(seconds, out, *command):
    """Runs COMMAND (stdout and stderr inherited) for at most SECONDS; writes to OUT a JSON
    object with its exit status (negative: killed by that signal; `timeout`: still running),
    its wall time and its peak resident set size (ru_maxrss from wait4)."""
    t0 = time.monotonic()
    child = subprocess.Popen(list(command), stdin=subprocess.DEVNULL)
    status, rusage = None, None
    try:
        while True:
            pid, st, ru = os.wait4(child.pid, os.WNOHANG)
            if pid:
                status, rusage = st, ru
                break
            if time.monotonic() - t0 > float(seconds):
                child.kill()
                _, st, ru = os.wait4(child.pid, 0)
                status, rusage = "timeout", ru
                break
            time.sleep(0.005)
    finally:
        if status is None:
            child.kill()
            os.wait4(child.pid, 0)
    elapsed = time.monotonic() - t0
    if status != "timeout":
        status = os.waitstatus_to_exitcode(status)
    result = {"status": status, "seconds": round(elapsed, 3), "maxRssMB": round(rusage.ru_maxrss / 1024, 1)}
    with open(out, "w") as f:
        json.dump(result, f)


def log_escaped(log, offset, escaped, forged):
    """From line OFFSET + 1 on, LOG holds ESCAPED literally, no line starts with FORGED, and
    the whole log holds no ESC, NUL or other C0 control byte but newline and tab."""
    with open(log, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    recent = b"\n".join(lines[int(offset):])
    bad = sorted({b for b in data if b < 0x20 and b not in (0x0A, 0x09)})
    require(not bad, f"the log holds raw control bytes {', '.join(f'0x{b:02x}' for b in bad)}")
    forged_lines = [l for l in lines if l.startswith(forged.encode())]
    if forged_lines:
        raise CheckFailed(f"the log has a forged line: {forged_lines[0][:80].decode(errors='replace')!r}")
    require(escaped.encode() in recent, f"the log does not show the escaped name {escaped!r}")
    line = next(l for l in recent.split(b"\n") if escaped.encode() in l)
    note(f"log line: {line.decode(errors='replace')}")
    print("the forged name is logged escaped on one line")


def main(argv):
    commands = {
        "impostor": (impostor, 6), "impostor-verdict": (impostor_verdict, 1), "sans": (sans, 1),
        "timeouts": (timeouts, 10), "hold": (hold, 5), "hold-verdict": (hold_verdict, 3),
        "peer-cap": (peer_cap, 8), "budget": (budget, 12), "inject": (inject, 8), "cycles": (cycles, 7),
        "refused-hellos": (refused_hellos, 8), "gzip-bomb": (gzip_bomb, 2), "model-bomb": (model_bomb, 3),
        "device-report": (device_report, 4), "log-escaped": (log_escaped, 4),
        "stats-flood": (stats_flood, 11), "zstd-flood": (zstd_flood, 11), "metrics-exhaust": (metrics_exhaust, 5),
        "small-cases": (small_cases, 8), "latency": (latency, 1),
    }
    if len(argv) >= 5 and argv[1] == "measure":
        measure(*argv[2:])
        return 0
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]][1]:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        commands[argv[1]][0](*argv[2:])
    except CheckFailed as e:
        print(e)
        return 1
    except (OSError, ssl.SSLError, TimeoutError) as e:
        print(f"{argv[1]}: {type(e).__name__}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
