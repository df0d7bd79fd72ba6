"""Checks of common.py on what a run leaves: the device's report and predictions (scripts/e2e*.sh),
`branchy bench` figures and model.json (scripts/perf-check.sh), and the fault runs (scripts/e2e-faults.sh)."""
import json
from check_helpers import Failed, err, load, num, predictions, require


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


def same_predictions(device_path, eval_path, report_path, complete=""):
    """Both JSONL files hold the same (sample, exit, class); exit names map to indices by the report.
    With COMPLETE ("complete"), the device knows the entropy at every exit each sample reached
    (protocol version 2 carries the passed exits')."""
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
    # The entropies both know agree too, within the rounding of protocol version 2, which carries
    # upstream exits' entropies as binary16.
    theirs = {r["sample"]: r.get("entropies") for r in map(json.loads, open(eval_path)) if r}
    for r in map(json.loads, open(device_path)):
        mine, other = r.get("entropies"), theirs.get(r["sample"])
        if complete and r["exit"] >= 0:
            require(mine is not None and len(mine) == r["exit"] + 1 and None not in mine,
                    f"{device_path}: sample {r['sample']} left at exit {r['exit']} but its entropies are {mine}: "
                    "one per exit reached expected, none unknown")
        if mine is None or other is None:
            continue
        for e, (a, b) in enumerate(zip(mine, other)):
            if a is not None and b is not None and abs(a - b) > 1e-3 * max(1.0, abs(b)):
                raise Failed(f"sample {r['sample']}: entropy at exit {e} is {a} in the cluster, {b} in branchy eval")


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
