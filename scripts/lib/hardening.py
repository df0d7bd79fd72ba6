#!/usr/bin/env python3
"""Probes for the hardening checks of scripts/e2e-faults.sh (Python 3 standard library only).

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
  model-bomb SRC DST VARIANT
      Copies the model folder SRC to DST and makes model.json announce a huge size:
      VARIANT `width` sets the first conv layer's `out` to 2^40, `input` sets `input`
      to [2^31, 2^31, 2^31].
"""
import json
import os
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


def authenticated(ctx, host, port, server, node, fingerprint, timeout=5.0):
    """A TLS connection whose hello as NODE was acknowledged: (socket, reader)."""
    s = tls_connect(ctx, host, port, server, timeout)
    s.sendall(hello(node, fingerprint))
    r = Reader(s)
    f = r.frame(timeout)
    require(f is not None, f"the server closed the connection of '{node}' after its hello")
    kind, _, payload = f
    if kind == ERROR:
        raise CheckFailed(f"hello as '{node}' refused with error {error_code(payload)}: {error_text(payload)}")
    require(kind == HELLO_ACK, f"hello as '{node}' answered with a frame of type {kind}")
    return s, r


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
