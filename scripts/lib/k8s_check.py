#!/usr/bin/env python3
"""Helpers for scripts/k8s-check.sh: render, split and cross-check the Kubernetes manifests.

  render DIR                 prints the kustomization in DIR rendered as a YAML stream: a small
                             stand-in for `kubectl kustomize` where kubectl is missing (resources,
                             namespace, configMapGenerator and secretGenerator; generated names
                             get no hash suffix; any other key is refused rather than ignored)
  split STREAM OUTDIR        writes each document of STREAM to OUTDIR/NN-kind-name.yaml and
                             prints `FILE<TAB>Kind namespace/name` per document
  same A B                   A and B hold the same resources once the hash suffixes of generated
                             names are taken off (names and the references to them)
  break DOC OUTDIR           writes two invalid copies of the Deployment in DOC: one with a field
                             the schema does not have, one with a value of the wrong type
  topology STREAM OUT        writes the `topology.yaml` of the ConfigMap in STREAM to OUT
  older-loader TOPO OUT      writes TOPO for a loader that predates `metrics:` and `replicas:`:
                             drops `metrics:`, turns `replicas: HOST:PORT` into `address:`
  agree STREAM CONTAINERFILE checks that the manifests agree with their topology and the image
                             (ports, probes, users, Secrets, Service names, drain time); prints
                             one problem per line and exits 1 if there is any
  device-copy CLUSTER DEVICE the device's copy of the topology differs from the cluster's only in
                             its paths and the edge's `address:`

Exit status 0 on success, 1 on a failed check, 2 on a usage or input error.
"""

import base64
import copy
import json
import os
import re
import sys

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
    for kind, key in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for gen in k.get(key, []):
            docs.append(generate(directory, kind, gen, path))
    namespace = k.get("namespace")
    if namespace:
        for doc in docs:
            if doc.get("kind") not in CLUSTER_SCOPED:
                doc.setdefault("metadata", {})["namespace"] = namespace
    return docs


def generate(directory, kind, gen, where):
    unknown = sorted(set(gen) - {"name", "files", "literals", "type"})
    if unknown:
        fail(f"{where}: generator option(s) {', '.join(unknown)} are not supported by the fallback renderer")
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
    if doc.get("kind") != "Deployment":
        fail(f"{doc_path} is not a Deployment")
    os.makedirs(outdir, exist_ok=True)
    unknown = copy.deepcopy(doc)
    container = unknown["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")   # misspelt: no such field
    wrong = copy.deepcopy(doc)
    wrong["spec"]["replicas"] = "two"                                # a string where an integer belongs
    for name, broken in (("unknown-field", unknown), ("wrong-type", wrong)):
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


def older_loader(src, out):
    lines = []
    with open(src, encoding="utf-8") as f:
        for line in f:
            if re.match(r"^\s+metrics:", line):
                continue
            m = re.match(r"^(\s+)replicas:\s*([^\s#\[]+)", line)
            if m:
                line = f"{m.group(1)}address: {m.group(2)}\n"
            elif re.match(r"^\s+replicas:", line):
                fail(f"{src}: only `replicas: HOST:PORT` can be rewritten for an older loader", 1)
            lines.append(line)
    with open(out, "w", encoding="utf-8") as f:
        f.writelines(lines)


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
            na.pop("address", None)
            nb.pop("address", None)
        if na != nb:
            keys = sorted(k for k in set(na) | set(nb) if na.get(k) != nb.get(k))
            problems.append(f"node '{name}' differs in {', '.join(keys)}")
    for p in problems:
        print(p)
    return 1 if problems else 0


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

        # Certificates: every file the loader may check exists in the mounted folder, the node's
        # own from a Secret that holds a PEM, and no other node's key is in the pod.
        certs_mount = next((m for m in c.get("volumeMounts", []) if m.get("mountPath") == certs_dir), None)
        if certs_mount is None:
            say(f"{who}: nothing is mounted at the topology's certs folder {certs_dir}")
            continue
        volume = volumes.get(certs_mount["name"], {})
        sources = (volume.get("projected") or {}).get("sources") or ([{"secret": volume["secret"]}] if "secret" in volume else [])
        files = {}
        for source in sources:
            for kind, ref in (("Secret", "secret"), ("ConfigMap", "configMap")):
                if ref not in source:
                    continue
                name = source[ref].get("name") if kind == "ConfigMap" else source[ref].get("name", source[ref].get("secretName"))
                obj = by_name.get((kind, name))
                if obj is None:
                    say(f"{who}: mounts {kind} '{name}', which the manifests do not define")
                    continue
                items = source[ref].get("items") or [{"key": k, "path": k} for k in (obj.get("data") or {})]
                for item in items:
                    if item["key"] not in (obj.get("data") or {}):
                        say(f"{who}: {kind} '{name}' has no key '{item['key']}'")
                    if item["path"] in files:
                        say(f"{who}: two sources of the certs volume give {item['path']}")
                    files[item["path"]] = (kind, name, (obj.get("data") or {}).get(item["key"], ""))
        for other in nodes:
            for f in ("ca.pem", f"{other}.pem", f"{other}-key.pem"):
                if f not in files:
                    say(f"{who}: {certs_dir}/{f} is missing, and the loader checks that every node's TLS files exist")
        for f in ("ca.pem", f"{node_name}.pem", f"{node_name}-key.pem"):
            kind, name, data = files.get(f, ("", "", ""))
            if kind != "Secret":
                say(f"{who}: {f} should come from the node's Secret, not from {kind or 'nowhere'} {name}")
                continue
            try:
                pem = base64.b64decode(data).decode()
            except Exception:
                pem = ""
            if "-----BEGIN " not in pem:
                say(f"{who}: {f} in Secret '{name}' is not a PEM file")
        for f, (kind, name, _) in files.items():
            if kind == "Secret" and f.endswith("-key.pem") and f != f"{node_name}-key.pem":
                say(f"{who}: Secret '{name}' puts another node's key, {f}, in this pod")
        mode = (volume.get("projected") or volume.get("secret") or {}).get("defaultMode", 0o644)
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

    for p in problems:
        print(p)
    return 1 if problems else 0


def main(argv):
    commands = {"render": 1, "split": 2, "same": 2, "break": 2, "topology": 2, "older-loader": 2, "agree": 2,
                "device-copy": 2}
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
    if cmd == "older-loader":
        older_loader(*args)
        return 0
    if cmd == "agree":
        return agree(*args)
    return device_copy(*args)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
