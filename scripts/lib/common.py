#!/usr/bin/env python3
"""Shared Python helpers of scripts/*.sh (standard library, plus PyYAML for topology-with):
`common.py COMMAND ARGS...`. A check prints nothing (details on stderr) and exits 0 when it holds,
else prints why on its last line and exits 1. Commands: see COMMANDS at the end."""
import html.parser, json, os, re, statistics, struct, sys, time, urllib.parse, urllib.request, zlib


class Failed(Exception):
    pass


def require(cond, why):
    if not cond:
        raise Failed(why)


def err(*a):
    print(*a, file=sys.stderr)


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise Failed(f"cannot read {path}: {e}")


def predictions(path, status=False):
    """[(sample, exit, class[, status])] of a --predictions JSONL file."""
    rows = []
    try:
        for n, line in enumerate(open(path), 1):
            if line.strip():
                try:
                    p = json.loads(line)
                    rows.append((int(p["sample"]), p["exit"], int(p["class"])) + ((p["status"],) if status else ()))
                except (ValueError, KeyError, TypeError) as e:
                    raise Failed(f"{path}:{n}: not a prediction line ({e}): {line.strip()[:80]}")
    except OSError as e:
        raise Failed(f"cannot read {path}: {e}")
    return rows


num = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)


# --- topologies ---------------------------------------------------------------------------

def query(expr, *a):
    """EXPR over `t`, the JSON of `branchy topology show` on stdin, and `a`, the ARGs."""
    v = eval(expr, {"t": json.load(sys.stdin), "a": a})
    for x in (v if isinstance(v, list) else [v]):
        if x is not None:
            print(json.dumps(x) if isinstance(x, (bool, list, dict)) else x)


def topology_with(src, out, *edits):
    """SRC (its `branchy topology show` JSON on stdin) written to OUT as JSON (which YAML reads), its
    paths absolute, with each edit KEY=VALUE applied: KEY is model, dataset, certs, NODE (deletes the
    node when VALUE is empty) or NODE.KEY[.KEY] (deletes the key when VALUE is empty); VALUE is JSON or
    else a string. A node may be new: NODE={"role": ...}."""
    import yaml
    shown = json.load(sys.stdin)
    doc = yaml.safe_load(open(src))
    for k in ("model", "dataset", "certs"):
        if shown.get(k):
            doc[k] = shown[k]
    nodes = {n["name"]: n for n in doc["nodes"]}
    for edit in edits:
        key, _, raw = edit.partition("=")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        path = key.split(".")
        if path[0] in ("model", "dataset", "certs"):
            target, path = doc, path
        elif len(path) == 1:
            if raw:
                nodes[key] = dict(value, name=key)
                doc["nodes"].append(nodes[key])
            else:
                doc["nodes"].remove(nodes.pop(key))
            continue
        else:
            target, path = nodes[path[0]], path[1:]
        for p in path[:-1]:
            target = target.setdefault(p, {})
        if raw:
            target[path[-1]] = value
        else:
            target.pop(path[-1], None)
    with open(out, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


def standin_edits(cloud_ip):
    """topology-with edits that make the topology (show JSON on stdin) a cloud-only stand-in: the device runs
    its stages but never exits (thresholds 0) and sends to the cloud at CLOUD_IP, which runs every other
    stage and exits only at the last; the edges go."""
    t = json.load(sys.stdin)
    n = {x["role"]: x for x in reversed(t["nodes"])}
    require("device" in n and "cloud" in n, "a cloud-only stand-in needs a device and a cloud")
    d, c = n["device"]["name"], n["cloud"]
    rest = [s for x in t["nodes"] if x["role"] == "edge" for s in x["stages"]] + c["stages"]
    print(f"{d}.upstream={c['name']}", f"{d}.thresholds={[0] * len(n['device']['stages'])}", f"{c['name']}.stages={json.dumps(rest)}",
          f"{c['name']}.thresholds={[0] * (len(rest) - 1)}", f"{c['name']}.listen={cloud_ip}:{c['listen'].rsplit(':', 1)[1]}",
          f"{c['name']}.address=", f"{c['name']}.replicas=", *[f"{x['name']}=" for x in t["nodes"] if x["role"] == "edge"], sep="\n")


# --- device reports and predictions ---------------------------------------------------------

def report(path, samples, preds=None):
    """The device report is complete, every sample answered or degraded, none failed."""
    r, samples = load(path), int(samples)
    missing = [k for k in ("samples", "accuracy", "exits", "totalWireBytes", "rawOffloadBytes") if k not in r]
    require(not missing, f"report {path} lacks {', '.join(missing)}")
    require(r["samples"] == samples, f"report says samples={r['samples']}, expected {samples}")
    require(num(r["accuracy"]) and 0 <= r["accuracy"] <= 1, f"accuracy {r['accuracy']!r} is not in [0, 1]")
    for k in ("totalWireBytes", "rawOffloadBytes"):
        require(num(r[k]) and r[k] >= 0, f"{k} {r[k]!r} is not a non-negative number")
    exits = r["exits"]
    require(isinstance(exits, list) and exits, "exits is not a non-empty list")
    for i, e in enumerate(exits):
        missing = [k for k in ("name", "node", "count", "accuracy", "bytesPerSample") if k not in e]
        require(not missing, f"exits[{i}] lacks {', '.join(missing)}")
        require(num(e["accuracy"]) and 0 <= e["accuracy"] <= 1, f"exits[{i}].accuracy {e['accuracy']!r} is not in [0, 1]")
    counted = sum(e["count"] for e in exits)
    outcomes = ["answered", "degraded", "failed"]
    present = [k for k in outcomes if k in r]
    if present:
        require(len(present) == 3, f"report has {', '.join(present)} but not all of {', '.join(outcomes)}")
        total = sum(r[k] for k in outcomes)
        require(total == samples, f"answered {r['answered']} + degraded {r['degraded']} + failed {r['failed']} = {total}, not {samples}")
        require(r["failed"] == 0, f"{r['failed']} samples failed")
        # Degraded answers come from an exit too, but a report may leave them out of the exit counts.
        require(r["answered"] <= counted <= r["answered"] + r["degraded"],
                f"exit counts add up to {counted}; answered {r['answered']}, degraded {r['degraded']}")
    else:
        require(counted == samples, f"exit counts add up to {counted}, not {samples}")
    if preds:
        rows = predictions(preds)
        require(len(rows) == samples, f"{preds} has {len(rows)} predictions, expected {samples}")
        require(len({s for s, _, _ in rows}) == samples, f"{preds} repeats some samples")


def every_exit(path, why="no sample answered at"):
    """Some sample left at every exit of the report: every link carried requests."""
    exits = load(path)["exits"]
    idle = [e["name"] for e in exits if e["count"] == 0]
    require(not idle, f"{why} {', '.join(idle)}")
    err("; ".join(f"{e['name']} {e['count']}" for e in exits))


def all_answered(path, samples, preds=None):
    """SAMPLES samples, every one answered (none degraded or failed), each predicted once."""
    r, samples = load(path), int(samples)
    require(r.get("samples") == samples, f"{path}: {r.get('samples')} samples, expected {samples}")
    require((r.get("answered"), r.get("degraded"), r.get("failed")) == (samples, 0, 0),
            f"{path}: answered {r.get('answered')}, degraded {r.get('degraded')}, failed {r.get('failed')} of {samples}")
    if preds:
        require({s for s, _, _ in predictions(preds)} == set(range(samples)),
                f"{path}: the predictions do not hold each of the {samples} samples once")


def same_predictions(device_path, eval_path, report_path):
    """Both JSONL files hold the same (sample, exit, class); exit names map to indices by the report."""
    index = {e["name"]: i for i, e in enumerate(load(report_path).get("exits", []))}

    def normalise(path):
        out = {}
        for sample, exit_, cls in predictions(path):
            if isinstance(exit_, str) and not exit_.isdigit():
                require(exit_ in index, f"{path}: exit '{exit_}' of sample {sample} is not among the report's exits")
                exit_ = index[exit_]
            out[sample] = (int(exit_), cls)
        return out

    device, offline = normalise(device_path), normalise(eval_path)
    require(device.keys() == offline.keys(), f"different samples: {len(device)} from the cluster, {len(offline)} from branchy eval")
    differ = [s for s in sorted(device) if device[s] != offline[s]]
    if differ:
        s = differ[0]
        raise Failed(f"{len(differ)} of {len(device)} samples differ; first: sample {s} "
                     f"cluster (exit, class) = {device[s]}, branchy eval = {offline[s]}")


def link_bytes(path, link, limit):
    """Mean request bytes on the wire per forwarded sample on LINK below LIMIT."""
    r, limit = load(path), float(limit)
    require("links" in r, "report has no per-link field 'links'")
    found = [e for e in r["links"] if e.get("link") == link]
    require(found, f"no '{link}' entry in the report's links: {[e.get('link') for e in r['links']]}")
    e = found[0]
    missing = [k for k in ("requests", "meanRequestTLSBytes", "meanRequestFrameBytes") if k not in e]
    require(not missing, f"the '{link}' entry lacks {', '.join(missing)}")
    require(e["requests"] > 0, f"no request was forwarded on {link}")
    wire, frame_ = e["meanRequestTLSBytes"], e["meanRequestFrameBytes"]
    require(wire < limit, f"{link}: {wire:.1f} request bytes on the wire per forwarded sample ({frame_:.1f} as frames), not below {limit:g}")
    err(f"{link}: {e['requests']} requests, {wire:.1f} bytes on the wire and {frame_:.1f} as frames per request")


def calibration(path):
    c = load(path)
    pts = c["points"]
    require(len(pts) >= 3, f"only {len(pts)} frontier points")
    require(0 <= c["chosen"] < len(pts), f"chosen index {c['chosen']} outside the {len(pts)} points")
    by, acc = [p["bytesPerSample"] for p in pts], [p["accuracy"] for p in pts]
    require(by == sorted(by) and acc == sorted(acc), "the frontier is not increasing in bytes and accuracy")
    require(acc[c["chosen"]] >= c["finalOnlyAccuracy"] - 0.005 - 1e-9, "the chosen point is below the accuracy floor")


def savings(path, least):
    b = load(path).get("baseline")
    require(b, "no measured baseline in the report")
    require(b["savings"] >= float(least), f"only {b['savings']:.1f}x fewer bytes than the measured raw offload")


def get(path, expr):
    """Prints EXPR over `r`, the JSON of PATH (a list one item a line)."""
    v = eval(expr, {"r": load(path)})
    print("\n".join(map(str, v)) if isinstance(v, list) else v)


# --- scripts/perf-check.sh -------------------------------------------------------------------

def allocations(path, isa):
    """`branchy bench --json --models` figures: every model path allocates nothing per sample."""
    figures = load(path)["models"]
    require(figures, "no figures")
    bad = [f for f in figures if f["allocationsPerSample"] != 0]
    require(not bad, "; ".join(f"{f['model']} {f['path']} batch {f['batch']}: {f['allocationsPerSample']} allocations per sample" for f in bad))
    w = max(figures, key=lambda f: f["usPerSample"])
    print(f"{isa}: {len(figures)} figures, 0 allocations per sample; slowest {w['model']} {w['path']} batch {w['batch']} at {w['usPerSample']:.1f} µs/sample")


def binary_ops(model_json):
    """The binary layers (sign, binlinear) of a model.json, which have no ONNX export."""
    ops = set()
    def walk(x):
        if isinstance(x, dict):
            ops.update([x["op"]] if x.get("op") in ("sign", "binlinear") else [])
            list(map(walk, x.values()))
        elif isinstance(x, list):
            list(map(walk, x))
    walk(load(model_json))
    print(",".join(sorted(ops)))


# --- the fault checks (scripts/e2e-faults.sh) ------------------------------------------------

def faults(kind, path, preds, samples, *args):
    r, samples = load(path), int(samples)
    rows = [(s, int(e), c, st) for s, e, c, st in predictions(preds, status=True)]
    for k in ("samples", "answered", "degraded", "failed", "exits", "latencyMs"):
        require(k in r, f"the report lacks '{k}'")
    require(r["samples"] == samples, f"report: samples = {r['samples']}, expected {samples}")
    total = r["answered"] + r["degraded"] + r["failed"]
    require(total == samples, f"answered {r['answered']} + degraded {r['degraded']} + failed {r['failed']} = {total}, not {samples}")
    require(len(rows) == samples, f"{len(rows)} prediction lines, expected {samples}")
    require(sorted(s for s, *_ in rows) == list(range(samples)), "the predictions do not hold each sample exactly once")
    for status in ("answered", "degraded", "failed"):
        n = sum(1 for row in rows if row[3] == status)
        require(n == r[status], f"{n} predictions {status}, the report says {r[status]}")
    last = max(e["index"] for e in r["exits"])
    err(f"samples {r['samples']}: answered {r['answered']}, degraded {r['degraded']}, failed {r['failed']}; "
        f"exits {[(e['name'], e['count'], e['degraded']) for e in r['exits']]}; "
        f"latency p50 {r['latencyMs']['p50']:.1f} ms, p99 {r['latencyMs']['p99']:.1f} ms; "
        f"connections {r.get('deviceLinkConnections')}; {r.get('durationSeconds', 0):.2f} s")
    if kind == "fail-policy":
        require(r["failed"] > 0, "no sample failed with the edge down and onUpstreamFailure: fail")
        require(r["degraded"] == 0, f"{r['degraded']} samples degraded under onUpstreamFailure: fail")
        bad = [s for s, e, c, st in rows if st == "failed" and (e != -1 or c != -1)]
        require(not bad, f"failed sample {bad[:1]} has an exit or class")
        return
    require(r["failed"] == 0, f"{r['failed']} samples failed under onUpstreamFailure: degrade")
    if kind == "edge-restart":
        require(r["degraded"] > 0, "no sample was degraded: the edge's death went unnoticed")
        require(r.get("deviceLinkConnections", 0) >= 2,
                f"deviceLinkConnections = {r.get('deviceLinkConnections')}: the device did not reconnect to the restarted edge")
        degraded = [s for s, _, _, st in rows if st == "degraded"]
        cloud = [s for s, e, _, st in rows if e == last and st == "answered"]
        before, after = [s for s in cloud if s < min(degraded)], [s for s in cloud if s > max(degraded)]
        err(f"degraded samples {min(degraded)}..{max(degraded)}; cloud answers before them {len(before)}, after them {len(after)} (exit {last})")
        require(before, f"no cloud answer (exit {last}) before the first degraded sample {min(degraded)}: the kill was not mid-run")
        require(after, f"no cloud answer (exit {last}) after the last degraded sample {max(degraded)}: "
                       "requests did not reach the cloud after the restart")
    elif kind == "cloud-down":
        require(r["degraded"] > 0, "no sample was degraded, though the cloud is down")
        reached = sum(1 for _, e, _, _ in rows if e == last)
        require(reached == 0, f"{reached} samples have the cloud's exit {last}, though the cloud is down")
    elif kind == "stall":
        deadline, margin = float(args[0]), float(args[1])
        bound = deadline + margin
        require(r["degraded"] > 0, "no sample was degraded while the cloud was stopped")
        p99 = r["latencyMs"]["p99"]
        require(p99 < bound, f"p99 latency {p99:.0f} ms, not below deadline {deadline:.0f} + {margin:.0f} ms")
        # The run's p99 may fall among the fast samples: the exits holding degraded answers must keep theirs too.
        for e in r["exits"]:
            if e["degraded"] > 0:
                require(e["latencyMs"]["p99"] < bound, f"exit {e['name']}: p99 latency {e['latencyMs']['p99']:.0f} ms over "
                        f"{e['count']} samples ({e['degraded']} degraded), not below {bound:.0f} ms")
        by_edge = sum(1 for _, e, _, st in rows if st == "degraded" and 0 < e < last)
        err(f"degraded by the edge at its own deadline: {by_edge} of {r['degraded']}")
        require(by_edge > 0, "no degraded answer came from the edge: the edge did not answer before the device's deadline")


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


# --- the HTML report as Chromium rendered it (scripts/report-check.sh) --------------------------

def png(path, width, height):
    """A valid 8-bit PNG of WIDTHxHEIGHT, not blank, with the first series colour (#4E79A7) painted."""
    data = open(path, "rb").read()
    require(data.startswith(b"\x89PNG\r\n\x1a\n"), f"{path}: not a PNG (no signature)")
    pos, idat, header = 8, [], None
    while True:
        require(pos + 8 <= len(data), f"{path}: no IEND chunk" if pos == len(data) else f"{path}: truncated chunk header at byte {pos}")
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body, crc = data[pos + 8:pos + 8 + length], data[pos + 8 + length:pos + 12 + length]
        require(len(body) == length and len(crc) == 4, f"{path}: truncated {kind!r} chunk")
        require(struct.unpack(">I", crc)[0] == zlib.crc32(kind + body), f"{path}: bad CRC in the {kind.decode(errors='replace')} chunk")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    require(header and idat, f"{path}: no IHDR or no IDAT chunk")
    w, h, depth, colour, _, _, interlace = header
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    require(depth == 8 and bpp and interlace == 0, f"{path}: unexpected PNG format (bit depth {depth}, colour type {colour}, interlace {interlace})")
    raw, stride = zlib.decompress(b"".join(idat)), w * bpp
    require(len(raw) == h * (stride + 1), f"{path}: image data is {len(raw)} bytes, expected {h * (stride + 1)} for {w}x{h}")
    require((w, h) == (int(width), int(height)), f"{path}: {w}x{h}, expected {width}x{height}")
    require(bpp >= 3, f"{path}: a grey image (colour type with {bpp} channel(s)); the charts are in colour")
    prev, non_white, series = bytearray(stride), 0, 0
    for y in range(h):  # undo the filters: None, Sub, Up, Average, Paeth
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        require(kind <= 4, f"bad filter type {kind} in row {y}")
        for i in range(stride) if kind else ():
            a, b, c = (line[i - bpp] if i >= bpp else 0), prev[i], (prev[i - bpp] if i >= bpp else 0)
            if kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            else:
                pred = (a, b, (a + b) >> 1)[kind - 1]
            line[i] = (line[i] + pred) & 0xFF
        for i in range(0, stride, bpp):
            r, g, b = line[i:i + 3]
            if r < 245 or g < 245 or b < 245:
                non_white += 1
                series += abs(r - 0x4E) < 12 and abs(g - 0x79) < 12 and abs(b - 0xA7) < 12
        prev = line
    err(f"{path}: {w}x{h}, {non_white} non-white pixels ({100 * non_white / (w * h):.2f}%), {series} in the first series colour")
    require(non_white >= w * h // 100, f"{path}: nearly blank: {non_white} of {w * h} pixels are not white")
    require(series >= 500, f"{path}: only {series} pixels in the charts' first series colour: the bars were not painted")


class Charts(html.parser.HTMLParser):
    """Per chart (the data-chart of its outer <svg>): the classes of its marks; and what must not be there."""

    def __init__(self):
        super().__init__()
        self.charts, self.current, self.depth, self.bad_numbers, self.scripts, self.external = {}, None, 0, [], 0, []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.scripts += tag == "script"
        self.external += [f"<{tag} {k}={a[k]}>" for k in ("src", "href") if a.get(k) and not a[k].startswith("#")]
        if tag == "svg":
            if self.current is None:
                self.current = a.get("data-chart", "?")
                self.charts.setdefault(self.current, {})
            self.depth += 1
        elif self.current is not None and "mark" in (a.get("class") or "").split():
            for c in a["class"].split():
                self.charts[self.current][c] = self.charts[self.current].get(c, 0) + 1
        if self.current is not None:
            self.bad_numbers += [f"<{tag} {k}={a[k]!r}>" for k in ("x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width", "height")
                                 if k in a and not re.fullmatch(r"-?\d+(\.\d+)?", a[k] or "")]

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag == "svg":
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag == "svg" and self.current is not None:
            self.depth -= 1
            if self.depth == 0:
                self.current = None


def dom(path, *frontier):
    text = open(path, encoding="utf-8").read()
    p = Charts()
    p.feed(text)
    err(f"{path}: charts and marks {p.charts}")
    require("<body" in text, f"{path}: Chromium dumped no document body")
    need = {"exits": ["bar-samples", "accuracy"], "bytes": ["bar-bytes"], "latency": ["cdf"], "frontier": ["point", "chosen", "run"]}
    problems = []
    for chart in ["exits", "bytes", "latency"] + (["frontier"] if frontier else []):
        if chart not in p.charts:
            problems.append(f"no '{chart}' chart")
        problems += [f"'{chart}' has 0 '{c}' marks" for c in need[chart] if not p.charts.get(chart, {}).get(c)]
    if "frontier" not in p.charts and "No calibration data" not in text:
        problems.append("neither a frontier chart nor the note that there is no calibration data")
    exits, curves = p.charts.get("exits", {}).get("bar-samples", 0), p.charts.get("latency", {}).get("cdf", 0)
    if curves > exits:
        problems.append(f"{curves} latency curves for {exits} exits")
    if p.bad_numbers:
        problems.append(f"{len(p.bad_numbers)} non-numeric SVG attributes, e.g. {p.bad_numbers[0]}")
    if p.scripts or p.external:
        problems.append(f"{p.scripts} scripts, external resources {p.external[:3]}")
    require(not problems, f"{path}: " + "; ".join(problems))


# --- link measurements inside network namespaces (scripts/netem.sh) ----------------------------

def rtt(host, port, count):
    """The median TCP connect time to HOST:PORT in ms, over COUNT tries (something must listen)."""
    import socket
    times = []
    for _ in range(int(count)):
        t0 = time.monotonic()
        socket.create_connection((host, int(port)), timeout=10).close()
        times.append(1000 * (time.monotonic() - t0))
        time.sleep(0.05)
    print(f"{statistics.median(times):.1f}")


def listen(port, seconds, sink=""):
    """Accepts connections on PORT for SECONDS and closes them; with `sink`, reads one until EOF and prints its rate."""
    import socket
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", int(port)))
    srv.listen(16)
    srv.settimeout(float(seconds) + 10)
    while not sink:
        try:
            srv.accept()[0].close()
        except OSError:
            return
    conn, total, first, last = srv.accept()[0], 0, None, None
    conn.settimeout(float(seconds) + 10)
    while data := conn.recv(65536):
        last = time.monotonic()
        first, total = first or last, total + len(data)
    require(first and last > first, "no data received")
    print(f"{total * 8 / (last - first) / 1e6:.3f} Mbit/s ({total} bytes in {last - first:.2f} s)")


def blast(host, port, seconds):
    import socket
    s, end = socket.create_connection((host, int(port)), timeout=10), time.monotonic() + float(seconds)
    while time.monotonic() < end:
        s.sendall(b"\0" * 16384)
    s.close()


# --- summaries -------------------------------------------------------------------------------

def netem_summary(out, config, *runs):
    """The comparison table of scripts/netem.sh (LABEL=REPORT..., the first the reference); writes OUT."""
    lat = lambda l: {k: l[k] for k in ("mean", "p50", "p99")}
    result, labels = {"config": json.loads(config), "runs": {}, "ratios": {}}, []
    for run in runs:
        label, path = run.split("=", 1)
        r = load(path)
        labels.append(label)
        result["runs"][label] = dict({k: r.get(k) for k in ("topology", "samples", "answered", "degraded", "failed", "accuracy",
                                                                  "bytesPerSample", "samplesPerSecond", "durationSeconds")},
                                     report=path, latencyMs=lat(r["latencyMs"]), exits=[
            dict({k: e[k] for k in ("name", "node", "count", "fraction", "accuracy", "bytesPerSample")}, latencyMs=lat(e["latencyMs"]))
            for e in r["exits"]])
    ref = result["runs"][labels[0]]
    print(f"\n{labels[0]}: latency per exit (ms)")
    print(f"  {'exit':<12} {'node':<8} {'samples':>8} {'fraction':>9} {'mean':>9} {'p50':>9} {'p99':>9} {'bytes/sample':>13}")
    for e in ref["exits"]:
        l = e["latencyMs"]
        print(f"  {e['name']:<12} {e['node'] or '-':<8} {e['count']:>8} {100 * e['fraction']:>8.2f}% "
              f"{l['mean']:>9.2f} {l['p50']:>9.2f} {l['p99']:>9.2f} {e['bytesPerSample']:>13.1f}")
    print(f"\noverall (ms; ratio = other run / {labels[0]})")
    print(f"  {'run':<12} {'samples':>8} {'answered':>9} {'accuracy':>9} {'mean':>9} {'p50':>9} {'p99':>9} {'bytes/sample':>13}"
          f" {'mean x':>7} {'p50 x':>7} {'p99 x':>7} {'bytes x':>8}")
    fmt = lambda x: f"{x:.2f}" if x is not None else "-"
    for label in labels:
        r, l, lr = result["runs"][label], result["runs"][label]["latencyMs"], ref["latencyMs"]
        ratio = {k: (l[k] / lr[k] if lr[k] else None) for k in ("mean", "p50", "p99")}
        ratio["bytesPerSample"] = r["bytesPerSample"] / ref["bytesPerSample"] if ref["bytesPerSample"] else None
        print(f"  {label:<12} {r['samples']:>8} {r['answered']:>9} {100 * r['accuracy']:>8.2f}% {l['mean']:>9.2f} {l['p50']:>9.2f} "
              f"{l['p99']:>9.2f} {r['bytesPerSample']:>13.1f} {fmt(ratio['mean']):>7} {fmt(ratio['p50']):>7} "
              f"{fmt(ratio['p99']):>7} {fmt(ratio['bytesPerSample']):>8}")
        if label != labels[0]:
            result["ratios"][f"{label}/{labels[0]}"] = ratio
    json.dump(result, open(out, "w"), indent=2)


def load_summary(work):
    """The summary of scripts/load.sh from its figures (KEY<TAB>VALUE lines on stdin) and the reports in WORK."""
    f = dict(line.rstrip("\n").split("\t", 1) for line in sys.stdin)
    devices, wall = f["devices"].split(), float(f.get("wall") or 0)
    reports = [load(p) for p in (f"{work}/{d}.json" for d in devices) if os.path.exists(p)]
    mb = lambda kb: f"{int(kb) / 1024:.1f} MB" if kb else "n/a"
    out = [f"load: {len(devices)} devices x {f['limit']} samples -> edge -> cloud ({f['topology']})",
           f"devices         in flight per device: {f['concurrency'] or 'the device default (16)'}; niceness {f['device_nice']} (edge and cloud 0)"]
    if reports:
        total, s = sum(r["samples"] for r in reports), lambda k: sum(r[k] for r in reports)
        p50s, p99s = sorted(r["latencyMs"]["p50"] for r in reports), sorted(r["latencyMs"]["p99"] for r in reports)
        durations = sorted(r["durationSeconds"] for r in reports)
        out += [f"reports         {len(reports)} of {len(devices)}",
                f"samples         {total} (answered {s('answered')}, degraded {s('degraded')}, failed {s('failed')}); "
                f"accuracy {100 * sum(r['accuracy'] * r['samples'] for r in reports) / max(1, total):.2f}%",
                f"wall time       {wall:.2f} s, from starting the {len(devices)} device processes together to the last exit",
                f"throughput      {total / wall if wall > 0 else 0:.0f} samples/s (total samples / wall time)",
                f"device runs     {durations[0]:.2f} .. {durations[-1]:.2f} s classifying (median {statistics.median(durations):.2f} s)",
                f"latency p50     {statistics.median(p50s):.2f} ms median over devices (devices {p50s[0]:.2f} .. {p50s[-1]:.2f} ms)",
                f"latency p99     {p99s[-1]:.2f} ms worst device (median device {statistics.median(p99s):.2f} ms); "
                "the p99 over all samples is at most the worst device's"]
        exits, links = {}, {}
        for r in reports:
            for e in r["exits"]:
                exits[e["name"]] = exits.get(e["name"], 0) + e["count"]
            for l in r.get("links", []):
                source, _, target = l["link"].partition("->")
                key = f"devices->{target}" if source == r.get("device") else l["link"]
                n, b = links.get(key, (0, 0))
                links[key] = (n + l["requests"], b + l["requestTLSBytes"] + l["responseTLSBytes"])
        out.append("exits           " + ", ".join(f"{k} {v} ({100 * v / max(1, total):.1f}%)" for k, v in exits.items()))
        for name in exits:
            per = [e["latencyMs"] for r in reports for e in r["exits"] if e["name"] == name and e["count"] > 0]
            if per:
                out.append(f"  {name:<13} latency p50 {statistics.median(p['p50'] for p in per):.2f} ms median over devices, "
                           f"p99 {max(p['p99'] for p in per):.2f} ms worst device")
        out.append("links           " + ", ".join(f"{k} {n} requests, {b / 1e6:.2f} MB on the wire" for k, (n, b) in links.items()))
    else:
        out.append("no device reports")
    for node in ("edge", "cloud"):
        if f.get(node + "_batches"):
            out.append(f"{node + ' batches':<15} by size {f[node + '_batches']}")
        if f.get(node + "_stage"):
            out.append(f"{'':<15} stage time per sample by batch size {f[node + '_stage']}")
    for node in ("edge", "cloud"):
        out.append(f"{node + ' memory':<15} idle {mb(f.get(node + '_idle_kb'))}, peak sampled VmRSS {mb(f.get(node + '_peak_kb'))}, "
                   f"VmHWM {mb(f.get(node + '_hwm_kb'))} (limit {f['rss_limit']} MB); CPU {f.get(node + '_cpu') or 'n/a'} s")
    out += [f"machine         {os.cpu_count()} CPUs, load average {f.get('load_before', '?')} before the run", f"command         {f['command']}"]
    print("\n".join(out))


COMMANDS = {"query": query, "topology-with": topology_with, "standin-edits": standin_edits, "allocations": allocations, "binary-ops": binary_ops, "report": report, "every-exit": every_exit,
            "all-answered": all_answered, "same-predictions": same_predictions, "link-bytes": link_bytes,
            "calibration": calibration, "savings": savings, "get": get, "faults": faults, "hello": hello,
            "hello-header": hello_header, "only-error-frames": only_error_frames, "only-tls-alerts": only_tls_alerts,
            "metric": metric, "prometheus": prometheus, "failover": failover, "reload": reload, "png": png, "dom": dom,
            "netem-summary": netem_summary, "rtt": rtt, "listen": listen, "blast": blast, "load-summary": load_summary}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: common.py {'|'.join(COMMANDS)} ARGS...")
    try:
        COMMANDS[sys.argv[1]](*sys.argv[2:])
    except Failed as e:
        print(e)
        sys.exit(1)
