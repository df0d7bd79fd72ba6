#!/usr/bin/env python3
"""Checks for scripts/e2e.sh: device reports, predictions, wire bytes, probe frames.

Each command prints nothing and exits 0 when the check holds; otherwise it prints
one line saying why and exits 1.

  report FILE SAMPLES [PREDICTIONS]     the device report is complete and every sample answered
  same-predictions DEVICE EVAL REPORT   both JSONL files hold the same (sample, exit, class) triples
  link-bytes FILE LINK LIMIT            mean request bytes (TLS, on the wire) per forwarded sample on LINK < LIMIT
  hello FILE NAME ROLE FINGERPRINT      writes a hello frame (PROTOCOL.md) to FILE
  hello-header FILE                     writes a hello frame header alone (20 bytes, empty payload)
  only-error-frames FILE                FILE is empty or holds only Branchy error frames
  only-tls-alerts FILE                  FILE is empty or holds only TLS alert records
"""
import json
import struct
import sys

# Fields of the device's --report JSON that the checks read.
REPORT_KEYS = ["samples", "accuracy", "exits", "totalWireBytes", "rawOffloadBytes"]
EXIT_KEYS = ["name", "node", "count", "accuracy", "bytesPerSample"]
# Optional per-sample outcome counters; when present they must add up to `samples`.
OUTCOME_KEYS = ["answered", "degraded", "failed"]

# Per-link byte counts of the report (RunReport.LinkBytes in BranchyNode): one
# entry per link ("device->edge", as in the hop entries of PROTOCOL.md) with
# the samples whose request crossed it and the mean request size on the wire
# (TLS records) and as frames.
LINKS_KEY = "links"
LINK_NAME_KEY = "link"
LINK_REQUESTS_KEY = "requests"
LINK_MEAN_WIRE_KEY = "meanRequestTLSBytes"
LINK_MEAN_FRAME_KEY = "meanRequestFrameBytes"

MAGIC = b"BRNY"
VERSION = 1
HELLO, HELLO_ACK, ERROR = 1, 2, 5
HEADER = struct.Struct(">4sBBHQI")  # magic, version, type, flags, requestID, payloadLength
ROLES = {"device": 1, "edge": 2, "cloud": 3}


class CheckFailed(Exception):
    pass


def require(condition, why):
    if not condition:
        raise CheckFailed(why)


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise CheckFailed(f"cannot read {path}: {e}")


def load_predictions(path):
    rows = []
    try:
        with open(path) as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    p = json.loads(line)
                    rows.append((int(p["sample"]), p["exit"], int(p["class"])))
                except (ValueError, KeyError, TypeError) as e:
                    raise CheckFailed(f"{path}:{number}: not a prediction line ({e}): {line.strip()[:80]}")
    except OSError as e:
        raise CheckFailed(f"cannot read {path}: {e}")
    return rows


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_report(path, samples, predictions=None):
    r = load_json(path)
    missing = [k for k in REPORT_KEYS if k not in r]
    require(not missing, f"report {path} lacks {', '.join(missing)}")
    require(r["samples"] == samples, f"report says samples={r['samples']}, expected {samples}")
    require(is_number(r["accuracy"]) and 0 <= r["accuracy"] <= 1, f"accuracy {r['accuracy']!r} is not in [0, 1]")
    for key in ("totalWireBytes", "rawOffloadBytes"):
        require(is_number(r[key]) and r[key] >= 0, f"{key} {r[key]!r} is not a non-negative number")
    exits = r["exits"]
    require(isinstance(exits, list) and exits, "exits is not a non-empty list")
    for i, e in enumerate(exits):
        missing = [k for k in EXIT_KEYS if k not in e]
        require(not missing, f"exits[{i}] lacks {', '.join(missing)}")
        require(is_number(e["accuracy"]) and 0 <= e["accuracy"] <= 1, f"exits[{i}].accuracy {e['accuracy']!r} is not in [0, 1]")
    counted = sum(e["count"] for e in exits)
    present = [k for k in OUTCOME_KEYS if k in r]
    if present:
        require(len(present) == len(OUTCOME_KEYS), f"report has {', '.join(present)} but not all of {', '.join(OUTCOME_KEYS)}")
        total = sum(r[k] for k in OUTCOME_KEYS)
        require(total == samples, f"answered {r['answered']} + degraded {r['degraded']} + failed {r['failed']} = {total}, not {samples}")
        require(r["failed"] == 0, f"{r['failed']} samples failed")
        # Degraded answers come from an exit too, but a report may leave them out of the exit counts.
        require(r["answered"] <= counted <= r["answered"] + r["degraded"],
                f"exit counts add up to {counted}; answered {r['answered']}, degraded {r['degraded']}")
    else:
        require(counted == samples, f"exit counts add up to {counted}, not {samples}")
    if predictions:
        rows = load_predictions(predictions)
        require(len(rows) == samples, f"{predictions} has {len(rows)} predictions, expected {samples}")
        require(len({s for s, _, _ in rows}) == samples, f"{predictions} repeats some samples")


def same_predictions(device_path, eval_path, report_path):
    # Eval writes exit indices; a device may write exit names, mapped here by the
    # order of the report's exits (model order).
    index = {e["name"]: i for i, e in enumerate(load_json(report_path).get("exits", []))}

    def normalise(rows, path):
        out = {}
        for sample, exit_, cls in rows:
            if isinstance(exit_, str) and not exit_.isdigit():
                require(exit_ in index, f"{path}: exit '{exit_}' of sample {sample} is not among the report's exits")
                exit_ = index[exit_]
            out[sample] = (int(exit_), cls)
        return out

    device = normalise(load_predictions(device_path), device_path)
    offline = normalise(load_predictions(eval_path), eval_path)
    require(device.keys() == offline.keys(),
            f"different samples: {len(device)} from the cluster, {len(offline)} from branchy eval")
    differ = [s for s in sorted(device) if device[s] != offline[s]]
    if differ:
        s = differ[0]
        raise CheckFailed(f"{len(differ)} of {len(device)} samples differ; first: sample {s} "
                          f"cluster (exit, class) = {device[s]}, branchy eval = {offline[s]}")


def link_bytes(path, link, limit):
    r = load_json(path)
    require(LINKS_KEY in r, f"report has no per-link field '{LINKS_KEY}'")
    found = [e for e in r[LINKS_KEY] if e.get(LINK_NAME_KEY) == link]
    require(found, f"no '{link}' entry in the report's {LINKS_KEY}: {[e.get(LINK_NAME_KEY) for e in r[LINKS_KEY]]}")
    e = found[0]
    missing = [k for k in (LINK_REQUESTS_KEY, LINK_MEAN_WIRE_KEY, LINK_MEAN_FRAME_KEY) if k not in e]
    require(not missing, f"the '{link}' entry lacks {', '.join(missing)}")
    require(e[LINK_REQUESTS_KEY] > 0, f"no request was forwarded on {link}")
    wire, frame_ = e[LINK_MEAN_WIRE_KEY], e[LINK_MEAN_FRAME_KEY]
    require(wire < limit, f"{link}: {wire:.1f} request bytes on the wire per forwarded sample "
            f"({frame_:.1f} as frames), not below {limit:g}")
    print(f"{link}: {e[LINK_REQUESTS_KEY]} requests, {wire:.1f} bytes on the wire and {frame_:.1f} as frames per request",
          file=sys.stderr)


def frame(kind, payload=b""):
    return HEADER.pack(MAGIC, VERSION, kind, 0, 0, len(payload)) + payload


def hello(path, name, role, fingerprint):
    fp = bytes.fromhex(fingerprint)
    require(len(fp) == 32, f"fingerprint must be 32 bytes, got {len(fp)}")
    encoded = name.encode()
    payload = struct.pack(">HBH", VERSION, ROLES[role], len(encoded)) + encoded + fp
    with open(path, "wb") as f:
        f.write(frame(HELLO, payload))


def hello_header(path):
    with open(path, "wb") as f:
        f.write(frame(HELLO))


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def only_error_frames(path):
    data = read_bytes(path)
    while data:
        require(len(data) >= HEADER.size and data[:4] == MAGIC,
                f"got {len(data)} bytes that are not a Branchy frame: {data[:24].hex()}")
        _, _, kind, _, _, length = HEADER.unpack_from(data)
        require(kind == ERROR, f"got a frame of type {kind}" + (" (helloAck: the hello was accepted)" if kind == HELLO_ACK else ""))
        data = data[HEADER.size + length:]


def only_tls_alerts(path):
    data = read_bytes(path)
    require(MAGIC not in data, f"the reply holds a Branchy frame: {data[:24].hex()}")
    while data:
        require(len(data) >= 5 and data[0] == 21,
                f"got {len(data)} bytes that are not a TLS alert: {data[:24].hex()}")
        data = data[5 + int.from_bytes(data[3:5], "big"):]


def main(argv):
    commands = {
        "report": lambda a: check_report(a[0], int(a[1]), a[2] if len(a) > 2 else None),
        "same-predictions": lambda a: same_predictions(*a),
        "link-bytes": lambda a: link_bytes(a[0], a[1], float(a[2])),
        "hello": lambda a: hello(*a),
        "hello-header": lambda a: hello_header(*a),
        "only-error-frames": lambda a: only_error_frames(*a),
        "only-tls-alerts": lambda a: only_tls_alerts(*a),
    }
    if len(argv) < 2 or argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        commands[argv[1]](argv[2:])
    except CheckFailed as e:
        print(e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
