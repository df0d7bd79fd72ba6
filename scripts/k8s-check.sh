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
#     namespaces its metrics port)
#   - has `branchy` load the cluster's topology and the device's copy (with the executables of
#     BRANCHY_BIN, .build/release or .build/debug; skipped with a note when none is built); an
#     executable that refuses them fails the check
#   - .containerignore and .dockerignore say the same
# Installs python3 and openssl with apt-get and kubernetes-validate (PyPI) into run/venv-k8s
# when missing. Prints `ok - NAME` or `not ok - NAME: why` per check, then `N passed, M failed`;
# exits 1 if any check failed. Details in run/k8s-check/k8s-check.log. Environment: KUBECTL
# (the kubectl to use, default `kubectl`; `none` renders with the fallback renderer only),
# BRANCHY_BIN (folder of built executables).
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

ensure_packages python3:python3 openssl:openssl
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
    run_check "base agrees with its topology and the Containerfile (ports, probes, user, own TLS files, Services, NetworkPolicies)" check_agree
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
# the model's stage order (every check but the TLS files), then classifies one sample.
branchy=""
for candidate in "${BRANCHY_BIN:+$BRANCHY_BIN/branchy}" .build/release/branchy .build/debug/branchy; do
    [ -n "$candidate" ] && [ -x "$candidate" ] && { branchy="$candidate"; break; }
done
check_loads() {
    local reason hint="" status=0
    "$branchy" eval --model models/b-lenet3 --dataset data/fashion-mnist --limit 1 --topology "$current_file" \
        > "$work/eval" 2>&1 || status=$?
    [ "$status" -ne 0 ] || return 0
    cat "$work/eval" >&2
    reason="$(grep -v '^\s*$' "$work/eval" | tail -n 1)"
    if grep -qE "unknown key '(metrics|replicas)'" "$work/eval"; then
        hint=" (an executable built before the topology had metrics: and replicas:; rebuild it)"
    fi
    echo "$branchy refuses it: ${reason:-exit status $status}$hint"
    return 1
}
if [ -n "$branchy" ]; then
    current_file="$work/topology.yaml"
    "${helper[@]}" topology "$work/base.yaml" "$current_file" 2>>"$log" || cp deploy/kubernetes/base/topology.yaml "$current_file"
    run_check "the ConfigMap's topology loads in $branchy" check_loads
    for current_file in deploy/kubernetes/overlays/*/device-topology.yaml; do
        [ -f "$current_file" ] && run_check "$current_file loads in $branchy" check_loads
    done
else
    skip "topology loads in branchy: no executable in \$BRANCHY_BIN, .build/release or .build/debug (swift build --product branchy)"
fi

summary="validated against Kubernetes $K8S_VERSION (kubernetes-validate $VALIDATE_VERSION, strict, offline); rendered with $renderer"
[ "$skipped" -eq 0 ] || summary+="; $skipped skipped"
echo "$summary"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
