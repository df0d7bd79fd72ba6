#!/usr/bin/env python3
"""Shared Python helpers of scripts/*.sh (standard library, plus PyYAML for topology-with):
`common.py COMMAND ARGS...`. A check prints nothing (details on stderr) and exits 0 when it holds,
else prints why on its last line and exits 1. Commands: see COMMANDS at the end; the topology
commands are here, the checks by topic in report_checks.py, node_checks.py, chart_checks.py and
measurements.py, their shared helpers in check_helpers.py."""
import json, sys

from chart_checks import dom, png
from check_helpers import Failed, require
from measurements import blast, listen, load_summary, netem_summary, rtt
from node_checks import failover, hello, hello_header, metric, only_error_frames, only_tls_alerts, prometheus, reload
from report_checks import (all_answered, allocations, binary_ops, calibration, every_exit, faults, get, link_bytes, report,
                           same_predictions, savings)


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
