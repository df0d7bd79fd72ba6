"""Commands of common.py that measure links inside network namespaces (scripts/netem.sh) and
print the summaries of scripts/netem.sh and scripts/load.sh."""
import json, os, statistics, sys, time

from check_helpers import load, require


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
