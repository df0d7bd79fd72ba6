#!/usr/bin/env python3
"""Helpers of scripts/netem.sh.

    netem.py topology SRC OUT --edge-ip IP --cloud-ip IP
        SRC with every edge's and cloud's listen host replaced (ports kept) and
        model/dataset/certs made absolute; everything else as it was.
    netem.py hosts SRC OUT [--bind HOST] [--by-name NAME] NODE=IP[,IP...]...
        SRC for nodes on several hosts (scripts/netns-cluster.sh): every node with a
        listen address binds HOST (default 0.0.0.0) on its port, and its children
        dial `address: IP:port`; model/dataset/certs made absolute. A node given
        several IPs runs as that many replicas instead: `replicas:` lists
        `{address: IP:port, metrics: IP:mport}` for each IP (mport: the node's
        `metrics:` port, else its listen port + 1000), and the node loses its
        `address:` and `metrics:` lines. With --by-name, such a node gets
        `replicas: "NAME:port"` instead (one host name, which the caller makes
        resolve to every IP) and `metrics: "HOST:mport"`, which each replica binds.
    netem.py standin SRC OUT --cloud-ip IP
        A cloud-only stand-in made from SRC (for when topology/cloud-only.yaml is
        missing): the device keeps its stages but never exits (thresholds 0) and
        sends to the cloud, which runs every other stage and never exits early.
    netem.py sink PORT SECONDS
        Accepts one TCP connection, reads until EOF or SECONDS, prints the rate.
    netem.py blast HOST PORT SECONDS
        Connects (prints the connect time, one round trip), sends for SECONDS.
    netem.py rtt HOST PORT COUNT
        Median TCP connect time to HOST:PORT over COUNT tries (something must listen).
    netem.py check REPORT SAMPLES
        Exits 1 (with a reason) unless REPORT has SAMPLES samples, all answered.
    netem.py summary --out JSON --config JSON LABEL=REPORT...
        Prints the comparison table; writes the summary JSON.
"""
import json
import os
import re
import socket
import statistics
import sys
import time


def die(msg):
    print(f"netem: {msg}", file=sys.stderr)
    sys.exit(1)


def absolute(value, base):
    v = value.strip().strip("\"'")
    return v if v.startswith("/") else os.path.normpath(os.path.join(base, v))


def read_nodes(lines):
    """[(name, role, {key: raw value}, first line, last line)] of the block-style `nodes:` list."""
    nodes, current, in_nodes = [], None, False
    for i, line in enumerate(lines):
        if re.match(r"^nodes:", line):
            in_nodes = True
            continue
        if re.match(r"^[^ \t#-]", line):
            in_nodes = False
            continue
        if not in_nodes:
            continue
        m = re.match(r"^[ \t]*-[ \t]+name:[ \t]*(.*?)[ \t]*(#.*)?$", line)
        if m:
            current = {"name": m.group(1).strip("\"'"), "keys": {}, "lines": {}, "first": i, "last": i}
            nodes.append(current)
            continue
        if current is None:
            continue
        m = re.match(r"^[ \t]+([A-Za-z_]+):[ \t]*(.*?)[ \t]*(#.*)?$", line)
        if m:
            current["keys"][m.group(1)] = m.group(2)
            current["lines"][m.group(1)] = i
        if line.strip():
            current["last"] = i
    return nodes


def rewrite_topology(src, out, ips):
    """ips: role -> host for the listen addresses."""
    with open(src) as f:
        lines = f.read().split("\n")
    absolute_paths(src, lines)
    for node in read_nodes(lines):
        role = node["keys"].get("role", "").strip("\"'")
        if role in ips and "listen" in node["keys"]:
            i = node["lines"]["listen"]
            port = node["keys"]["listen"].strip("\"'").rsplit(":", 1)[1]
            indent = re.match(r"^([ \t]*)", lines[i]).group(1)
            lines[i] = f"{indent}listen: {ips[role]}:{port}"
    with open(out, "w") as f:
        f.write(f"# Made by scripts/netem.sh from {os.path.abspath(src)}: listen addresses in the namespaces.\n")
        f.write("\n".join(lines))


def absolute_paths(src, lines):
    """Top-level model/dataset/certs made absolute against SRC's folder (certs added when absent)."""
    base = os.path.dirname(os.path.abspath(src))
    for i, line in enumerate(lines):
        m = re.match(r"^(model|dataset|certs):[ \t]*(.*?)[ \t]*(#.*)?$", line)
        if m and m.group(2):
            lines[i] = f"{m.group(1)}: {absolute(m.group(2), base)}"
    if not any(re.match(r"^certs:", l) for l in lines):
        lines.insert(0, f"certs: {base}")   # the loader's default: the topology's folder


def bracketed(host):
    return f"[{host}]" if ":" in host else host


def rewrite_hosts(src, out, ips, bind="0.0.0.0", by_name=None):
    """ips: node name -> [IP (or host name)] its children dial, one per replica (one IP:
    no replicas); every listening node needs one. by_name: the host name that a node
    with several IPs is dialled by (`replicas: "NAME:port"`), instead of listing them."""
    with open(src) as f:
        lines = f.read().split("\n")
    absolute_paths(src, lines)
    nodes = read_nodes(lines)
    names = {n["name"] for n in nodes}
    unknown = sorted(set(ips) - names)
    if unknown:
        die(f"{src} has no node {', '.join(unknown)}")
    # From the last node up, so that inserted lines do not move those still to edit.
    for node in reversed(nodes):
        if "listen" not in node["keys"]:
            continue
        if node["name"] not in ips:
            die(f"node '{node['name']}' of {src} listens but was given no address")
        i = node["lines"]["listen"]
        port = node["keys"]["listen"].strip("\"'").rsplit(":", 1)[1]
        indent = re.match(r"^([ \t]*)", lines[i]).group(1)
        hosts = ips[node["name"]]
        listen = f"{indent}listen: \"{bracketed(bind)}:{port}\""
        if len(hosts) == 1:
            address = f"{indent}address: \"{bracketed(hosts[0])}:{port}\""
            if "address" in node["lines"]:
                lines[node["lines"]["address"]] = address
            else:
                lines.insert(i + 1, address)
            lines[i] = listen
            continue
        if "replicas" in node["keys"]:
            die(f"node '{node['name']}' of {src} already has replicas")
        metrics = node["keys"].get("metrics", "").strip("\"'")
        mport = metrics.rsplit(":", 1)[1] if metrics else str(int(port) + 1000)
        if by_name:
            block = [listen, f"{indent}metrics: \"{bracketed(bind)}:{mport}\"",
                     f"{indent}replicas: \"{by_name}:{port}\""]
        else:
            block = [listen, f"{indent}replicas:"]
            for host in hosts:
                block += [f"{indent}  - address: \"{bracketed(host)}:{port}\"",
                          f"{indent}    metrics: \"{bracketed(host)}:{mport}\""]
        drop = {node["lines"][k] for k in ("address", "metrics") if k in node["lines"]}
        span = range(node["first"], node["last"] + 1)
        new = []
        for j in span:
            if j == i:
                new += block
            elif j not in drop:
                new.append(lines[j])
        lines[node["first"]:node["last"] + 1] = new
    with open(out, "w") as f:
        f.write(f"# Made by scripts/netns-cluster.sh from {os.path.abspath(src)}: each server binds {bind}\n"
                "# in its own network namespace; its children dial its namespace's address (a replicated\n"
                + ("# node's children dial each address its replicas' host name resolves to).\n" if by_name else
                   "# node's children dial each replica's).\n"))
        f.write("\n".join(lines))


def parse_list(raw):
    raw = raw.strip()
    if raw.startswith("[") and raw.endswith("]"):
        return [x.strip().strip("\"'") for x in raw[1:-1].split(",") if x.strip()]
    return [raw.strip("\"'")] if raw else []


def standin(src, out, cloud_ip):
    base = os.path.dirname(os.path.abspath(src))
    with open(src) as f:
        lines = f.read().split("\n")
    top = {}
    for line in lines:
        m = re.match(r"^(model|dataset|certs):[ \t]*(.*?)[ \t]*(#.*)?$", line)
        if m and m.group(2):
            top[m.group(1)] = absolute(m.group(2), base)
    top.setdefault("certs", base)
    nodes = read_nodes(lines)
    device = next((n for n in nodes if n["keys"].get("role") == "device"), None)
    cloud = next((n for n in nodes if n["keys"].get("role") == "cloud"), None)
    if device is None or cloud is None:
        die(f"{src} needs a device and a cloud for a cloud-only stand-in")
    dstages = parse_list(device["keys"].get("stages", ""))
    # The other nodes' stages, in the order requests flow: edges, then the cloud.
    rest = []
    for n in nodes:
        if n["keys"].get("role") == "edge":
            rest += parse_list(n["keys"].get("stages", ""))
    rest += parse_list(cloud["keys"].get("stages", ""))
    port = cloud["keys"]["listen"].strip("\"'").rsplit(":", 1)[1]
    codec = device["keys"].get("codec")
    text = [f"# Made by scripts/netem.sh from {os.path.abspath(src)}: a cloud-only stand-in.",
            "# The device runs its stages but never exits (entropy threshold 0) and sends to the",
            "# cloud, which runs every other stage and exits only at the last.",
            f"model: {top['model']}"]
    if "dataset" in top:
        text.append(f"dataset: {top['dataset']}")
    text += [f"certs: {top['certs']}", "nodes:",
             f"  - name: {device['name']}", "    role: device", f"    stages: [{', '.join(dstages)}]",
             f"    thresholds: [{', '.join('0' for _ in dstages)}]", f"    upstream: {cloud['name']}"]
    if codec:
        text.append(f"    codec: {codec}")
    text += ["", f"  - name: {cloud['name']}", "    role: cloud", f"    stages: [{', '.join(rest)}]"]
    if len(rest) > 1:
        text.append(f"    thresholds: [{', '.join('0' for _ in rest[:-1])}]")
    text.append(f"    listen: {cloud_ip}:{port}")
    with open(out, "w") as f:
        f.write("\n".join(text) + "\n")


def sink(port, seconds):
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("0.0.0.0", port))
    srv.listen(1)
    srv.settimeout(10)
    conn, _ = srv.accept()
    conn.settimeout(seconds + 10)
    total, first, last = 0, None, None
    end = time.monotonic() + seconds + 5
    while time.monotonic() < end:
        data = conn.recv(65536)
        if not data:
            break
        now = time.monotonic()
        if first is None:
            first = now
        last = now
        total += len(data)
    if first is None or last <= first:
        die("no data received")
    print(f"{total * 8 / (last - first) / 1e6:.3f} Mbit/s ({total} bytes in {last - first:.2f} s)")


def blast(host, port, seconds):
    t0 = time.monotonic()
    s = socket.create_connection((host, port), timeout=10)
    print(f"connect {1000 * (time.monotonic() - t0):.1f} ms")
    chunk = b"\0" * 16384
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        s.sendall(chunk)
    s.close()


def rtt(host, port, count):
    times = []
    for _ in range(count):
        t0 = time.monotonic()
        s = socket.create_connection((host, port), timeout=10)
        times.append(1000 * (time.monotonic() - t0))
        s.close()
        time.sleep(0.05)
    print(f"{statistics.median(times):.1f}")


def load(path):
    with open(path) as f:
        return json.load(f)


def check(path, samples):
    try:
        r = load(path)
    except (OSError, ValueError) as e:
        die(f"no readable report {path}: {e}")
    if r.get("samples") != samples:
        die(f"{path}: {r.get('samples')} samples, expected {samples}")
    if r.get("answered") != samples:
        die(f"{path}: {r.get('answered')} of {samples} answered "
            f"({r.get('degraded')} degraded, {r.get('failed')} failed)")


def lat(l):
    return {"mean": l["mean"], "p50": l["p50"], "p99": l["p99"]}


def summary(args):
    out = config = None
    runs = []
    it = iter(args)
    for a in it:
        if a == "--out":
            out = next(it)
        elif a == "--config":
            config = json.loads(next(it))
        else:
            label, path = a.split("=", 1)
            runs.append((label, path, load(path)))
    if not runs:
        die("summary: no reports")
    result = {"config": config or {}, "runs": {}}
    for label, path, r in runs:
        result["runs"][label] = {
            "report": path, "topology": r.get("topology"), "samples": r["samples"], "answered": r["answered"],
            "degraded": r["degraded"], "failed": r["failed"], "accuracy": r["accuracy"],
            "latencyMs": lat(r["latencyMs"]), "bytesPerSample": r["bytesPerSample"],
            "samplesPerSecond": r.get("samplesPerSecond"), "durationSeconds": r.get("durationSeconds"),
            "exits": [{"name": e["name"], "node": e["node"], "count": e["count"], "fraction": e["fraction"],
                       "accuracy": e["accuracy"], "latencyMs": lat(e["latencyMs"]), "bytesPerSample": e["bytesPerSample"]}
                      for e in r["exits"]],
        }
    main_label = runs[0][0]
    ref = result["runs"][main_label]
    p = print
    p("")
    p(f"{main_label}: latency per exit (ms)")
    p(f"  {'exit':<12} {'node':<8} {'samples':>8} {'fraction':>9} {'mean':>9} {'p50':>9} {'p99':>9} {'bytes/sample':>13}")
    for e in ref["exits"]:
        l = e["latencyMs"]
        p(f"  {e['name']:<12} {e['node'] or '-':<8} {e['count']:>8} {100 * e['fraction']:>8.2f}% "
          f"{l['mean']:>9.2f} {l['p50']:>9.2f} {l['p99']:>9.2f} {e['bytesPerSample']:>13.1f}")
    p("")
    p("overall (ms; ratio = other run / " + main_label + ")")
    p(f"  {'run':<12} {'samples':>8} {'answered':>9} {'accuracy':>9} {'mean':>9} {'p50':>9} {'p99':>9} {'bytes/sample':>13}"
      f" {'mean x':>7} {'p50 x':>7} {'p99 x':>7} {'bytes x':>8}")
    comparisons = {}
    for label, _, _ in runs:
        r = result["runs"][label]
        l, lr = r["latencyMs"], ref["latencyMs"]
        ratio = {k: (l[k] / lr[k] if lr[k] else None) for k in ("mean", "p50", "p99")}
        ratio["bytesPerSample"] = r["bytesPerSample"] / ref["bytesPerSample"] if ref["bytesPerSample"] else None
        fmt = lambda x: f"{x:.2f}" if x is not None else "-"
        p(f"  {label:<12} {r['samples']:>8} {r['answered']:>9} {100 * r['accuracy']:>8.2f}% {l['mean']:>9.2f} {l['p50']:>9.2f} "
          f"{l['p99']:>9.2f} {r['bytesPerSample']:>13.1f} {fmt(ratio['mean']):>7} {fmt(ratio['p50']):>7} "
          f"{fmt(ratio['p99']):>7} {fmt(ratio['bytesPerSample']):>8}")
        if label != main_label:
            comparisons[f"{label}/{main_label}"] = ratio
    result["ratios"] = comparisons
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=2)
            f.write("\n")


def main():
    a = sys.argv[1:]
    if not a:
        die("no command")
    cmd = a[0]
    if cmd == "topology":
        src, out = a[1], a[2]
        opts = dict(zip(a[3::2], a[4::2]))
        rewrite_topology(src, out, {"edge": opts["--edge-ip"], "cloud": opts["--cloud-ip"]})
    elif cmd == "hosts":
        src, out, rest = a[1], a[2], a[3:]
        bind, by_name = "0.0.0.0", None
        while rest[:1] in (["--bind"], ["--by-name"]):
            if len(rest) < 2 or not rest[1]:
                die(f"{rest[0]} needs a value")
            if rest[0] == "--bind":
                bind = rest[1]
            else:
                by_name = rest[1]
            rest = rest[2:]
        ips = {}
        for pair in rest:
            name, sep, ip = pair.partition("=")
            if not sep or not name or not ip:
                die(f"expected NODE=IP, got '{pair}'")
            hosts = ip.split(",")
            if not all(hosts):
                die(f"expected NODE=IP[,IP...], got '{pair}'")
            ips[name] = hosts
        rewrite_hosts(src, out, ips, bind, by_name)
    elif cmd == "standin":
        standin(a[1], a[2], dict(zip(a[3::2], a[4::2]))["--cloud-ip"])
    elif cmd == "sink":
        sink(int(a[1]), float(a[2]))
    elif cmd == "blast":
        blast(a[1], int(a[2]), float(a[3]))
    elif cmd == "rtt":
        rtt(a[1], int(a[2]), int(a[3]))
    elif cmd == "check":
        check(a[1], int(a[2]))
    elif cmd == "summary":
        summary(a[1:])
    else:
        die(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
