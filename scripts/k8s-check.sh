#!/usr/bin/env bash
# Checks the Kubernetes manifests offline, without a cluster: renders deploy/kubernetes/base and each
# overlay with `kubectl kustomize` (on a copy with throwaway certificates from gen-certs.sh), validates
# every resource against the schemas of one Kubernetes version (kubernetes-validate --strict, in
# run/venv-k8s) and makes sure invalid copies are refused; checks that the manifests agree with their
# topology and the Containerfile (scripts/lib/k8s_check.py agree), that the device's copy of the
# topology differs only in paths and where it dials the edge, that branchy loads both, that SIGHUP to
# branchy-edge as PID 1 of its own PID namespace applies a topology swapped in as the kubelet does
# (needs root), and checks deploy/prometheus with promtool and against docs/OPERATIONS.md and
# `branchy scrape-config`, and that .containerignore and .dockerignore agree. Prints `ok`/`not ok`
# lines and `N passed, M failed`; details in run/k8s-check/. Environment: BRANCHY_BIN.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

K8S_VERSION=1.32.0
VALIDATE_VERSION=1.37.0   # kubernetes-validate, which carries the schemas of Kubernetes 1.25 ... 1.37
usage() { printf 'usage: %s [--kubernetes-version V]   (default %s; 1.25.0 ... 1.37.0)\n%s\n' "$(basename "$0")" "$K8S_VERSION" \
    "Renders deploy/kubernetes and validates every resource offline; needs no cluster."; }
while [ "$#" -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --kubernetes-version) [ "$#" -ge 2 ] || { usage >&2; exit 2; }; K8S_VERSION="$2"; shift ;;
        *) usage >&2; exit 2 ;;
    esac
    shift
done
[[ "$K8S_VERSION" =~ ^1\.[0-9]+\.[0-9]+$ ]] || die "--kubernetes-version wants a version such as 1.32.0, got '$K8S_VERSION'"

cd "$REPO_ROOT"
work="$(mktemp -d "${TMPDIR:-/tmp}/k8s-check.XXXXXX")"
log=run/k8s-check/k8s-check.log
mkdir -p run/k8s-check
: > "$log"
trap 'rm -rf "$work"' EXIT

ensure_packages python3:python3 openssl:openssl curl:curl promtool:prometheus kubectl:kubectl
ensure_built
branchy="$BRANCHY_BIN/branchy"
venv=run/venv-k8s
"$venv/bin/python" -c 'import sys, yaml, importlib.metadata as m; sys.exit(m.version("kubernetes-validate") != sys.argv[1])' \
    "$VALIDATE_VERSION" 2>/dev/null || ensure_venv "$venv" "kubernetes-validate==$VALIDATE_VERSION"
"$venv/bin/python" -c 'import sys, kubernetes_validate.utils as u
sys.exit(sys.argv[1].rsplit(".", 1)[0] not in {v.rsplit(".", 1)[0] for v in u.all_versions()})' "$K8S_VERSION" \
    || die "kubernetes-validate $VALIDATE_VERSION has no schemas for Kubernetes $K8S_VERSION"
helper=("$venv/bin/python" scripts/lib/k8s_check.py)
renderer="kubectl kustomize (kustomize $(kubectl version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p'))"

cp -r deploy/kubernetes "$work/kubernetes"
rm -rf "$work/kubernetes/base/certs"
scripts/gen-certs.sh "$work/kubernetes/base/topology.yaml" "$work/kubernetes/base/certs" >>"$log" 2>&1 \
    || die "scripts/gen-certs.sh could not make certificates for the cluster topology (see $log)"

# render LABEL DIR: the kustomization in DIR to $work/LABEL.yaml, then one check per resource that the
# base has not had (so that a failure names it).
validate_one() {
    "$venv/bin/kubernetes-validate" --strict --quiet --no-warn -k "$K8S_VERSION" "$current" > "$work/kv" 2>&1 && return
    sed -E 's/^ERROR [^ ]+ did not validate for resource [^ ]+ against version [^:]+: //' "$work/kv" | paste -sd ';'
    return 1
}
render() {
    local label="$1" dir="$2" file id
    check_render() { kubectl kustomize "$dir" > "$work/$label.yaml" 2>"$work/err" && [ -s "$work/$label.yaml" ] || { tail -n 3 "$work/err"; return 1; }; }
    run_check "$3 renders with $renderer" check_render
    [ -s "$work/$label.yaml" ] || return 1
    "${helper[@]}" split "$work/$label.yaml" "$work/split-$label" > "$work/$label.list" 2>>"$log"
    while IFS=$'\t' read -r -u 3 current id; do   # descriptor 3: no check can read the list
        [ "$label" = base ] || ! cut -f2 "$work/base.list" | grep -qxF "$id" || continue
        run_check "valid: $id ($label, Kubernetes $K8S_VERSION, strict)" validate_one
    done 3< "$work/$label.list"
}
check_refuses() {   # $current is refused, naming its kind ($kind)
    ! validate_one > /dev/null || { echo "kubernetes-validate accepted $(basename "$current")"; return 1; }
    grep -q "did not validate for resource $kind/" "$work/kv" || { echo "kubernetes-validate failed without naming the resource: $(head -n 1 "$work/kv")"; return 1; }
    head -n 1 "$work/kv" >&2
}
check_agree() {
    "${helper[@]}" agree "$current" Containerfile > "$work/agree" 2>&1 \
        || { cat "$work/agree" >&2; echo "$(wc -l < "$work/agree") problem(s), the first: $(head -n 1 "$work/agree")"; return 1; }
}
broken() {   # broken KIND FILE NAME...: invalid copies of the base's first KIND, each must be refused
    local doc kind="${1,,}" dir="$work/broken-$1"
    doc="$(awk -F'\t' -v k="$1" '$2 ~ "^" k " " { print $1; exit }' "$work/base.list")"
    [ -n "$doc" ] && "${helper[@]}" break "$doc" "$dir" > /dev/null 2>>"$log" || return 0
    for ((i = 2; i < $#; i += 2)); do current="$dir/${!i}.yaml" j=$((i + 1)); run_check "${!j}" check_refuses; done
}

if render base "$work/kubernetes/base" base; then
    broken Deployment unknown-field "a Deployment with a misspelt field (readinesProbe) is refused" \
        wrong-type "a Deployment with a wrong type (replicas: \"two\") is refused"
    broken NetworkPolicy unknown-field "a NetworkPolicy with a misspelt field (ingres) is refused"
    current="$work/base.yaml"
    run_check "base agrees with its topology and the Containerfile (ports, probes, user, own TLS files, Services, NetworkPolicies, pinned image, resources, replicas and PodDisruptionBudgets, SIGHUP reload)" check_agree
fi
for dir in "$work"/kubernetes/overlays/*/; do
    overlay="$(basename "$dir")"
    [ -f "$dir/kustomization.yaml" ] && render "$overlay" "$dir" "overlay $overlay" || continue
    current="$work/$overlay.yaml"
    run_check "overlay $overlay agrees with its topology and the Containerfile" check_agree
done

# The device's copy differs from the cluster's topology only in paths (tls) and where the device
# dials the edge (one address: or replicas:), as `branchy topology show` reads both.
check_device_copy() {
    local cluster device
    cluster="$(topology_show deploy/kubernetes/base/topology.yaml)" && device="$(topology_show "$current")" || return 1
    python3 -c 'import json, sys
a, b, sep, nil = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[4], "neither"
na, nb = ({n["name"]: n for n in t["nodes"]} for t in (a, b))
problems = [] if list(na) == list(nb) else [f"nodes {list(nb)} in {sys.argv[3]}, {list(na)} in the cluster topology"]
for name in set(na) & set(nb):
    x, y = dict(na[name], tls=None), dict(nb[name], tls=None)
    if x["role"] == "edge":
        dial = [k for k in ("address", "replicas") if y[k] is not None]
        if len(dial) != 1:
            problems.append(f"node {name!r} should give the device one `address:` or `replicas:` to dial, it gives {sep.join(dial) or nil}")
        for k in ("address", "replicas", "dial", "dialAddresses"):
            x[k] = y[k] = None
    if x != y:
        problems.append(f"node {name!r} differs in {sep.join(sorted(k for k in x if x[k] != y.get(k)))}")
print("; ".join(problems)); sys.exit(bool(problems))' "$cluster" "$device" "$current" ", "
}
check_loads() {   # `branchy eval --topology` reads it with the model's stage order and classifies one sample
    "$branchy" eval --dataset data/fashion-mnist --limit 1 --topology "$current" > "$work/eval" 2>&1 && return
    cat "$work/eval" >&2
    echo "$branchy refuses it: $(grep -v '^\s*$' "$work/eval" | grep -v "See 'branchy --help'" | tail -n 1)"
    return 1
}
devices=(deploy/kubernetes/overlays/*/device-topology.yaml)
for current in "${devices[@]}"; do
    run_check "$current matches the cluster topology but for paths and the edge's address" check_device_copy
done
check_ignore_files() { cmp -s .containerignore .dockerignore || { echo ".containerignore and .dockerignore differ"; return 1; }; }
run_check ".containerignore and .dockerignore are the same" check_ignore_files
# The ConfigMap's copy names the model's folder inside the image: read it with the same model in models/.
"${helper[@]}" topology "$work/base.yaml" "$work/configmap.yaml" 2>>"$log" || cp deploy/kubernetes/base/topology.yaml "$work/configmap.yaml"
current="$work/topology.yaml"
topology_with "$work/configmap.yaml" "$current" "model=$REPO_ROOT/models/b-resnet3" 2>>"$log" || true
run_check "the ConfigMap's topology loads in $branchy" check_loads
for current in "${devices[@]}"; do run_check "$current loads in $branchy" check_loads; done

# What `kubectl exec POD -- sh -c 'kill -HUP 1'` does after `kubectl apply -k` changed the ConfigMap: the
# edge (on loopback ports, its upstream where nothing listens) runs as PID 1 of its own PID namespace,
# reads its topology through the links a ConfigMap volume has (topology.yaml -> ..data/topology.yaml,
# ..data -> a folder per version); the new version is swapped in by renaming ..data as the kubelet
# does, and a shell inside the namespace sends SIGHUP to PID 1.
check_reload_in_pod() {
    local dir="$work/pod" edge_port metrics_port cloud_port outer node_pid="" value="" applied
    read -r edge_port metrics_port cloud_port < <(python3 -c 'import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(" ".join(str(x.getsockname()[1]) for x in s))')
    for version in "v1 0.7" "v2 1.5"; do
        set -- $version
        mkdir -p "$dir/..$1"
        topology_with deploy/kubernetes/base/topology.yaml "$dir/..$1/topology.yaml" "model=$REPO_ROOT/models/b-resnet3" "certs=$dir/certs" \
            edge.replicas= cloud.replicas= cloud.metrics= "edge.listen=127.0.0.1:$edge_port" "edge.metrics=127.0.0.1:$metrics_port" \
            "edge.thresholds=[$2]" "cloud.listen=127.0.0.1:$cloud_port" || { echo "could not write the local copy of the topology"; return 1; }
    done
    scripts/gen-certs.sh "$dir/..v1/topology.yaml" "$dir/certs" >>"$log" 2>&1 || { echo "scripts/gen-certs.sh failed (see $log)"; return 1; }
    ln -s ..v1 "$dir/..data"
    ln -s ..data/topology.yaml "$dir/topology.yaml"
    unshare --pid --fork "$BRANCHY_BIN/branchy-edge" --topology "$dir/topology.yaml" --node edge --log-level info > "$work/pod-edge.log" 2>&1 &
    outer=$!
    gone() { kill -KILL "$node_pid" 2>/dev/null; wait "$outer" 2>/dev/null; }
    healthy() {   # the edge is the child of unshare, and PID 1 of the new namespace
        node_pid="$(awk '{ print $1 }' "/proc/$outer/task/$outer/children" 2>/dev/null || true)"
        [ -n "$node_pid" ] || ! kill -0 "$outer" 2>/dev/null || return 1
        curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$metrics_port/healthz" || ! kill -0 "$outer" 2>/dev/null
    }
    wait_for 30 healthy && kill -0 "$outer" 2>/dev/null || { echo "the edge did not serve /healthz: $(tail -n 1 "$work/pod-edge.log")"; gone; return 1; }
    [ "$(awk '/^NSpid:/ { print $NF }' "/proc/$node_pid/status" 2>/dev/null)" = 1 ] \
        || { gone; echo "the edge (pid $node_pid) is not PID 1 of its namespace"; return 1; }
    ln -s ..v2 "$dir/..data_tmp" && mv -T "$dir/..data_tmp" "$dir/..data"   # the kubelet's update
    nsenter --target "$node_pid" --pid -- sh -c 'kill -HUP 1' >>"$log" 2>&1 || echo "nsenter could not send SIGHUP" >&2
    scraped() { curl -s --max-time 1 "http://127.0.0.1:$metrics_port/metrics" | awk -v m="$1" 'index($0, m) == 1 { print $2 }'; }
    reloaded() { value="$(scraped 'branchy_exit_threshold{exit="edge-exit"}')"; [ "$value" = 1.5 ]; }
    wait_for 5 reloaded || true
    applied="$(scraped 'branchy_config_reloads_total{result="applied"}')"
    gone
    cat "$work/pod-edge.log" >&2
    [ "$value" = "1.5" ] || { echo "the edge's threshold is '${value:-}' after SIGHUP, expected 1.5: $(grep SIGHUP "$work/pod-edge.log" | tail -n 1)"; return 1; }
    [ "$applied" = "1" ] || { echo "the edge counted '${applied:-}' applied reloads, expected 1"; return 1; }
    grep -q "SIGHUP: reloaded" "$work/pod-edge.log" || { echo "the edge did not log the reload"; return 1; }
}
if [ "$(id -u)" -ne 0 ] || ! unshare --pid --fork true 2>/dev/null || ! command -v nsenter >/dev/null 2>&1; then
    echo "skip - SIGHUP in a pod: needs root, unshare --pid and nsenter"
else
    run_check "SIGHUP to the node as PID 1 of its namespace (kubectl exec ... sh -c 'kill -HUP 1') applies a topology swapped in as the kubelet does" check_reload_in_pod
fi

# --- Prometheus rules, scrape configuration, Grafana dashboard ---------------------------------
prom=deploy/prometheus
promtool_ok() { promtool "$@" > "$work/promtool" 2>&1 || { grep -v '^\s*$' "$work/promtool" | tail -n 1; return 1; }; }
check_rules() { promtool_ok check rules "$prom/branchy-rules.yml" && grep -o '[0-9]* rules found' "$work/promtool" >> "$work/figures"; }
check_rule_tests() {
    (cd "$prom" && promtool test rules branchy-rules.test.yml) > "$work/promtool" 2>&1 || { cat "$work/promtool" >&2
        echo "$(grep -c 'alertname:' "$work/promtool") expectation(s) not met, the first: $(grep -m 1 'alertname:' "$work/promtool" | sed 's/^ *//')"; return 1; }
    echo "$(grep -c 'alertname:' "$prom/branchy-rules.test.yml") alert expectations" >> "$work/figures"
}
check_prometheus_config() { promtool_ok check config "$prom/prometheus.yml"; }
check_dashboard_promql() {
    python3 scripts/lib/dashboard_check.py --promql-rules "$work/dashboard-rules.yml" "$prom/grafana-dashboard.json" >> "$work/figures" 2>&1 \
        || { tail -n 1 "$work/figures"; return 1; }
    promtool_ok check rules "$work/dashboard-rules.yml"
}
check_documented() {
    python3 scripts/lib/dashboard_check.py --documented docs/OPERATIONS.md "$prom/grafana-dashboard.json" "$prom/branchy-rules.yml" > "$work/documented" 2>&1 \
        || { cat "$work/documented" >&2; echo "$(grep -c '^not ok' "$work/documented") metric(s), the first: $(grep -m 1 '^not ok' "$work/documented" | sed 's/^not ok - //')"; return 1; }
    tail -n 1 "$work/documented" | sed 's/ passed, 0 failed/ metrics/' >> "$work/figures"
}
check_scrape_config() {
    "$branchy" scrape-config --topology deploy/kubernetes/base/topology.yaml --interval 15 > "$work/scrape-config.yml" 2>&1 \
        || { tail -n 1 "$work/scrape-config.yml"; return 1; }
    [ "$(head -c "$(wc -c < "$work/scrape-config.yml")" "$prom/prometheus.yml")" = "$(cat "$work/scrape-config.yml")" ] \
        || { diff "$work/scrape-config.yml" "$prom/prometheus.yml" >&2; echo "it differs from what $branchy scrape-config prints (diff in $log)"; return 1; }
}
run_check "$prom/branchy-rules.yml: promtool check rules" check_rules
run_check "$prom/branchy-rules.test.yml: promtool test rules (every alert fires, and stays quiet where it should)" check_rule_tests
run_check "$prom/prometheus.yml: promtool check config (scrape configuration and its rule files)" check_prometheus_config
run_check "$prom/grafana-dashboard.json: every query parses as PromQL (promtool)" check_dashboard_promql
run_check "the dashboard and the alert rules name only metrics and labels that docs/OPERATIONS.md lists" check_documented
run_check "$prom/prometheus.yml begins with what branchy scrape-config prints for the cluster topology (dns_sd_configs for each replicated tier)" check_scrape_config

echo "validated against Kubernetes $K8S_VERSION (kubernetes-validate $VALIDATE_VERSION, strict, offline); rendered with $renderer"
summary
