"""Checks of common.py against running nodes: the frames of PROTOCOL.md for scripts/e2e.sh's TLS
probes, a node's /metrics and Prometheus (scripts/operations.sh, netns-cluster.sh)."""
import json, os, re, struct, time, urllib.parse, urllib.request

from check_helpers import load, require


# --- frames of PROTOCOL.md (scripts/e2e.sh's TLS probes) ------------------------------------

HEADER = struct.Struct(">4sBBHQI")  # magic, version, type, flags, requestID, payloadLength
HELLO, HELLO_ACK, ERROR = 1, 2, 5


def frame(kind, payload=b""):
    return HEADER.pack(b"BRNY", 1, kind, 0, 0, len(payload)) + payload


def hello(path, name, role, fingerprint):
    fp = bytes.fromhex(fingerprint)
    require(len(fp) == 32, f"fingerprint must be 32 bytes, got {len(fp)}")
    payload = struct.pack(">HBH", 1, {"device": 1, "edge": 2, "cloud": 3}[role], len(name)) + name.encode() + fp
    open(path, "wb").write(frame(HELLO, payload))


def hello_header(path):
    open(path, "wb").write(frame(HELLO))


def only_error_frames(path):
    data = open(path, "rb").read()
    while data:
        require(len(data) >= HEADER.size and data[:4] == b"BRNY", f"got {len(data)} bytes that are not a Branchy frame: {data[:24].hex()}")
        kind, length = HEADER.unpack_from(data)[2], HEADER.unpack_from(data)[5]
        require(kind == ERROR, f"got a frame of type {kind}" + (" (helloAck: the hello was accepted)" if kind == HELLO_ACK else ""))
        data = data[HEADER.size + length:]


def only_tls_alerts(path):
    data = open(path, "rb").read()
    require(b"BRNY" not in data, f"the reply holds a Branchy frame: {data[:24].hex()}")
    while data:
        require(len(data) >= 5 and data[0] == 21, f"got {len(data)} bytes that are not a TLS alert: {data[:24].hex()}")
        data = data[5 + int.from_bytes(data[3:5], "big"):]


# --- Prometheus and /metrics (scripts/operations.sh, netns-cluster.sh) -------------------------

def metric(address, name, *labels):
    """The sum of a node's series NAME with the given label=value pairs, as an integer."""
    want = dict(a.split("=", 1) for a in labels)
    total = 0.0
    for line in urllib.request.urlopen(f"http://{address}/metrics", timeout=10).read().decode().splitlines():
        m = re.match(r"([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if m and m.group(1) == name:
            have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
            if all(have.get(k) == v for k, v in want.items()):
                total += float(m.group(3))
    print(int(total))


def promql(prometheus, expr):
    url = f"http://{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    body = json.load(urllib.request.urlopen(url, timeout=10))
    require(body.get("status") == "success", f"Prometheus query {expr!r} failed: {body}")
    return [(s["metric"], float(s["value"][1])) for s in body["data"]["result"]]


def prometheus(address, report_path, path):
    """Every link's bytes, per direction and from both ends, and every exit's requests, as Prometheus
    scraped them, equal the device's report."""
    r, path = load(report_path), path.split(",")
    written, deadline = os.path.getmtime(report_path), time.time() + 30
    while True:  # a scrape of every node after the report was written
        seen = {l.get("node"): v for l, v in promql(address, "timestamp(branchy_node_info)")}
        if all(seen.get(n, 0) > written + 0.2 for n in path):
            break
        require(time.time() < deadline, f"Prometheus has no scrape of {', '.join(n for n in path if seen.get(n, 0) <= written + 0.2)} after the report was written")
        time.sleep(0.25)
    total = lambda q: sum(v for _, v in promql(address, q))
    problems = []
    for link in r["linkTotals"]:
        name = link["link"]
        child, parent = name.split("->")
        for direction, want in (("sent", link["bytesSent"]), ("received", link["bytesReceived"])):
            other = "received" if direction == "sent" else "sent"
            a = total(f'sum(branchy_link_bytes_total{{node="{child}",link="{name}",direction="{direction}"}})')
            b = total(f'sum(branchy_link_bytes_total{{node="{parent}",link="{name}",direction="{other}"}})')
            print(f"{name} {direction}: report {want}, {child} {int(a)}, {parent} {int(b)}")
            if not a == want == b:
                problems.append(f"{name} {direction}: report {want} B, {child} scraped {int(a)}, {parent} scraped {int(b)} ({other})")
        handshake = total(f'sum(branchy_link_bytes_total{{node="{child}",link="{name}",kind="handshake"}})')
        if handshake != link["handshakeBytes"]:
            problems.append(f"{name} handshakes: report {link['handshakeBytes']} B, {child} scraped {int(handshake)}")
    # Each node counts the requests answered at it or above it on the path, by exit.
    position = {n: i for i, n in enumerate(path)}
    scraped = {(l["node"], l["exit"]): int(v) for l, v in promql(address, 'sum by (node, exit) (branchy_requests_total{status="answered"})')}
    for node in path:
        for e in r["exits"]:
            got, expected = scraped.get((node, e["name"]), 0), e["count"] if position.get(e["node"], -1) >= position[node] else 0
            if got != expected:
                problems.append(f"{node} {e['name']}: scraped {got} answered, report says {expected}")
    print("exits " + ", ".join(f"{e['name']} {e['count']}" for e in r["exits"]))
    require(not problems, "; ".join(problems))


def failover(path, kill_at, back_at):
    r = load(path)
    timeline = r["throughputTimeline"]
    before, after = timeline[:max(1, int(float(kill_at)))], timeline[int(float(back_at)) + 1:-1] or timeline[-1:]
    print(f"answered {r['answered']}, degraded {r['degraded']}, failed {r['failed']}")
    print(f"throughput before the kill {sum(before) / len(before):.0f}/s, after the restart {sum(after) / len(after):.0f}/s")
    print("timeline " + " ".join(map(str, timeline)))
    require(not (r["failed"] or r["degraded"]), f"{r['failed']} failed and {r['degraded']} degraded of {r['samples']}; expected none")


def reload(path, preds, split):
    """Among the samples the device forwarded, the share that left at the edge rose after the reload."""
    r, rows = load(path), [json.loads(l) for l in open(preds)]
    n, cut = len(rows), int(len(rows) * float(split))

    def share(part):
        fwd = [x for x in part if x["exit"] != 0]
        return sum(1 for x in fwd if x["exit"] == 1) / max(1, len(fwd)), len(fwd)
    (early, ne), (late, nl) = share(rows[:int(cut * 0.9)]), share(rows[int(cut + (n - cut) * 0.1):])
    print(f"answered {r['answered']}, degraded {r['degraded']}, failed {r['failed']}")
    print(f"edge exit share of forwarded samples: {100 * early:.1f}% before the reload ({ne} samples), {100 * late:.1f}% after ({nl})")
    require(not (r["failed"] or r["degraded"] or r["answered"] != n), f"{r['failed']} failed and {r['degraded']} degraded of {n}; expected every sample answered")
    require(late >= early + 0.2, f"the edge exit share went from {100 * early:.1f}% to {100 * late:.1f}%; the reload's threshold did not take effect")
