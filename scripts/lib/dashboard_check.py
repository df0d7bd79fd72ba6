#!/usr/bin/env python3
"""The PromQL of the Grafana dashboard (and of Prometheus rule files) names only metrics, labels and
label values that Branchy's nodes export.
  dashboard_check.py DASHBOARD.json SCRAPE.txt...    against /metrics scrapes taken together: every
      metric a query names (panels and template variables), every label it matches on (or one that
      Prometheus gives each target: job, instance, and node, role, replica of `branchy scrape-config`),
      every value it matches with `=`; a histogram only by NAME_bucket, _sum or _count
  dashboard_check.py --documented OPERATIONS.md FILE...   dashboards (.json) and rule files (.yml) against
      the metrics table of docs/OPERATIONS.md (names and label names only)
  dashboard_check.py --promql-rules OUT DASHBOARD.json    every panel query (Grafana variables filled in:
      $__rate_interval as 5m, others as .*) as a recording rule of OUT, for `promtool check rules`
  dashboard_check.py --names FILE                    the metric names FILE's queries use
Prints `ok - NAME (...)` or `not ok - NAME: why` per metric, then `N passed, M failed`; exit status 1
when one failed, 2 on a usage or input error.
"""
import json, os, re, sys

# Series Prometheus makes for every target it scrapes; they are in no node's /metrics.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
                     "scrape_samples_post_metric_relabeling", "scrape_series_added"}
# Labels Prometheus gives every target: `job` and `instance`, and those of `branchy scrape-config`.
TARGET_LABELS = {"job", "instance", "node", "role", "replica"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "offset", "bool",
            "and", "or", "unless", "atan2", "inf", "nan", "start", "end"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
# `by (...)` or `without (...)` between an aggregation and its parenthesis.
AGGREGATION_CLAUSE = re.compile(r"(by|without)\s*\([^)]*\)\s*\(")
SUFFIXES = ("_bucket", "_sum", "_count")
DURATION_VARIABLES = {"__rate_interval", "__interval", "__range", "__range_s", "__interval_ms"}


def fail(message, status=2):
    print(message, file=sys.stderr)
    sys.exit(status)


# --- queries ------------------------------------------------------------------

def dashboard_queries(dashboard):
    """(where, PromQL) for every panel query, and (where, metric) for template variables that
    name one through label_values(METRIC, LABEL)."""
    out = []

    def walk(value, where):
        if isinstance(value, dict):
            if isinstance(value.get("expr"), str):
                out.append((f"{where} {value.get('refId', '')}".strip(), value["expr"]))
            for k, v in value.items():
                if k == "templating":
                    continue
                if k == "panels" and isinstance(v, list):
                    for p in v:
                        walk(p, f"panel {p.get('id')} '{p.get('title', '')}'" if isinstance(p, dict) else where)
                else:
                    walk(v, where)
        elif isinstance(value, list):
            for v in value:
                walk(v, where)

    walk(dashboard, "dashboard")
    for var in (dashboard.get("templating") or {}).get("list") or []:
        if var.get("type") != "query":
            continue
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query", "")
        query = str(query or var.get("definition") or "").strip()
        where = f"variable ${var.get('name')}"
        m = re.fullmatch(r"label_values\((.*),\s*([A-Za-z_]\w*)\s*\)", query, re.S)
        if m:
            out.append((where, m.group(1)))
        elif query.startswith("query_result(") and query.endswith(")"):
            out.append((where, query[len("query_result("):-1]))
        elif not re.fullmatch(r"(label_values|label_names|metrics)\(.*\)", query, re.S):
            fail(f"{where}: cannot read the query {query!r}")
    return out


def rule_queries(path):
    import yaml   # only rule files need it
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    out = []
    for group in doc.get("groups") or []:
        for rule in group.get("rules") or []:
            name = rule.get("alert") or rule.get("record")
            out.append((f"rule {name}", str(rule.get("expr", ""))))
    return out


def queries_of(path):
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            return dashboard_queries(json.load(f))
    if path.endswith((".yml", ".yaml")):
        return rule_queries(path)
    fail(f"{path}: expected a dashboard (.json) or a rule file (.yml, .yaml)")


# --- PromQL, as far as names go -------------------------------------------------

def read_string(expr, i):
    """The end of the string literal starting at expr[i] and its value."""
    quote, j, value = expr[i], i + 1, []
    while j < len(expr) and expr[j] != quote:
        if expr[j] == "\\" and quote != "`" and j + 1 < len(expr):
            j += 1
        value.append(expr[j])
        j += 1
    if j >= len(expr):
        raise ValueError(f"unterminated string at {i}")
    return j + 1, "".join(value)


def read_matchers(expr, i):
    """The matchers of the `{...}` starting at expr[i]: [(label, op, value)] and the end."""
    matchers, j = [], i + 1
    while True:
        while j < len(expr) and expr[j] in " \t\n,":
            j += 1
        if j < len(expr) and expr[j] == "}":
            return matchers, j + 1
        m = re.compile(r"([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*").match(expr, j)
        if not m or m.end() >= len(expr) or expr[m.end()] not in "\"'`":
            raise ValueError(f"cannot read the label matcher at {j}: {expr[j:j + 30]!r}")
        j, value = read_string(expr, m.end())
        matchers.append((m.group(1), m.group(2), value))


def selectors(expr):
    """(metric, [(label, op, value)]) for every vector selector of a PromQL expression that names
    a metric. Functions, aggregations, grouping labels, keywords, numbers, durations, ranges and
    Grafana variables are not metrics."""
    out, i, n = [], 0, len(expr)
    while i < n:
        c = expr[i]
        if c in "\"'`":
            i, _ = read_string(expr, i)
        elif c == "[":
            close = expr.find("]", i)
            if close < 0:
                raise ValueError(f"unclosed '[' at {i}")
            i = close + 1
        elif c == "$":
            m = re.compile(r"\$(\{[^}]*\}|\w+)").match(expr, i)
            i = m.end() if m else i + 1
        elif c == "{":
            _, i = read_matchers(expr, i)   # a selector without a metric name
        elif c.isdigit() or (c == "." and i + 1 < n and expr[i + 1].isdigit()):
            m = re.compile(r"[\w.+]+").match(expr, i)   # 0.99, 5m, 1e3
            i = m.end()
        elif c.isalpha() or c in "_:":
            m = re.compile(r"[A-Za-z_:][\w:]*").match(expr, i)
            name, j = m.group(0), m.end()
            k = j
            while k < n and expr[k] in " \t\n":
                k += 1
            if name in GROUPING and k < n and expr[k] == "(":
                close = expr.find(")", k)
                if close < 0:
                    raise ValueError(f"unclosed '(' after {name}")
                i = close + 1
            elif name in KEYWORDS or (k < n and expr[k] == "(") or AGGREGATION_CLAUSE.match(expr, k):
                i = j   # a keyword, a function, or an aggregation (`sum by (node) (...)` too)
            elif k < n and expr[k] == "{":
                matchers, i = read_matchers(expr, k)
                out.append((name, matchers))
            else:
                out.append((name, []))
                i = j
        else:
            i += 1
    return out


# --- what the nodes export -----------------------------------------------------

def parse_labels(text):
    labels, j = {}, 0
    while j < len(text):
        m = re.compile(r"\s*,?\s*([A-Za-z_]\w*)=\"").match(text, j)
        if not m:
            break
        j = m.end()
        value = []
        while j < len(text) and text[j] != '"':
            if text[j] == "\\" and j + 1 < len(text):
                j += 1
                value.append({"n": "\n"}.get(text[j], text[j]))
            else:
                value.append(text[j])
            j += 1
        labels[m.group(1)] = "".join(value)
        j += 1
    return labels


def catalogue_of_scrapes(paths):
    """{series name: {"family": NAME, "type": TYPE, "labels": {label: {values}}}} from scrapes."""
    types, series = {}, {}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if line.startswith("# TYPE "):
                    parts = line.split()
                    if len(parts) >= 4:
                        types[parts[2]] = parts[3]
                    continue
                if not line.strip() or line.startswith("#"):
                    continue
                m = re.match(r"([A-Za-z_:][\w:]*)(\{(.*)\})?\s", line)
                if not m:
                    fail(f"{path}: cannot read the line {line!r}")
                entry = series.setdefault(m.group(1), {})
                for k, v in parse_labels(m.group(3) or "").items():
                    entry.setdefault(k, set()).add(v)
    out = {}
    for name, labels in series.items():
        family, kind = name, types.get(name, "untyped")
        for suffix in SUFFIXES:
            base = name[:-len(suffix)]
            if name.endswith(suffix) and types.get(base) in ("histogram", "summary"):
                family, kind = base, types[base]
        out[name] = {"family": family, "type": kind, "labels": labels}
    return out, types


def catalogue_of_docs(path):
    """The same from the metrics table of docs/OPERATIONS.md: | `name` | type | labels | what |."""
    out, types = {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = re.match(r"\|\s*`(branchy_\w+)`\s*\|\s*(\w+)\s*\|([^|]*)\|", line)
            if not m:
                continue
            name, kind = m.group(1), m.group(2)
            # Label names are the quoted words outside parentheses; values are inside them.
            names = re.findall(r"`(\w+)`", re.sub(r"\([^)]*\)", "", m.group(3)))
            labels = {k: None for k in names}
            types[name] = kind
            if kind in ("histogram", "summary"):
                out[f"{name}_bucket" if kind == "histogram" else name] = {"family": name, "type": kind,
                                                                          "labels": dict(labels, **{"le" if kind == "histogram" else "quantile": None})}
                for suffix in ("_sum", "_count"):
                    out[name + suffix] = {"family": name, "type": kind, "labels": dict(labels)}
            else:
                out[name] = {"family": name, "type": kind, "labels": labels}
    if not out:
        fail(f"{path}: no metrics table (rows such as | `branchy_ready` | gauge | | ... |)")
    return out, types


# --- the check ------------------------------------------------------------------

def check(uses, catalogue, types, source):
    """One line per metric: ok, or why not. `uses` maps a metric to [(where, matchers)]."""
    passed = failed = 0
    for name in sorted(uses):
        problems, where = [], sorted({w for w, _ in uses[name]})
        entry = catalogue.get(name)
        if name in PROMETHEUS_SERIES:
            labels, note = {k: None for k in TARGET_LABELS}, "Prometheus's own series for each target"
        elif entry is None:
            labels = None
            if types.get(name) == "histogram":
                problems.append(f"{name} is a histogram: query {name}_bucket, {name}_sum or {name}_count")
            elif name.endswith(SUFFIXES) and name.rsplit("_", 1)[0] in types:
                base = name.rsplit("_", 1)[0]
                problems.append(f"{base} is a {types[base]}, which has no series {name}")
            else:
                problems.append(f"not in {source}")
        else:
            labels = entry["labels"]
            note = entry["type"] if entry["family"] == name else f"{entry['type']} {entry['family']}"
        if labels is not None:
            for _, matchers in uses[name]:
                for label, op, value in matchers:
                    if label in TARGET_LABELS and label not in labels:
                        continue
                    if label not in labels:
                        have = ", ".join(sorted(labels)) or "none"
                        problems.append(f"no series has the label '{label}' (labels: {have})")
                    elif op == "=" and "$" not in value and label not in TARGET_LABELS and labels[label] is not None \
                            and value not in labels[label]:
                        have = ", ".join(sorted(labels[label]))
                        problems.append(f"no series has {label}=\"{value}\" ({label}: {have})")
        problems = list(dict.fromkeys(problems))
        if problems:
            print(f"not ok - {name}: {'; '.join(problems)} (used by {', '.join(where)})")
            failed += 1
        else:
            print(f"ok - {name} ({note}; used by {len(where)} quer{'y' if len(where) == 1 else 'ies'})")
            passed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed or not passed else 0


def uses_of(paths):
    uses = {}
    for path in paths:
        for where, expr in queries_of(path):
            try:
                found = selectors(expr)
            except ValueError as e:
                fail(f"{path}: {where}: {e}: {expr!r}")
            for name, matchers in found:
                uses.setdefault(name, []).append((f"{os.path.basename(path)}: {where}", matchers))
    return uses


def fill_variables(expr):
    def var(m):
        name = (m.group(1) or m.group(2) or m.group(3) or "").split(":")[0]
        return "5m" if name in DURATION_VARIABLES else ".*"
    return re.sub(r"\$\{([^}]*)\}|\$(\w+)|\[\[(\w+)\]\]", var, expr)


def promql_rules(out, dashboard_path):
    with open(dashboard_path, encoding="utf-8") as f:
        dashboard = json.load(f)
    lines = ["# Every query of " + dashboard_path + " as a recording rule, for promtool check rules.",
             "groups:", "  - name: grafana-dashboard", "    rules:"]
    count = 0
    for where, expr in dashboard_queries(dashboard):
        if where.startswith("variable "):
            continue
        count += 1
        record = "dashboard:" + re.sub(r"\W+", "_", where).strip("_")
        lines.append(f"      - record: {record}_{count}")
        lines.append(f"        expr: {json.dumps(fill_variables(expr))}")
    if count == 0:
        fail(f"{dashboard_path} has no queries")
    with open(out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{count} queries")
    return 0


def main(argv):
    args = argv[1:]
    if not args or args[0] in ("-h", "--help"):
        fail(__doc__, 0 if args else 2)
    if args[0] == "--names" and len(args) == 2:
        for name in sorted(uses_of(args[1:])):
            print(name)
        return 0
    if args[0] == "--promql-rules" and len(args) == 3:
        return promql_rules(args[1], args[2])
    if args[0] == "--documented" and len(args) >= 3:
        catalogue, types = catalogue_of_docs(args[1])
        return check(uses_of(args[2:]), catalogue, types, f"the metrics table of {args[1]}")
    if args[0].startswith("--") or len(args) < 2:
        fail(__doc__)
    catalogue, types = catalogue_of_scrapes(args[1:])
    return check(uses_of(args[:1]), catalogue, types, "any scrape (" + ", ".join(os.path.basename(p) for p in args[1:]) + ")")


if __name__ == "__main__":
    sys.exit(main(sys.argv))
