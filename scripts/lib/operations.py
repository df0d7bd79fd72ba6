"""Checks of scripts/operations.sh: Prometheus' scraped counters against a device's
report, a fail-over run and a reload run. Each command prints figures on stdout
(one `key value` per line) and exits 1 with the reason on its last line on failure."""
import json
import os
import time
import sys
import urllib.parse
import urllib.request


def fail(why):
    print(why)
    sys.exit(1)


def query(prometheus, expr):
    """An instant query's vector: [(labels, value)]."""
    url = f"http://{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        fail(f"Prometheus query {expr!r} failed: {body}")
    return [(s["metric"], float(s["value"][1])) for s in body["data"]["result"]]


def scrape(address):
    """One node's /metrics as {(name, frozenset(labels)): value}."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, value = line.rsplit(" ", 1)
        labels = {}
        if "{" in name_labels:
            name, rest = name_labels.split("{", 1)
            for part in rest.rstrip("}").split('",'):
                if "=" in part:
                    k, v = part.split("=", 1)
                    labels[k] = v.strip('"')
        else:
            name = name_labels
        out[(name, frozenset(labels.items()))] = float(value)
    return out


def total(metrics, name, **want):
    return sum(v for (n, labels), v in metrics.items()
               if n == name and all(dict(labels).get(k) == w for k, w in want.items()))


def prometheus_equals_report(prometheus, report_path, path):
    """Every link's bytes, per direction and from both ends, and every exit's requests, as
    Prometheus scraped them, against the device's report."""
    report = json.load(open(report_path))
    # Wait for a scrape of every node that started after the report was written.
    written = os.path.getmtime(report_path)
    deadline = time.time() + 30
    while True:
        seen = {labels.get("node"): v for labels, v in query(prometheus, "timestamp(branchy_node_info)")}
        if all(seen.get(n, 0) > written + 0.2 for n in path):
            break
        if time.time() > deadline:
            fail(f"Prometheus has no scrape of {', '.join(n for n in path if seen.get(n, 0) <= written + 0.2)} after the report was written")
        time.sleep(0.25)
    problems, figures = [], []
    for link in report["linkTotals"]:
        name = link["link"]
        child, parent = name.split("->")
        for direction, want in (("sent", link["bytesSent"]), ("received", link["bytesReceived"])):
            other = "received" if direction == "sent" else "sent"
            at_child = sum(v for _, v in query(prometheus, f'sum(branchy_link_bytes_total{{node="{child}",link="{name}",direction="{direction}"}})'))
            at_parent = sum(v for _, v in query(prometheus, f'sum(branchy_link_bytes_total{{node="{parent}",link="{name}",direction="{other}"}})'))
            figures.append(f"{name} {direction}: report {want}, {child} {int(at_child)}, {parent} {int(at_parent)}")
            if not (at_child == want == at_parent):
                problems.append(f"{name} {direction}: report {want} B, {child} scraped {int(at_child)}, {parent} scraped {int(at_parent)} ({other})")
        handshake = sum(v for _, v in query(prometheus, f'sum(branchy_link_bytes_total{{node="{child}",link="{name}",kind="handshake"}})'))
        if handshake != link["handshakeBytes"]:
            problems.append(f"{name} handshakes: report {link['handshakeBytes']} B, {child} scraped {int(handshake)}")
    exits = {e["name"]: e["count"] for e in report["exits"]}
    # Every node counts the requests it answered, by the exit that answered: the device every
    # sample, each node on the path those answered at it or above it.
    position = {name: i for i, name in enumerate(path)}
    scraped = {}
    for labels, v in query(prometheus, 'sum by (node, exit) (branchy_requests_total{status="answered"})'):
        scraped[(labels["node"], labels["exit"])] = int(v)
    for node in path:
        for e in report["exits"]:
            got = scraped.get((node, e["name"]), 0)
            expected = e["count"] if position.get(e["node"], -1) >= position[node] else 0
            if got != expected:
                problems.append(f"{node} {e['name']}: scraped {got} answered, report says {expected}")
    figures.append("exits " + ", ".join(f"{k} {v}" for k, v in exits.items()))
    for f in figures:
        print(f)
    if problems:
        fail("; ".join(problems))


def failover(report_path, kill_at, back_at):
    r = json.load(open(report_path))
    timeline = r["throughputTimeline"]
    before = timeline[:max(1, int(kill_at))]
    after = timeline[int(back_at) + 1:-1] or timeline[-1:]
    print(f"answered {r['answered']}, degraded {r['degraded']}, failed {r['failed']}")
    print(f"throughput before the kill {sum(before) / len(before):.0f}/s, after the restart {sum(after) / len(after):.0f}/s")
    print("timeline " + " ".join(str(x) for x in timeline))
    if r["failed"] or r["degraded"]:
        fail(f"{r['failed']} failed and {r['degraded']} degraded of {r['samples']}; expected none")


def reload(report_path, predictions_path, device_exit, edge_exit, split):
    r = json.load(open(report_path))
    rows = [json.loads(l) for l in open(predictions_path)]
    n = len(rows)
    # Among the samples the device forwarded, the share that left at the edge, before and after.
    def share(part):
        fwd = [x for x in part if x["exit"] != 0]
        return sum(1 for x in fwd if x["exit"] == 1) / max(1, len(fwd)), len(fwd)
    cut = int(n * split)
    early, ne = share(rows[: int(cut * 0.9)])
    late, nl = share(rows[int(cut + (n - cut) * 0.1):])
    print(f"answered {r['answered']}, degraded {r['degraded']}, failed {r['failed']}")
    print(f"edge exit share of forwarded samples: {100 * early:.1f}% before the reload ({ne} samples), {100 * late:.1f}% after ({nl})")
    if r["failed"] or r["degraded"] or r["answered"] != n:
        fail(f"{r['failed']} failed and {r['degraded']} degraded of {n}; expected every sample answered")
    if late < early + 0.2:
        fail(f"the edge exit share went from {100 * early:.1f}% to {100 * late:.1f}%; the reload's threshold did not take effect")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "prometheus":
        prometheus_equals_report(args[0], args[1], args[2].split(","))
    elif cmd == "failover":
        failover(args[0], float(args[1]), float(args[2]))
    elif cmd == "reload":
        reload(args[0], args[1], args[2], args[3], float(args[4]))
    elif cmd == "metric":
        # metric ADDRESS NAME [label=value ...]: the sum of the matching series.
        want = dict(a.split("=", 1) for a in args[2:])
        print(int(total(scrape(args[0]), args[1], **want)))
    else:
        fail(f"unknown command {cmd}")
