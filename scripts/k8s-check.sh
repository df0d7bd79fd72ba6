#!/usr/bin/env bash
# Checks the Kubernetes manifests offline, without a cluster:
#   - renders deploy/kubernetes/base and each overlay with `kubectl kustomize`, on a copy with
#     throwaway certificates made by scripts/gen-certs.sh (the real certs/ stays untouched);
#     without kubectl (and when `apt-get install kubectl` cannot bring it), with the small
#     renderer in scripts/lib/k8s_check.py, which also has to agree with kubectl where both run
#   - validates every rendered resource on its own against the Kubernetes JSON schemas of one
#     version (kubernetes-validate --strict: unknown fields are errors; default 1.32.0)
#   - makes sure the validation can fail: a Deployment with a misspelt field, one with a value
#     of the wrong type and a NetworkPolicy with a misspelt field must all be refused
#   - checks that the manifests agree with the topology in their ConfigMap and the Containerfile
#     (ports, probes, user, security context, Service names, drain time; each pod holds its own
#     node's three TLS files from the node's Secret and no other node's certificate or key; the
#     NetworkPolicies let each node's children reach its TLS port and only monitoring
#     namespaces its metrics port; every Deployment runs the image pinned to the Containerfile's
#     BRANCHY_VERSION (or a digest), with requests equal to limits, two replicas or more and a
#     PodDisruptionBudget that keeps one; the topology ConfigMap keeps its name and is mounted
#     as a folder, and the node is its pod's PID 1, so that SIGHUP can apply a changed topology)
#   - has `branchy` load the cluster's topology and the device's copy (with the executables of
#     BRANCHY_BIN, .build/release or .build/debug; skipped with a note when none is built); an
#     executable that refuses them fails the check
#   - runs branchy-edge as PID 1 of a PID namespace of its own, as in a pod, swaps a new topology
#     in as the kubelet does and sends `sh -c 'kill -HUP 1'` from inside the namespace, as
#     `kubectl exec` would: the new threshold must be in force (root and a built branchy-edge)
#   - deploy/prometheus: `promtool check rules` and `promtool test rules` on the alert rules,
#     `promtool check config` on prometheus.yml, which must begin with what `branchy
#     scrape-config` prints for the cluster topology; every query of the Grafana dashboard parses
#     (promtool), and the dashboard and the rules name only metrics and labels that
#     docs/OPERATIONS.md lists (scripts/operations.sh checks the dashboard against live scrapes)
#   - .containerignore and .dockerignore say the same
# Installs python3, openssl, curl and prometheus (for promtool) with apt-get and
# kubernetes-validate (PyPI) into run/venv-k8s when missing. Prints `ok - NAME` or
# `not ok - NAME: why` per check, then `N passed, M failed`; exits 1 if any check failed.
# Details in run/k8s-check/k8s-check.log. Environment: KUBECTL (the kubectl to use, default
# `kubectl`; `none` renders with the fallback renderer only), BRANCHY_BIN (folder of built
# executables).
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

K8S_VERSION=1.32.0
VALIDATE_VERSION=1.37.0   # kubernetes-validate, which carries the schemas of Kubernetes 1.25 ... 1.37

usage() {
    cat <<USAGE
usage: $(basename "$0") [--kubernetes-version V]   (default $K8S_VERSION; 1.25.0 ... 1.37.0)
Renders deploy/kubernetes and validates every resource offline; needs no cluster.
USAGE
}
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
out=run/k8s-check
log="$out/k8s-check.log"
mkdir -p "$out"
: > "$log"
work="$(mktemp -d "${TMPDIR:-/tmp}/k8s-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
passed=0
failed=0
skipped=0
skip() { echo "skip - $1"; skipped=$((skipped + 1)); }

# --- tools ---------------------------------------------------------------------

ensure_packages python3:python3 openssl:openssl curl:curl promtool:prometheus
venv="$REPO_ROOT/run/venv-k8s"
PY="$venv/bin/python"
if ! { [ -x "$venv/bin/kubernetes-validate" ] && "$PY" -c 'import sys, yaml, importlib.metadata as m
sys.exit(m.version("kubernetes-validate") != sys.argv[1])' "$VALIDATE_VERSION" 2>/dev/null; }; then
    ensure_venv "$venv"
    say "installing kubernetes-validate $VALIDATE_VERSION into $venv"
    "$PY" -m pip install -q --disable-pip-version-check "kubernetes-validate==$VALIDATE_VERSION" >&2 \
        || die "pip could not install kubernetes-validate"
fi
helper=("$PY" scripts/lib/k8s_check.py)
"$PY" -c 'import sys, kubernetes_validate.utils as u
mm = ".".join(sys.argv[1].split(".")[:2])
sys.exit(mm not in {".".join(v.split(".")[:2]) for v in u.all_versions()})' "$K8S_VERSION" \
    || die "kubernetes-validate $VALIDATE_VERSION has no schemas for Kubernetes $K8S_VERSION"

KUBECTL="${KUBECTL:-kubectl}"
if [ "$KUBECTL" = kubectl ] && ! command -v kubectl >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    # Debian does not package kubectl, but a machine may have a repository that does.
    say "kubectl is missing; trying apt-get install kubectl"
    sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    { "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq kubectl; } >>"$log" 2>&1 || true
fi
have_kubectl() { [ "$KUBECTL" != none ] && command -v "$KUBECTL" >/dev/null 2>&1; }
if have_kubectl; then
    kustomize_version="$("$KUBECTL" version --client 2>/dev/null | sed -n 's/^Kustomize Version: //p')"
    renderer="kubectl kustomize${kustomize_version:+ (kustomize $kustomize_version)}"
else
    renderer="scripts/lib/k8s_check.py render (no kubectl)"
fi

# --- a copy with throwaway certificates ------------------------------------------

cp -r deploy/kubernetes "$work/kubernetes"
rm -rf "$work/kubernetes/base/certs"
scripts/gen-certs.sh "$work/kubernetes/base/topology.yaml" "$work/kubernetes/base/certs" >>"$log" 2>&1 \
    || die "scripts/gen-certs.sh could not make certificates for the cluster topology (see $log)"
overlays=()
for dir in "$work"/kubernetes/overlays/*/; do
    [ -f "$dir/kustomization.yaml" ] && overlays+=("$(basename "$dir")")
done

render() {   # render DIR OUT
    if have_kubectl; then
        "$KUBECTL" kustomize "$1" > "$2"
    else
        "${helper[@]}" render "$1" > "$2"
    fi
}

# --- checks ----------------------------------------------------------------------

check_render_base() {
    render "$work/kubernetes/base" "$work/base.yaml" 2>"$work/err" || { tail -n 3 "$work/err"; return 1; }
    [ -s "$work/base.yaml" ] || { echo "nothing was rendered"; return 1; }
}
run_check "base renders with $renderer" check_render_base

check_fallback_agrees() {
    "${helper[@]}" render "$work/kubernetes/base" > "$work/base-fallback.yaml" 2>"$work/err" || { tail -n 1 "$work/err"; return 1; }
    "${helper[@]}" same "$work/base.yaml" "$work/base-fallback.yaml" > "$work/diff" \
        || { echo "the fallback renderer differs from kubectl: $(paste -sd ';' "$work/diff")"; return 1; }
}
if have_kubectl && [ -s "$work/base.yaml" ]; then
    run_check "the fallback renderer (for machines without kubectl) gives what kubectl gives" check_fallback_agrees
fi

# One check per resource, so that a failure names it.
validate_one() {
    "$venv/bin/kubernetes-validate" --strict --quiet --no-warn -k "$K8S_VERSION" "$current_file" > "$work/kv" 2>&1 && return 0
    sed -E 's/^ERROR [^ ]+ did not validate for resource [^ ]+ against version [^:]+: //' "$work/kv" | paste -sd ';'
    return 1
}
validate_stream() {   # validate_stream LABEL STREAM [SKIP_IDS_FILE]
    local label="$1" stream="$2" skip_ids="${3:-/dev/null}" dir
    dir="$work/split-$label"
    "${helper[@]}" split "$stream" "$dir" > "$work/$label.list" 2>>"$log" \
        || { echo "not ok - split the $label render: see $log"; failed=$((failed + 1)); return; }
    # The list comes in on descriptor 3, so that no check can read it from standard input.
    while IFS=$'\t' read -r -u 3 current_file current_id; do
        grep -qxF "$current_id" "$skip_ids" && continue
        run_check "valid: $current_id ($label, Kubernetes $K8S_VERSION, strict)" validate_one
    done 3< "$work/$label.list"
}
if [ -s "$work/base.yaml" ]; then
    validate_stream base "$work/base.yaml"
fi

check_refuses() {   # current_file, refused_kind (lower case, as kubernetes-validate names it)
    "$venv/bin/kubernetes-validate" --strict --quiet --no-warn -k "$K8S_VERSION" "$current_file" > "$work/kv" 2>&1 \
        && { echo "kubernetes-validate accepted $(basename "$current_file")"; return 1; }
    grep -q "did not validate for resource $refused_kind/" "$work/kv" \
        || { echo "kubernetes-validate failed without naming the resource: $(head -n 1 "$work/kv")"; return 1; }
    echo "$(head -n 1 "$work/kv")" >&2
}
deployment_file="$(awk -F'\t' '$2 ~ /^Deployment / { print $1; exit }' "$work/base.list" 2>/dev/null || true)"
if [ -n "$deployment_file" ]; then
    "${helper[@]}" break "$deployment_file" "$work/broken" > "$work/broken.list" 2>>"$log"
    refused_kind=deployment
    current_file="$work/broken/unknown-field.yaml"
    run_check "a Deployment with a misspelt field (readinesProbe) is refused" check_refuses
    current_file="$work/broken/wrong-type.yaml"
    run_check "a Deployment with a wrong type (replicas: \"two\") is refused" check_refuses
fi
policy_file="$(awk -F'\t' '$2 ~ /^NetworkPolicy / { print $1; exit }' "$work/base.list" 2>/dev/null || true)"
if [ -n "$policy_file" ]; then
    # Dropped on the way in, a misspelt `ingress:` would leave the pods refusing every connection.
    "${helper[@]}" break "$policy_file" "$work/broken-policy" > "$work/broken-policy.list" 2>>"$log"
    refused_kind=networkpolicy
    current_file="$work/broken-policy/unknown-field.yaml"
    run_check "a NetworkPolicy with a misspelt field (ingres) is refused" check_refuses
fi

check_agree() {
    "${helper[@]}" agree "$current_file" Containerfile > "$work/agree" 2>&1 \
        || { cat "$work/agree" >&2; echo "$(wc -l < "$work/agree") problem(s), the first: $(head -n 1 "$work/agree")"; return 1; }
}
if [ -s "$work/base.yaml" ]; then
    current_file="$work/base.yaml"
    run_check "base agrees with its topology and the Containerfile (ports, probes, user, own TLS files, Services, NetworkPolicies, pinned image, resources, replicas and PodDisruptionBudgets, SIGHUP reload)" check_agree
fi

for overlay in "${overlays[@]}"; do
    check_render_overlay() {
        render "$work/kubernetes/overlays/$overlay" "$work/overlay-$overlay.yaml" 2>"$work/err" || { tail -n 3 "$work/err"; return 1; }
    }
    run_check "overlay $overlay renders with $renderer" check_render_overlay
    [ -s "$work/overlay-$overlay.yaml" ] || continue
    # Resources the base already had were validated above.
    cut -f2 "$work/base.list" > "$work/base.ids" 2>/dev/null || : > "$work/base.ids"
    validate_stream "$overlay" "$work/overlay-$overlay.yaml" "$work/base.ids"
    current_file="$work/overlay-$overlay.yaml"
    run_check "overlay $overlay agrees with its topology and the Containerfile" check_agree
done

check_device_copy() {
    "${helper[@]}" device-copy deploy/kubernetes/base/topology.yaml "$current_file" > "$work/dc" 2>&1 \
        || { paste -sd ';' "$work/dc"; return 1; }
}
for current_file in deploy/kubernetes/overlays/*/device-topology.yaml; do
    [ -f "$current_file" ] || continue
    run_check "$current_file matches the cluster topology but for paths and the edge's address" check_device_copy
done

check_ignore_files() {
    cmp -s .containerignore .dockerignore || { echo ".containerignore and .dockerignore differ"; return 1; }
}
run_check ".containerignore and .dockerignore are the same" check_ignore_files

# The topology as the project's own loader reads it: `branchy eval --topology` parses it with
# the model's stage order (every check but the TLS files), then classifies one sample with the
# topology's model. The ConfigMap's copy names the model's folder inside the image; the check
# reads it with `model:` set to the same model in models/.
branchy=""
for candidate in "${BRANCHY_BIN:+$BRANCHY_BIN/branchy}" .build/release/branchy .build/debug/branchy; do
    [ -n "$candidate" ] && [ -x "$candidate" ] && { branchy="$candidate"; break; }
done
check_loads() {
    local reason hint="" status=0
    "$branchy" eval --dataset data/fashion-mnist --limit 1 --topology "$current_file" > "$work/eval" 2>&1 || status=$?
    [ "$status" -ne 0 ] || return 0
    cat "$work/eval" >&2
    reason="$(grep -v '^\s*$' "$work/eval" | grep -v "See 'branchy --help'" | tail -n 1)"
    if grep -qE "unknown key '(metrics|replicas)'" "$work/eval"; then
        hint=" (an executable built before the topology had metrics: and replicas:; rebuild it)"
    fi
    echo "$branchy refuses it: ${reason:-exit status $status}$hint"
    return 1
}
if [ -n "$branchy" ]; then
    current_file="$work/topology.yaml"
    "${helper[@]}" topology "$work/base.yaml" "$current_file" 2>>"$log" || cp deploy/kubernetes/base/topology.yaml "$current_file"
    sed -i -E "s|^model: /opt/branchy/models/(.*)$|model: $REPO_ROOT/models/\\1|" "$current_file"
    run_check "the ConfigMap's topology loads in $branchy" check_loads
    for current_file in deploy/kubernetes/overlays/*/device-topology.yaml; do
        [ -f "$current_file" ] && run_check "$current_file loads in $branchy" check_loads
    done
else
    skip "topology loads in branchy: no executable in \$BRANCHY_BIN, .build/release or .build/debug (swift build --product branchy)"
fi

# --- SIGHUP in a pod ----------------------------------------------------------------
# What `kubectl exec POD -- sh -c 'kill -HUP 1'` does after `kubectl apply -k` changed the
# ConfigMap: the node runs as PID 1 of its own PID namespace, reads its topology through the
# symbolic links a ConfigMap volume has (topology.yaml -> ..data/topology.yaml, ..data -> a
# folder of the version), the new version is swapped in by renaming ..data as the kubelet does,
# and a shell inside the namespace sends SIGHUP to PID 1. The copy runs the cluster's edge on
# loopback ports with its upstream at a port where nothing listens (the edge serves metrics
# without it).
check_reload_in_pod() {
    local dir="$work/pod" edge_port metrics_port cloud_port version outer="" node_pid="" waited=0 value="" applied
    mkdir -p "$dir/..v1" "$dir/..v2"
    read -r edge_port metrics_port cloud_port < <(python3 -c 'import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
    for version in "v1 0.7" "v2 1.5"; do
        set -- $version
        "${helper[@]}" local-copy deploy/kubernetes/base/topology.yaml "$dir/..$1/topology.yaml" "$REPO_ROOT/models/b-resnet3" \
            "$dir/certs" "$edge_port" "$metrics_port" "$cloud_port" "$2" || { echo "could not write the local copy of the topology"; return 1; }
    done
    scripts/gen-certs.sh "$dir/..v1/topology.yaml" "$dir/certs" >>"$log" 2>&1 || { echo "scripts/gen-certs.sh failed (see $log)"; return 1; }
    ln -s ..v1 "$dir/..data"
    ln -s ..data/topology.yaml "$dir/topology.yaml"
    unshare --pid --fork "$branchy_edge" --topology "$dir/topology.yaml" --node edge --log-level info > "$work/pod-edge.log" 2>&1 &
    outer=$!
    # The edge is the child of unshare, and PID 1 of the new namespace.
    until [ -n "$node_pid" ] && curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$metrics_port/healthz"; do
        node_pid="$(awk '{ print $1 }' "/proc/$outer/task/$outer/children" 2>/dev/null || true)"
        [ -n "$node_pid" ] || node_pid="$(pgrep -P "$outer" 2>/dev/null | head -n 1 || true)"
        [ "$waited" -lt 300 ] && kill -0 "$outer" 2>/dev/null || { echo "the edge did not serve /healthz: $(tail -n 1 "$work/pod-edge.log")"; kill -KILL "$node_pid" 2>/dev/null; wait "$outer" 2>/dev/null; return 1; }
        sleep 0.1
        waited=$((waited + 1))
    done
    if [ "$(awk '/^NSpid:/ { print $NF }' "/proc/$node_pid/status" 2>/dev/null)" != 1 ]; then
        kill -KILL "$node_pid" 2>/dev/null; wait "$outer" 2>/dev/null
        echo "the edge (pid $node_pid) is not PID 1 of its namespace"; return 1
    fi
    # The kubelet's update: the new version next to the old one, then ..data renamed over.
    ln -s ..v2 "$dir/..data_tmp"
    mv -T "$dir/..data_tmp" "$dir/..data"
    nsenter --target "$node_pid" --pid -- sh -c 'kill -HUP 1' >>"$log" 2>&1 || echo "nsenter could not send SIGHUP" >&2
    waited=0
    until [ "${value:-}" = "1.5" ] || [ "$waited" -ge 50 ]; do
        sleep 0.1
        value="$(curl -s --max-time 1 "http://127.0.0.1:$metrics_port/metrics" | awk '/^branchy_exit_threshold\{exit="edge-exit"\}/ { print $2 }')"
        waited=$((waited + 1))
    done
    applied="$(curl -s --max-time 1 "http://127.0.0.1:$metrics_port/metrics" | awk '/^branchy_config_reloads_total\{result="applied"\}/ { print $2 }')"
    kill -KILL "$node_pid" 2>/dev/null || true
    wait "$outer" 2>/dev/null || true
    cat "$work/pod-edge.log" >&2
    [ "$value" = "1.5" ] || { echo "the edge's threshold is '${value:-}' after SIGHUP, expected 1.5: $(grep SIGHUP "$work/pod-edge.log" | tail -n 1)"; return 1; }
    [ "$applied" = "1" ] || { echo "the edge counted '${applied:-}' applied reloads, expected 1"; return 1; }
    grep -q "SIGHUP: reloaded" "$work/pod-edge.log" || { echo "the edge did not log the reload"; return 1; }
}
branchy_edge="${branchy:+$(dirname "$branchy")/branchy-edge}"
if [ -z "$branchy_edge" ] || [ ! -x "$branchy_edge" ]; then
    skip "SIGHUP in a pod: no branchy-edge next to branchy (swift build --product branchy-edge)"
elif [ "$(id -u)" -ne 0 ] || ! unshare --pid --fork true 2>/dev/null || ! command -v nsenter >/dev/null 2>&1; then
    skip "SIGHUP in a pod: needs root, unshare --pid and nsenter"
else
    run_check "SIGHUP to the node as PID 1 of its namespace (kubectl exec ... sh -c 'kill -HUP 1') applies a topology swapped in as the kubelet does" check_reload_in_pod
fi

# --- Prometheus rules, scrape configuration, Grafana dashboard ---------------------------
prom=deploy/prometheus
check_rules() {
    promtool check rules "$prom/branchy-rules.yml" > "$work/promtool" 2>&1 || { grep -v '^\s*$' "$work/promtool" | tail -n 1; return 1; }
    grep -o 'SUCCESS: [0-9]* rules found' "$work/promtool" | sed 's/SUCCESS: //' >> "$work/figures"
}
run_check "$prom/branchy-rules.yml: promtool check rules" check_rules
check_rule_tests() {
    (cd "$prom" && promtool test rules branchy-rules.test.yml) > "$work/promtool" 2>&1 || {
        cat "$work/promtool" >&2; echo "$(grep -c 'alertname:' "$work/promtool") expectation(s) not met, the first: $(grep -m 1 'alertname:' "$work/promtool" | sed 's/^ *//')"; return 1; }
    echo "$(grep -c 'alertname:' "$prom/branchy-rules.test.yml") alert expectations" >> "$work/figures"
}
run_check "$prom/branchy-rules.test.yml: promtool test rules (every alert fires, and stays quiet where it should)" check_rule_tests
check_prometheus_config() {
    promtool check config "$prom/prometheus.yml" > "$work/promtool" 2>&1 || { grep -v '^\s*$' "$work/promtool" | tail -n 1; return 1; }
}
run_check "$prom/prometheus.yml: promtool check config (scrape configuration and its rule files)" check_prometheus_config
check_dashboard_promql() {
    python3 scripts/lib/dashboard_check.py --promql-rules "$work/dashboard-rules.yml" "$prom/grafana-dashboard.json" >> "$work/figures" 2>&1 \
        || { tail -n 1 "$work/figures"; return 1; }
    promtool check rules "$work/dashboard-rules.yml" > "$work/promtool" 2>&1 || { grep -v '^\s*$' "$work/promtool" | tail -n 1; return 1; }
}
run_check "$prom/grafana-dashboard.json: every query parses as PromQL (promtool)" check_dashboard_promql
check_documented() {
    python3 scripts/lib/dashboard_check.py --documented docs/OPERATIONS.md "$prom/grafana-dashboard.json" "$prom/branchy-rules.yml" > "$work/documented" 2>&1 \
        || { cat "$work/documented" >&2; echo "$(grep -c '^not ok' "$work/documented") metric(s), the first: $(grep -m 1 '^not ok' "$work/documented" | sed 's/^not ok - //')"; return 1; }
    tail -n 1 "$work/documented" | sed 's/ passed, 0 failed/ metrics/' >> "$work/figures"
}
run_check "the dashboard and the alert rules name only metrics and labels that docs/OPERATIONS.md lists" check_documented
check_scrape_config() {
    "$branchy" scrape-config --topology deploy/kubernetes/base/topology.yaml --interval 15 > "$work/scrape-config.yml" 2>&1 \
        || { tail -n 1 "$work/scrape-config.yml"; return 1; }
    python3 -c 'import sys
shipped, made = open(sys.argv[1]).read(), open(sys.argv[2]).read()
sys.exit(0 if shipped.startswith(made) else 1)' "$prom/prometheus.yml" "$work/scrape-config.yml" \
        || { diff "$work/scrape-config.yml" "$prom/prometheus.yml" >&2; echo "it differs from what $branchy scrape-config prints (diff in $log)"; return 1; }
}
if [ -z "$branchy" ]; then
    skip "$prom/prometheus.yml against branchy scrape-config: no executable built"
elif ! "$branchy" scrape-config --topology deploy/kubernetes/base/topology.yaml 2>/dev/null | grep -q dns_sd_configs; then
    skip "$prom/prometheus.yml against branchy scrape-config: $branchy was built before scrape-config wrote dns_sd_configs (rebuild it)"
else
    run_check "$prom/prometheus.yml begins with what branchy scrape-config prints for the cluster topology (dns_sd_configs for each replicated tier)" check_scrape_config
fi

summary="validated against Kubernetes $K8S_VERSION (kubernetes-validate $VALIDATE_VERSION, strict, offline); rendered with $renderer"
[ "$skipped" -eq 0 ] || summary+="; $skipped skipped"
echo "$summary"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
