#!/usr/bin/env python3
"""Helpers for scripts/k8s-check.sh: render, split and cross-check the Kubernetes manifests.

  render DIR                 prints the kustomization in DIR rendered as a YAML stream: a small
                             stand-in for `kubectl kustomize` where kubectl is missing (resources,
                             namespace, configMapGenerator and secretGenerator with the option
                             disableNameSuffixHash; other generated names get a suffix made from
                             their contents, as kustomize's, though not the same one; any other
                             key is refused rather than ignored)
  split STREAM OUTDIR        writes each document of STREAM to OUTDIR/NN-kind-name.yaml and
                             prints `FILE<TAB>Kind namespace/name` per document
  same A B                   A and B hold the same resources once the hash suffixes of generated
                             names are taken off (names and the references to them)
  break DOC OUTDIR           writes invalid copies of the Deployment or NetworkPolicy in DOC: one
                             with a field the schema does not have (and, of a Deployment, one
                             with a value of the wrong type)
  topology STREAM OUT        writes the `topology.yaml` of the ConfigMap in STREAM to OUT
  agree STREAM CONTAINERFILE checks that the manifests agree with their topology and the image
                             (ports, probes, users, each pod's own TLS files and no other node's,
                             Service names, NetworkPolicies, drain time, the pinned image, requests
                             equal to limits, two replicas or more with a PodDisruptionBudget, a
                             topology that SIGHUP can reload in place); prints one problem per
                             line and exits 1 if there is any
  device-copy CLUSTER DEVICE the device's copy of the topology differs from the cluster's only in
                             its paths and where it dials the edge (`address:` or `replicas:`)
  local-copy CLUSTER OUT MODEL CERTS EDGE_PORT METRICS_PORT CLOUD_PORT THRESHOLD
                             writes a copy of the cluster topology that runs its edge on this
                             machine: loopback ports, the given model and certificate folders, the
                             edge as one process whose threshold is THRESHOLD

Exit status 0 on success, 1 on a failed check, 2 on a usage or input error.
"""

import base64
import copy
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

GENERATED_SUFFIX = re.compile(r"^(.*)-[a-z0-9]{10}$")
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume", "StorageClass",
                  "CustomResourceDefinition", "PriorityClass", "IngressClass"}


def fail(message, status=2):
    print(message, file=sys.stderr)
    sys.exit(status)


def load_stream(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def dump_stream(docs):
    return "---\n".join(yaml.safe_dump(d, sort_keys=True, default_flow_style=False) for d in docs)


def ident(doc):
    meta = doc.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{doc.get('kind')} {ns + '/' if ns else ''}{meta.get('name')}"


# --- render -------------------------------------------------------------------

RENDER_KEYS = {"apiVersion", "kind", "namespace", "resources", "configMapGenerator", "secretGenerator"}


def render(directory):
    path = os.path.join(directory, "kustomization.yaml")
    if not os.path.isfile(path):
        fail(f"no kustomization.yaml in {directory}")
    with open(path, encoding="utf-8") as f:
        k = yaml.safe_load(f) or {}
    unknown = sorted(set(k) - RENDER_KEYS)
    if unknown:
        fail(f"{path}: the fallback renderer does not support {', '.join(unknown)}; render it with kubectl kustomize")
    docs = []
    for entry in k.get("resources", []):
        target = os.path.normpath(os.path.join(directory, entry))
        if os.path.isdir(target):
            docs.extend(render(target))
        elif os.path.isfile(target):
            docs.extend(load_stream(target))
        else:
            fail(f"{path}: resource '{entry}' does not exist")
    renames = {}
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for gen in k.get(key, []):
            doc = generate(directory, kind, gen, path)
            if not (gen.get("options") or {}).get("disableNameSuffixHash"):
                # kustomize names a generated object after its contents, so that a change makes a
                # new object and rolls the pods that mount it. Not kustomize's own hash: `same`
                # compares names without it.
                digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:10]
                renamed = f"{gen['name']}-{digest.translate(str.maketrans('013ae', 'ghkmt'))}"
                renames[gen["name"]] = renamed
                doc["metadata"]["name"] = renamed
            docs.append(doc)
    if renames:
        docs = [replace_refs(d, renames) for d in docs]
    namespace = k.get("namespace")
    if namespace:
        for doc in docs:
            if doc.get("kind") not in CLUSTER_SCOPED:
                doc.setdefault("metadata", {})["namespace"] = namespace
    return docs


def replace_refs(doc, renames):
    """The doc with the names of generated objects as they were renamed, where a pod refers to them."""
    if doc.get("kind") in ("ConfigMap", "Secret"):
        return doc
    return replace_strings(doc, renames)


def generate(directory, kind, gen, where):
    unknown = sorted(set(gen) - {"name", "files", "literals", "type", "options"})
    if unknown:
        fail(f"{where}: generator option(s) {', '.join(unknown)} are not supported by the fallback renderer")
    options = sorted(set(gen.get("options") or {}) - {"disableNameSuffixHash"})
    if options:
        fail(f"{where}: generator options {', '.join(options)} are not supported by the fallback renderer")
    data = {}
    for entry in gen.get("literals", []):
        name, _, value = entry.partition("=")
        data[name] = value
    for entry in gen.get("files", []):
        name, sep, rel = entry.partition("=")
        if not sep:
            name, rel = os.path.basename(entry), entry
        file = os.path.join(directory, rel)
        if not os.path.isfile(file):
            fail(f"{where}: {kind} '{gen['name']}' names the file '{rel}', which does not exist")
        with open(file, "rb") as f:
            data[name] = f.read()
    doc = {"apiVersion": "v1", "kind": kind, "metadata": {"name": gen["name"]}}
    if kind == "Secret":
        doc["type"] = gen.get("type", "Opaque")
        doc["data"] = {n: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode() for n, v in data.items()}
    else:
        doc["data"] = {n: v.decode() if isinstance(v, bytes) else v for n, v in data.items()}
    return doc


# --- split, same ----------------------------------------------------------------

def split(stream, outdir):
    os.makedirs(outdir, exist_ok=True)
    for i, doc in enumerate(load_stream(stream)):
        meta = doc.get("metadata") or {}
        name = f"{i:02d}-{str(doc.get('kind', 'unknown')).lower()}-{meta.get('name', 'unnamed')}.yaml"
        with open(os.path.join(outdir, name), "w", encoding="utf-8") as f:
            yaml.safe_dump(doc, f, sort_keys=False)
        print(f"{os.path.join(outdir, name)}\t{ident(doc)}")


def replace_strings(value, mapping):
    if isinstance(value, dict):
        return {k: replace_strings(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_strings(v, mapping) for v in value]
    if isinstance(value, str):
        return mapping.get(value, value)
    return value


def without_suffixes(docs):
    mapping = {}
    for doc in docs:
        if doc.get("kind") in ("ConfigMap", "Secret"):
            name = doc["metadata"]["name"]
            m = GENERATED_SUFFIX.match(name)
            if m:
                mapping[name] = m.group(1)
    renamed = [replace_strings(d, mapping) for d in docs]
    for d in renamed:
        # kustomize wraps base64 at 76 columns: compare the bytes.
        if d.get("kind") == "Secret" and d.get("data"):
            d["data"] = {k: base64.b64encode(base64.b64decode("".join(v.split()))).decode() for k, v in d["data"].items()}
    return {ident(d): d for d in renamed}


def same(a, b):
    left, right = without_suffixes(load_stream(a)), without_suffixes(load_stream(b))
    problems = []
    for key in sorted(set(left) | set(right)):
        if key not in right:
            problems.append(f"{key} is only in {a}")
        elif key not in left:
            problems.append(f"{key} is only in {b}")
        elif json.dumps(left[key], sort_keys=True) != json.dumps(right[key], sort_keys=True):
            problems.append(f"{key} differs")
    for p in problems:
        print(p)
    return 1 if problems else 0


# --- break ----------------------------------------------------------------------

def break_copies(doc_path, outdir):
    doc = load_stream(doc_path)[0]
    os.makedirs(outdir, exist_ok=True)
    if doc.get("kind") == "Deployment":
        unknown = copy.deepcopy(doc)
        container = unknown["spec"]["template"]["spec"]["containers"][0]
        container["readinesProbe"] = container.pop("readinessProbe")   # misspelt: no such field
        wrong = copy.deepcopy(doc)
        wrong["spec"]["replicas"] = "two"                                # a string where an integer belongs
        copies = (("unknown-field", unknown), ("wrong-type", wrong))
    elif doc.get("kind") == "NetworkPolicy":
        # Misspelt, `ingress:` would be dropped and the pods it isolates would refuse everything.
        unknown = copy.deepcopy(doc)
        unknown["spec"]["ingres"] = unknown["spec"].pop("ingress")
        copies = (("unknown-field", unknown),)
    else:
        fail(f"{doc_path} is neither a Deployment nor a NetworkPolicy")
    for name, broken in copies:
        out = os.path.join(outdir, f"{name}.yaml")
        with open(out, "w", encoding="utf-8") as f:
            yaml.safe_dump(broken, f, sort_keys=False)
        print(out)


# --- topology ---------------------------------------------------------------------

def topology_text(docs):
    found = [d for d in docs if d.get("kind") == "ConfigMap" and "topology.yaml" in (d.get("data") or {})]
    if len(found) != 1:
        fail(f"expected one ConfigMap with a topology.yaml, found {len(found)}", 1)
    return found[0], found[0]["data"]["topology.yaml"]


def write_topology(stream, out):
    _, text = topology_text(load_stream(stream))
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)


def device_copy(cluster, device):
    with open(cluster, encoding="utf-8") as f:
        a = yaml.safe_load(f)
    with open(device, encoding="utf-8") as f:
        b = yaml.safe_load(f)
    problems = []
    nodes_a = {n["name"]: n for n in a.get("nodes", [])}
    nodes_b = {n["name"]: n for n in b.get("nodes", [])}
    if list(nodes_a) != list(nodes_b):
        problems.append(f"nodes {list(nodes_b)} in {device}, {list(nodes_a)} in {cluster}")
    for name in nodes_a:
        if name not in nodes_b:
            continue
        na, nb = dict(nodes_a[name]), dict(nodes_b[name])
        if na.get("role") == "edge":
            # Where the device dials the edge: one address, or a name for every edge replica.
            for k in ("address", "replicas"):
                na.pop(k, None)
            dial = [k for k in ("address", "replicas") if nb.pop(k, None) is not None]
            if len(dial) != 1:
                problems.append(f"node '{name}' should give the device one `address:` or `replicas:` to dial, "
                                f"it gives {', '.join(dial) or 'neither'}")
        if na != nb:
            keys = sorted(k for k in set(na) | set(nb) if na.get(k) != nb.get(k))
            problems.append(f"node '{name}' differs in {', '.join(keys)}")
    for p in problems:
        print(p)
    return 1 if problems else 0


def local_copy(cluster, out, model, certs, edge_port, metrics_port, cloud_port, threshold):
    """The cluster topology with its edge runnable here: loopback ports, local folders, the edge as
    one process (its upstream listed at a loopback port where nothing need run)."""
    with open(cluster, encoding="utf-8") as f:
        topo = yaml.safe_load(f)
    topo["model"], topo["certs"] = model, certs
    for node in topo["nodes"]:
        for key in ("address", "replicas"):
            node.pop(key, None)
        if node.get("role") == "edge":
            node["listen"] = f"127.0.0.1:{edge_port}"
            node["metrics"] = f"127.0.0.1:{metrics_port}"
            node["thresholds"] = [float(threshold)]
        elif node.get("role") == "cloud":
            node["listen"] = f"127.0.0.1:{cloud_port}"
            node.pop("metrics", None)
    with open(out, "w", encoding="utf-8") as f:
        yaml.safe_dump(topo, f, sort_keys=False)


# --- agree ----------------------------------------------------------------------

def endpoint(text):
    host, _, port = str(text).rpartition(":")
    return host.strip("[]"), int(port)


def find_port(ports, name):
    for p in ports or []:
        if p.get("name") == name:
            return p.get("containerPort")
    return None


def probe_port(probe, ports):
    port = ((probe or {}).get("httpGet") or {}).get("port")
    return find_port(ports, port) if isinstance(port, str) else port


def arg(args, flag, default=None):
    return args[args.index(flag) + 1] if flag in args and args.index(flag) + 1 < len(args) else default


def service_for(host, docs, namespace):
    """The Service a cluster DNS name such as edge.branchy.svc.cluster.local names."""
    labels = host.split(".")
    name = labels[0]
    ns = labels[1] if len(labels) > 1 else namespace
    for d in docs:
        if d.get("kind") == "Service" and d["metadata"]["name"] == name and d["metadata"].get("namespace", namespace) == ns:
            return d
    return None


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def file_data(obj):
    """The files a Secret or ConfigMap gives a volume, as bytes."""
    out = {}
    if obj.get("kind") == "Secret":
        for k, v in (obj.get("data") or {}).items():
            try:
                out[k] = base64.b64decode("".join(str(v).split()))
            except Exception:
                out[k] = b""
        for k, v in (obj.get("stringData") or {}).items():
            out[k] = str(v).encode()
    else:
        for k, v in (obj.get("data") or {}).items():
            out[k] = str(v).encode()
        for k, v in (obj.get("binaryData") or {}).items():
            out[k] = base64.b64decode(v)
    return out


def own_tls_files(node, name, certs_dir):
    """The node's TLS files as the loader names them, relative to certs_dir; None if one is outside it."""
    paths = {"CA certificate": "ca.pem", "certificate": f"{name}.pem", "private key": f"{name}-key.pem"}
    tls = node.get("tls") or {}
    for what, key in (("CA certificate", "ca"), ("certificate", "cert"), ("private key", "key")):
        if key in tls:
            paths[what] = str(tls[key])
    out = {}
    for what, path in paths.items():
        if path.startswith("/"):
            rel = os.path.relpath(os.path.normpath(path), certs_dir or "/")
        else:
            rel = os.path.normpath(path)
        if rel.startswith(".."):
            return None
        out[what] = rel
    return out


def openssl(*args, stdin=None):
    r = subprocess.run(["openssl", *args], input=stdin, capture_output=True)
    return r.returncode, r.stdout.decode(errors="replace")


def pem_problems(node_name, own, files, nodes):
    """With openssl: the certificate names the node, the key is its key, the CA signed it."""
    if shutil.which("openssl") is None:
        return []
    data = {what: files.get(f, ("", "", b""))[2] for what, f in own.items()}
    if not all(b"-----BEGIN " in d for d in data.values()):
        return []   # already reported
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        for what, d in data.items():
            with open(os.path.join(tmp, what.replace(" ", "-")), "wb") as f:
                f.write(d)
        ca, cert, key = (os.path.join(tmp, w) for w in ("CA-certificate", "certificate", "private-key"))
        status, out = openssl("x509", "-in", cert, "-noout", "-ext", "subjectAltName")
        names = re.findall(r"DNS:([^,\s]+)", out)
        if status != 0:
            problems.append(f"{own['certificate']} is not a certificate")
        elif node_name not in names:
            theirs = [n for n in names if n in nodes]
            problems.append(f"{own['certificate']} names {', '.join(names) or 'no DNS name'}, not the node '{node_name}'"
                            + (f": it is the certificate of node '{theirs[0]}'" if theirs else ""))
        s1, pub_cert = openssl("x509", "-in", cert, "-noout", "-pubkey")
        s2, pub_key = openssl("pkey", "-in", key, "-pubout")
        if s2 != 0:
            problems.append(f"{own['private key']} is not a private key")
        elif s1 == 0 and pub_cert.strip() != pub_key.strip():
            problems.append(f"{own['private key']} is not the key of {own['certificate']}")
        if status == 0 and openssl("verify", "-CAfile", ca, cert)[0] != 0:
            problems.append(f"{own['certificate']} is not signed by the CA in {own['CA certificate']}")
    return problems


def label_matches(selector, labels):
    """A Kubernetes label selector against labels: {} selects everything."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for e in selector.get("matchExpressions") or []:
        k, op, values = e.get("key"), e.get("operator"), e.get("values") or []
        if op == "In" and labels.get(k) not in values:
            return False
        if op == "NotIn" and k in labels and labels[k] in values:
            return False
        if op == "Exists" and k not in labels:
            return False
        if op == "DoesNotExist" and k in labels:
            return False
    return True


def selector_text(selector):
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    parts += [f"{e.get('key')} {e.get('operator')} {e.get('values') or ''}".strip() for e in selector.get("matchExpressions") or []]
    return ", ".join(parts) or "{} (everything)"


def network_policies(docs, deployments, served, nodes, namespace):
    """What the NetworkPolicies let in, against the topology: a node's serving port (`branchy`)
    only from the pods of its children when they all run in the cluster and from everywhere when
    some (devices) do not; its `metrics` port only from namespaces a namespaceSelector picks; every
    pod isolated by some policy; ports by names the containers have. Kubelet probes come from the
    pod's node, which NetworkPolicy does not block, so they need no rule."""
    problems = []
    say = problems.append
    policies = [d for d in docs if d.get("kind") == "NetworkPolicy"]

    def ns_of(doc):
        return (doc.get("metadata") or {}).get("namespace", namespace)

    def ns_labels(ns):
        labels = {"kubernetes.io/metadata.name": ns}   # set by Kubernetes on every namespace
        for d in docs:
            if d.get("kind") == "Namespace" and d["metadata"]["name"] == ns:
                labels.update(d["metadata"].get("labels") or {})
        return labels

    def pod_labels(dep):
        return dep["spec"]["template"]["metadata"].get("labels", {})

    def container_ports(dep):
        c = (dep["spec"]["template"]["spec"].get("containers") or [{}])[0]
        return {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}

    def ingress_isolates(pol):
        types = pol["spec"].get("policyTypes") or ["Ingress"]
        return "Ingress" in types

    def port_names(rule, ports, pol_who, dep_who, report=True):
        """The container port names a rule covers; every port when it names none."""
        if not rule.get("ports"):
            return set(ports)
        covered = set()
        for p in rule["ports"]:
            want, proto = p.get("port"), p.get("protocol", "TCP")
            if proto != "TCP":
                continue
            if want is None:
                covered |= set(ports)
            elif isinstance(want, str):
                if want in ports:
                    covered.add(want)
                elif report:
                    say(f"{pol_who}: port '{want}' is not a port of {dep_who}'s container ({', '.join(ports)})")
            else:
                end = p.get("endPort", want)
                hit = {n for n, num in ports.items() if num is not None and want <= num <= end}
                if not hit and report:
                    say(f"{pol_who}: port {want} is not a port of {dep_who}'s container ({', '.join(f'{n} {v}' for n, v in ports.items())})")
                covered |= hit
        return covered

    for pol in policies:
        who = f"NetworkPolicy {pol['metadata']['name']}"
        sel = pol["spec"].get("podSelector")
        if sel is None:
            say(f"{who}: has no podSelector")
            continue
        if not any(ns_of(d) == ns_of(pol) and label_matches(sel, pod_labels(d)) for d in deployments):
            say(f"{who}: its podSelector ({selector_text(sel)}) selects no pod of the manifests")

    for name, (dep, labels) in served.items():
        node = nodes[name]
        dep_who = f"Deployment {dep['metadata']['name']}"
        ports = container_ports(dep)
        mine = [p for p in policies if ns_of(p) == ns_of(dep) and ingress_isolates(p)
                and label_matches(p["spec"].get("podSelector"), labels)]
        if not mine:
            say(f"{dep_who}: no NetworkPolicy selects its pods for Ingress, so every source may reach every port")
            continue
        # (policy, rule, ports it covers) for each ingress rule that applies to these pods.
        rules = []
        for pol in mine:
            for rule in pol["spec"].get("ingress") or []:
                rules.append((pol, rule, port_names(rule, ports, f"NetworkPolicy {pol['metadata']['name']}", dep_who)))

        children = [n for n, c in nodes.items() if c.get("upstream") == name]
        inside = {n: served[n][0] for n in children if n in served}
        outside = [n for n in children if n not in served]
        serving = [(pol, rule) for pol, rule, covered in rules if "branchy" in covered]
        open_to_all = [pol for pol, rule in serving if not rule.get("from")]
        if not serving:
            say(f"{dep_who}: no NetworkPolicy lets anyone reach its port 'branchy', so its children ({', '.join(children) or 'none'}) cannot connect")
        elif outside:
            if not open_to_all:
                say(f"{dep_who}: its children ({', '.join(outside)}) run outside the cluster, but its port 'branchy' "
                    f"is open only to selected peers; give it a rule without `from`")
        else:
            if open_to_all:
                say(f"{dep_who}: NetworkPolicy {open_to_all[0]['metadata']['name']} opens its port 'branchy' to every source, "
                    f"but only its children ({', '.join(children)}) dial it, all in the cluster")
            reached = set(inside) if open_to_all else set()
            for pol, rule in serving:
                pol_who = f"NetworkPolicy {pol['metadata']['name']}"
                for peer in rule.get("from") or []:
                    if "ipBlock" in peer or "namespaceSelector" in peer or "podSelector" not in peer:
                        say(f"{pol_who}: lets {json.dumps(peer, sort_keys=True)} reach {dep_who}'s port 'branchy', "
                            f"beyond the pods of its children ({', '.join(children)})")
                    if "ipBlock" in peer:
                        continue
                    ns_sel = peer.get("namespaceSelector")
                    here = label_matches(ns_sel, ns_labels(ns_of(dep))) if ns_sel is not None else ns_of(pol) == ns_of(dep)
                    picked = [d for d in deployments if here and label_matches(peer.get("podSelector", {}), pod_labels(d))]
                    if "namespaceSelector" not in peer:
                        for d in picked:
                            if all(d is not c for c in inside.values()):
                                say(f"{pol_who}: lets the pods of Deployment {d['metadata']['name']} reach {dep_who}'s port 'branchy', "
                                    f"but they run none of its children ({', '.join(children)})")
                    reached |= {n for n, c in inside.items() if any(d is c for d in picked)}
            for n in sorted(set(inside) - reached):
                say(f"{dep_who}: its child '{n}' (Deployment {inside[n]['metadata']['name']}) may not reach its port 'branchy'")

        if "metrics" in ports:
            scraping = [(pol, rule) for pol, rule, covered in rules if "metrics" in covered]
            if not scraping:
                say(f"{dep_who}: no NetworkPolicy lets a monitoring namespace reach its port 'metrics'")
            for pol, rule in scraping:
                pol_who = f"NetworkPolicy {pol['metadata']['name']}"
                if not rule.get("from"):
                    say(f"{pol_who}: opens {dep_who}'s port 'metrics' to every source, not only the monitoring namespaces")
                    continue
                for peer in rule["from"]:
                    ns_sel = peer.get("namespaceSelector")
                    if "ipBlock" in peer or ns_sel is None or not (ns_sel.get("matchLabels") or ns_sel.get("matchExpressions")):
                        say(f"{pol_who}: lets {json.dumps(peer, sort_keys=True)} reach {dep_who}'s port 'metrics'; "
                            f"only pods in namespaces a namespaceSelector with labels picks should")

    # A Service that takes traffic from outside the cluster leads only to ports open to every source.
    for svc in docs:
        if svc.get("kind") != "Service" or svc["spec"].get("type") not in ("NodePort", "LoadBalancer"):
            continue
        for name, (dep, labels) in served.items():
            if not selects(svc["spec"].get("selector"), labels):
                continue
            ports = container_ports(dep)
            mine = [p for p in policies if ns_of(p) == ns_of(dep) and ingress_isolates(p)
                    and label_matches(p["spec"].get("podSelector"), labels)]
            for sp in svc["spec"].get("ports") or []:
                target = sp.get("targetPort", sp.get("port"))
                tname = target if isinstance(target, str) else next((n for n, v in ports.items() if v == target), str(target))
                if mine and not any(tname in port_names(r, ports, "", "", report=False) and not r.get("from")
                                    for p in mine for r in p["spec"].get("ingress") or []):
                    say(f"Service {svc['metadata']['name']} ({svc['spec']['type']}): leads outside traffic to Deployment "
                        f"{dep['metadata']['name']}'s port '{tname}', which no NetworkPolicy opens to every source")
    return problems


QUANTITY = re.compile(r"^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
FACTORS = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
           "Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40}


def quantity(value):
    """A Kubernetes quantity (`250m`, `1`, `384Mi`) as a number; None if it is not one."""
    m = QUANTITY.match(str(value))
    return float(m.group(1)) * FACTORS[m.group(2)] if m else None


def image_parts(ref):
    """(name, tag, digest) of an image reference such as REGISTRY/branchy:0.1.0@sha256:..."""
    ref, _, digest = str(ref).partition("@")
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:], digest
    return ref, "", digest


def disruption_problems(who, budget, replicas):
    """What is wrong with a PodDisruptionBudget for a Deployment of `replicas` pods."""
    spec = budget.get("spec") or {}
    name = f"PodDisruptionBudget {budget['metadata']['name']}"
    for key in ("minAvailable", "maxUnavailable"):
        if isinstance(spec.get(key), str):
            return []   # a percentage: Kubernetes rounds it against the pods it finds
    if "minAvailable" in spec:
        keep = spec["minAvailable"]
    elif "maxUnavailable" in spec:
        keep = replicas - spec["maxUnavailable"]
    else:
        return [f"{name}: neither minAvailable nor maxUnavailable"]
    if keep < 1:
        return [f"{name}: lets a voluntary disruption take every pod of {who}"]
    if keep >= replicas:
        return [f"{name}: keeps all {replicas} pods of {who}, so no node that runs one can ever be drained"]
    return []


def agree(stream, containerfile):
    docs = load_stream(stream)
    problems = []
    say = problems.append
    with open(containerfile, encoding="utf-8") as f:
        image = f.read()
    m = re.search(r"^ARG BRANCHY_UID=(\d+)", image, re.M)
    uid = int(m.group(1)) if m else None
    if uid is None:
        say(f"{containerfile}: no `ARG BRANCHY_UID=N` naming the image's user")
    m = re.search(r"^ARG BRANCHY_HOME=(\S+)", image, re.M)
    home = m.group(1) if m else None
    if home is None:
        say(f"{containerfile}: no `ARG BRANCHY_HOME=DIR` naming where the models go")
    m = re.search(r"^ARG BRANCHY_VERSION=(\S+)", image, re.M)
    version = m.group(1) if m else None
    if version is None:
        say(f"{containerfile}: no `ARG BRANCHY_VERSION=V` naming the tag the manifests pin")

    topo_map, topo_text = topology_text(docs)
    topo = yaml.safe_load(topo_text)
    nodes = {n["name"]: n for n in topo["nodes"]}
    namespace = topo_map["metadata"].get("namespace", "default")
    model = topo.get("model", "")
    if home and not model.startswith(home.rstrip("/") + "/models/"):
        say(f"topology model '{model}' is not under {home}/models, where the image keeps the models")
    elif home and not os.path.isfile(os.path.join("models", os.path.basename(model), "model.json")):
        say(f"topology model '{model}': there is no models/{os.path.basename(model)}/model.json to copy into the image")
    certs_dir = topo.get("certs")
    if not certs_dir or not certs_dir.startswith("/"):
        say(f"topology certs '{certs_dir}' should be an absolute path inside the pods")
    # A name derived from the contents would make every change a new ConfigMap, which rolls the
    # pods: a change meant for SIGHUP could never reach a running pod.
    if GENERATED_SUFFIX.match(topo_map["metadata"]["name"]):
        say(f"ConfigMap {topo_map['metadata']['name']}: its name carries a hash of its contents, so a changed topology "
            f"makes a new ConfigMap and rolls every pod instead of reaching the running ones for SIGHUP; "
            f"give its generator `options: disableNameSuffixHash: true`")
    budgets = [d for d in docs if d.get("kind") == "PodDisruptionBudget"]
    images = {}

    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    deployments = [d for d in docs if d.get("kind") == "Deployment"]
    served = {}
    for dep in deployments:
        who = f"Deployment {dep['metadata']['name']}"
        pod = dep["spec"]["template"]["spec"]
        pod_labels = dep["spec"]["template"]["metadata"].get("labels", {})
        if not selects(dep["spec"]["selector"].get("matchLabels"), pod_labels):
            say(f"{who}: its selector does not match its pod labels")
        containers = pod.get("containers", [])
        if len(containers) != 1:
            say(f"{who}: expected one container, found {len(containers)}")
            continue
        c = containers[0]
        command = (c.get("command") or [""])[0]
        args = c.get("args") or []
        role = {"branchy-edge": "edge", "branchy-cloud": "cloud"}.get(command)
        node_name = arg(args, "--node")
        node = nodes.get(node_name)
        if role is None:
            say(f"{who}: command {command!r} is not branchy-edge or branchy-cloud")
            continue
        if node is None:
            say(f"{who}: --node {node_name!r} is not a node of the topology ({', '.join(nodes)})")
            continue
        if node.get("role") != role:
            say(f"{who}: runs {command} for node '{node_name}', whose role is {node.get('role')}")
        if pod_labels.get("branchy/node", node_name) != node_name:
            say(f"{who}: its pods are labelled branchy/node={pod_labels['branchy/node']} but run node '{node_name}'")
        served[node_name] = (dep, pod_labels)

        # The topology file the command reads is the ConfigMap's, where it is mounted.
        mounts = {m["name"]: m for m in c.get("volumeMounts", [])}
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        topo_path = arg(args, "--topology", "")
        ok = any(v.get("configMap", {}).get("name") == topo_map["metadata"]["name"]
                 and os.path.join(mounts.get(n, {}).get("mountPath", "/nonexistent"), "topology.yaml") == topo_path
                 for n, v in volumes.items())
        if not ok:
            say(f"{who}: --topology {topo_path} is not the topology.yaml of the ConfigMap {topo_map['metadata']['name']} as mounted")
        for n, v in volumes.items():
            if v.get("configMap", {}).get("name") != topo_map["metadata"]["name"]:
                continue
            for mount in c.get("volumeMounts", []):
                if mount.get("name") == n and (mount.get("subPath") or mount.get("subPathExpr")):
                    say(f"{who}: mounts the topology with subPath, which the kubelet never updates: a changed ConfigMap "
                        f"would not reach the running pod, and SIGHUP would read the old file")

        # Ports and probes against the topology.
        ports = c.get("ports", [])
        listen = node.get("listen")
        if listen and find_port(ports, "branchy") != endpoint(listen)[1]:
            say(f"{who}: container port 'branchy' is {find_port(ports, 'branchy')}, the node listens on {listen}")
        metrics = node.get("metrics")
        if not metrics:
            say(f"{who}: node '{node_name}' has no `metrics:`, so nothing answers the probes")
        else:
            mport = endpoint(metrics)[1]
            if find_port(ports, "metrics") != mport:
                say(f"{who}: container port 'metrics' is {find_port(ports, 'metrics')}, the node serves metrics on {metrics}")
            for kind, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                probe = c.get(kind)
                if not probe:
                    say(f"{who}: no {kind}")
                    continue
                if (probe.get("httpGet") or {}).get("path") != path or probe_port(probe, ports) != mport:
                    say(f"{who}: {kind} should be GET {path} on the metrics port {mport}")
            annotations = dep["spec"]["template"]["metadata"].get("annotations", {})
            if annotations.get("prometheus.io/scrape") == "true" and annotations.get("prometheus.io/port") != str(mport):
                say(f"{who}: prometheus.io/port is {annotations.get('prometheus.io/port')}, the metrics port {mport}")

        drain = float(arg(args, "--drain-seconds", "10"))
        grace = pod.get("terminationGracePeriodSeconds", 30)
        if not grace > drain:
            say(f"{who}: terminationGracePeriodSeconds {grace} is not longer than the drain ({drain} s)")

        # Security context: pod and container together.
        psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
        def effective(key):   # the container's setting wins over the pod's
            return csc.get(key, psc.get(key))
        if effective("runAsNonRoot") is not True:
            say(f"{who}: runAsNonRoot is not true")
        if uid is not None and effective("runAsUser") != uid:
            say(f"{who}: runAsUser is {effective('runAsUser')}, the image's user is {uid}")
        if (effective("seccompProfile") or {}).get("type") != "RuntimeDefault":
            say(f"{who}: seccompProfile is not RuntimeDefault")
        if csc.get("readOnlyRootFilesystem") is not True:
            say(f"{who}: readOnlyRootFilesystem is not true")
        if csc.get("allowPrivilegeEscalation") is not False:
            say(f"{who}: allowPrivilegeEscalation is not false")
        if "ALL" not in ((csc.get("capabilities") or {}).get("drop") or []):
            say(f"{who}: capabilities do not drop ALL")
        res = c.get("resources", {})
        for part in ("requests", "limits"):
            missing = [r for r in ("cpu", "memory") if r not in (res.get(part) or {})]
            if missing:
                say(f"{who}: no {part} for {', '.join(missing)}")
        for r in ("cpu", "memory"):
            want, cap = (res.get("requests") or {}).get(r), (res.get("limits") or {}).get(r)
            if want is None or cap is None:
                continue
            if quantity(want) is None or quantity(cap) is None:
                say(f"{who}: {r} request {want} or limit {cap} is not a quantity")
            elif quantity(want) != quantity(cap):
                say(f"{who}: {r} request {want} and limit {cap} differ; requests equal to limits reserve what the "
                    f"pod may use (the same CPU on a busy node, the Guaranteed QoS class)")

        # The image: pinned to the release the Containerfile builds, or to a digest.
        ref = c.get("image", "")
        images[dep["metadata"]["name"]] = ref
        _, tag, digest = image_parts(ref)
        if not digest:
            if tag in ("", "latest", "dev"):
                say(f"{who}: image {ref} is not pinned; give it the release tag ({version}) or a digest")
            elif version and tag != version:
                say(f"{who}: image {ref} has the tag {tag}, but the Containerfile builds version {version} (ARG BRANCHY_VERSION)")

        # Two replicas or more, and a budget that keeps one through a node drain.
        count = dep["spec"].get("replicas", 1)
        if count < 2:
            say(f"{who}: runs {count} replica; run two or more, so that a crash or a node drain leaves one serving")
        mine = [b for b in budgets if (b["metadata"].get("namespace") == dep["metadata"].get("namespace"))
                and label_matches((b.get("spec") or {}).get("selector"), pod_labels)]
        if not mine:
            say(f"{who}: no PodDisruptionBudget selects its pods, so a node drain may take them all at once")
        for budget in mine:
            for problem in disruption_problems(who, budget, count):
                say(problem)

        # SIGHUP: `kubectl exec POD -- sh -c 'kill -HUP 1'` reaches the node only while it is the
        # pod's PID 1 (its command is the executable itself, checked above), and re-reads a new
        # topology only if the kubelet can replace the file, which it never does under subPath.
        if pod.get("shareProcessNamespace"):
            say(f"{who}: shareProcessNamespace makes the pod's pause process PID 1, so `kill -HUP 1` would not reach the node")

        # Certificates: the node checks and reads only its own TLS files, so its pod holds those
        # three, from the node's own Secret, and nothing else: no other node's certificate or key,
        # not the CA's key. The names are the loader's (`tls:` of the node, else ca.pem, NODE.pem,
        # NODE-key.pem); the contents are checked too when openssl is there.
        certs_mount = next((m for m in c.get("volumeMounts", []) if m.get("mountPath") == certs_dir), None)
        if certs_mount is None:
            say(f"{who}: nothing is mounted at the topology's certs folder {certs_dir}")
            continue
        volume = volumes.get(certs_mount["name"], {})
        sources = (volume.get("projected") or {}).get("sources") or ([{"secret": volume["secret"]}] if "secret" in volume else [])
        if not sources:
            say(f"{who}: the volume '{certs_mount['name']}' at {certs_dir} is neither a Secret nor a projected volume")
        files = {}
        modes = [(volume.get("projected") or volume.get("secret") or {}).get("defaultMode", 0o644)]
        for source in sources:
            unknown = sorted(set(source) - {"secret", "configMap"})
            if unknown:
                say(f"{who}: the certs volume also projects {', '.join(unknown)}")
            for kind, ref in (("Secret", "secret"), ("ConfigMap", "configMap")):
                if ref not in source:
                    continue
                name = source[ref].get("name") if kind == "ConfigMap" else source[ref].get("name", source[ref].get("secretName"))
                obj = by_name.get((kind, name))
                if obj is None:
                    say(f"{who}: mounts {kind} '{name}', which the manifests do not define")
                    continue
                data = file_data(obj)
                items = source[ref].get("items") or [{"key": k, "path": k} for k in data]
                for item in items:
                    if item["key"] not in data:
                        say(f"{who}: {kind} '{name}' has no key '{item['key']}'")
                    if item["path"] in files:
                        say(f"{who}: two sources of the certs volume give {item['path']}")
                    if "mode" in item:
                        modes.append(item["mode"])
                    files[item["path"]] = (kind, name, data.get(item["key"], b""))
        own = own_tls_files(node, node_name, certs_dir)
        if own is None:
            say(f"{who}: node '{node_name}' has `tls:` paths outside {certs_dir}, where its Secret is mounted")
            continue
        secret_names = set()
        for what, f in own.items():
            kind, name, data = files.get(f, ("", "", b""))
            if not kind:
                say(f"{who}: {certs_dir}/{f}, the node's {what}, is missing: the node checks it at start-up")
                continue
            if kind != "Secret":
                say(f"{who}: {f} should come from the node's Secret, not from {kind} '{name}'")
                continue
            secret_names.add(name)
            if b"-----BEGIN " not in data:
                say(f"{who}: {f} in Secret '{name}' is not a PEM file")
        if len(secret_names) > 1:
            say(f"{who}: the node's files come from several Secrets ({', '.join(sorted(secret_names))}), not its own one")
        for secret in sorted(secret_names):
            extra = sorted(set(file_data(by_name[("Secret", secret)])) - set(own.values()))
            if extra:
                say(f"{who}: its Secret '{secret}' also holds {', '.join(extra)}; a node's Secret holds only its own TLS files")
        others = {}
        for other in nodes:
            if other != node_name:
                others[f"{other}.pem"] = f"the certificate of node '{other}'"
                others[f"{other}-key.pem"] = f"the key of node '{other}'"
        others["ca-key.pem"] = "the CA's key"
        for f, (kind, name, _) in sorted(files.items()):
            if f in own.values():
                continue
            if os.path.basename(f) in others:
                say(f"{who}: {kind} '{name}' puts {others[os.path.basename(f)]}, {f}, in this pod")
            else:
                say(f"{who}: {kind} '{name}' puts {f} in the certs folder, which is not one of the node's own TLS files")
        for problem in pem_problems(node_name, own, files, nodes):
            say(f"{who}: {problem}")
        for mode in modes:
            if mode & 0o007:
                say(f"{who}: the certs volume's mode {oct(mode)} lets every user read the key")
            if mode & 0o040 and not psc.get("fsGroup"):
                say(f"{who}: the key is readable through its group only, and the pod sets no fsGroup")

    # Services against the addresses the topology gives.
    for name, node in nodes.items():
        if node.get("role") == "device":
            continue
        if name not in served:
            say(f"node '{name}' ({node.get('role')}) has no Deployment running it")
            continue
        dep, labels = served[name]
        dial = node.get("replicas") if isinstance(node.get("replicas"), str) else node.get("address")
        if dial is None:
            say(f"node '{name}': no `address:` or `replicas: HOST:PORT` for its children to dial in the cluster")
            continue
        host, port = endpoint(dial)
        svc = service_for(host, docs, namespace)
        if svc is None:
            say(f"node '{name}': its children dial {dial}, but no Service of that name is in namespace {namespace}")
            continue
        who = f"Service {svc['metadata']['name']}"
        if not selects(svc["spec"].get("selector"), labels):
            say(f"{who}: does not select the pods of Deployment {dep['metadata']['name']}")
        for other in deployments:
            if other is not dep and selects(svc["spec"].get("selector"), other["spec"]["template"]["metadata"].get("labels", {})):
                say(f"{who}: also selects the pods of Deployment {other['metadata']['name']}")
        sp = next((p for p in svc["spec"].get("ports", []) if p.get("port") == port), None)
        if sp is None:
            say(f"{who}: has no port {port}, which the topology dials")
        elif sp.get("targetPort") not in ("branchy", endpoint(node["listen"])[1]):
            say(f"{who}: port {port} does not lead to the node's listening port")
        if "replicas" in node and svc["spec"].get("clusterIP") != "None":
            say(f"{who}: node '{name}' finds its replicas by resolving {host}, so the Service must be headless (clusterIP: None)")
        if "replicas" not in node and svc["spec"].get("clusterIP") == "None":
            say(f"{who}: is headless, but node '{name}' is one process dialled at one address")
        if "replicas" in node and dep["spec"].get("replicas", 1) < 2:
            say(f"Deployment {dep['metadata']['name']}: node '{name}' is replicated, but runs {dep['spec'].get('replicas', 1)} replica")
        if "replicas" not in node and dep["spec"].get("replicas", 1) != 1:
            say(f"Deployment {dep['metadata']['name']}: node '{name}' is one named process, but runs {dep['spec'].get('replicas')}")

    if len(set(images.values())) > 1:
        say(f"the Deployments run different images: {', '.join(f'{d} {i}' for d, i in sorted(images.items()))}")

    problems.extend(network_policies(docs, deployments, served, nodes, namespace))

    for p in problems:
        print(p)
    return 1 if problems else 0


def main(argv):
    commands = {"render": 1, "split": 2, "same": 2, "break": 2, "topology": 2, "agree": 2, "device-copy": 2, "local-copy": 8}
    if len(argv) < 2 or argv[1] not in commands or len(argv) - 2 != commands[argv[1]]:
        fail(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "render":
        sys.stdout.write(dump_stream(render(args[0])))
        return 0
    if cmd == "split":
        split(*args)
        return 0
    if cmd == "same":
        return same(*args)
    if cmd == "break":
        break_copies(*args)
        return 0
    if cmd == "topology":
        write_topology(*args)
        return 0
    if cmd == "agree":
        return agree(*args)
    if cmd == "local-copy":
        local_copy(*args)
        return 0
    return device_copy(*args)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
