#!/usr/bin/env python3
"""Helpers of scripts/k8s-check.sh on manifests rendered by `kubectl kustomize` (needs PyYAML):
  split STREAM OUTDIR         each document to OUTDIR/NN-kind-name.yaml; prints `FILE<TAB>Kind namespace/name`
  break DOC OUTDIR            invalid copies of a Deployment (a misspelt field, a wrong type) or NetworkPolicy
  topology STREAM OUT         the topology.yaml of the stream's ConfigMap to OUT
  agree STREAM CONTAINERFILE  the manifests agree with their topology and the image; one problem a line, exit 1
"""
import base64, copy, json, os, re, shutil, subprocess, sys, tempfile
import yaml

HASHED = re.compile(r"^(.*)-[a-z0-9]{10}$")   # a generated name with kustomize's hash suffix


def docs_of(path):
    return [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d is not None]


def ident(d):
    m = d.get("metadata") or {}
    return f"{d.get('kind')} {m['namespace'] + '/' if m.get('namespace') else ''}{m.get('name')}"


def dump(doc, path):
    yaml.safe_dump(doc, open(path, "w", encoding="utf-8"), sort_keys=False)
    print(path)


def split(stream, outdir):
    os.makedirs(outdir, exist_ok=True)
    for i, d in enumerate(docs_of(stream)):
        path = os.path.join(outdir, f"{i:02d}-{str(d.get('kind', 'unknown')).lower()}-{(d.get('metadata') or {}).get('name', 'unnamed')}.yaml")
        yaml.safe_dump(d, open(path, "w", encoding="utf-8"), sort_keys=False)
        print(f"{path}\t{ident(d)}")


def break_copies(path, outdir):
    doc = docs_of(path)[0]
    os.makedirs(outdir, exist_ok=True)
    unknown = copy.deepcopy(doc)
    if doc.get("kind") == "Deployment":
        c = unknown["spec"]["template"]["spec"]["containers"][0]
        c["readinesProbe"] = c.pop("readinessProbe")          # misspelt: no such field
        wrong = copy.deepcopy(doc)
        wrong["spec"]["replicas"] = "two"                      # a string where an integer belongs
        dump(wrong, os.path.join(outdir, "wrong-type.yaml"))
    else:   # a NetworkPolicy: misspelt, `ingress:` would be dropped and its pods refuse everything
        unknown["spec"]["ingres"] = unknown["spec"].pop("ingress")
    dump(unknown, os.path.join(outdir, "unknown-field.yaml"))


def topology_map(docs):
    found = [d for d in docs if d.get("kind") == "ConfigMap" and "topology.yaml" in (d.get("data") or {})]
    if len(found) != 1:
        sys.exit(f"expected one ConfigMap with a topology.yaml, found {len(found)}")
    return found[0]


def write_topology(stream, out):
    open(out, "w", encoding="utf-8").write(topology_map(docs_of(stream))["data"]["topology.yaml"])


# --- agree -----------------------------------------------------------------------------------

def port_of(text):
    return int(str(text).rpartition(":")[2])


def named_port(ports, name):
    return next((p.get("containerPort") for p in ports or [] if p.get("name") == name), None)


def arg(args, flag, default=None):
    return args[args.index(flag) + 1] if flag in args[:-1] else default


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def matches(selector, labels):
    """A label selector (matchLabels, matchExpressions) against labels; {} selects everything."""
    if selector is None:
        return False
    ops = {"In": lambda k, v: labels.get(k) in v, "NotIn": lambda k, v: labels.get(k, v and object()) not in v,
           "Exists": lambda k, v: k in labels, "DoesNotExist": lambda k, v: k not in labels}
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()) and \
        all(ops[e["operator"]](e.get("key"), e.get("values") or []) for e in selector.get("matchExpressions") or [] if e.get("operator") in ops)


def selector_text(s):
    return ", ".join([f"{k}={v}" for k, v in sorted((s.get("matchLabels") or {}).items())] + [
        f"{e.get('key')} {e.get('operator')} {e.get('values') or ''}".strip() for e in s.get("matchExpressions") or []]) or "{} (everything)"


def file_data(obj):
    """The files a Secret or ConfigMap gives a volume, as bytes."""
    def b64(v):
        try:
            return base64.b64decode("".join(str(v).split()))
        except Exception:
            return b""
    secret = obj.get("kind") == "Secret"
    out = {k: b64(v) if secret else str(v).encode() for k, v in (obj.get("data") or {}).items()}
    out.update({k: (str(v).encode() if secret else base64.b64decode(v)) for k, v in (obj.get("stringData" if secret else "binaryData") or {}).items()})
    return out


def own_tls_files(node, name, certs_dir):
    """The node's TLS files as the loader names them, relative to certs_dir; None if one is outside it."""
    tls, out = node.get("tls") or {}, {}
    for what, key, default in (("CA certificate", "ca", "ca.pem"), ("certificate", "cert", f"{name}.pem"), ("private key", "key", f"{name}-key.pem")):
        path = str(tls.get(key, default))
        rel = os.path.relpath(os.path.normpath(path), certs_dir or "/") if path.startswith("/") else os.path.normpath(path)
        if rel.startswith(".."):
            return None
        out[what] = rel
    return out


def pem_problems(node_name, own, files, nodes):
    """With openssl: the certificate names the node, the key is its key, the CA signed it."""
    data = {what: files.get(f, ("", "", b""))[2] for what, f in own.items()}
    if shutil.which("openssl") is None or not all(b"-----BEGIN " in d for d in data.values()):
        return []   # a missing PEM file is reported already
    ssl = lambda *a: (lambda r: (r.returncode, r.stdout.decode(errors="replace")))(subprocess.run(["openssl", *a], capture_output=True))
    problems = []
    with tempfile.TemporaryDirectory() as tmp:
        ca, cert, key = (os.path.join(tmp, w) for w in ("ca", "cert", "key"))
        for path, what in ((ca, "CA certificate"), (cert, "certificate"), (key, "private key")):
            open(path, "wb").write(data[what])
        status, out = ssl("x509", "-in", cert, "-noout", "-ext", "subjectAltName")
        names = re.findall(r"DNS:([^,\s]+)", out)
        if status != 0:
            problems.append(f"{own['certificate']} is not a certificate")
        elif node_name not in names:
            theirs = [n for n in names if n in nodes]
            problems.append(f"{own['certificate']} names {', '.join(names) or 'no DNS name'}, not the node '{node_name}'"
                            + (f": it is the certificate of node '{theirs[0]}'" if theirs else ""))
        (s1, pub_cert), (s2, pub_key) = ssl("x509", "-in", cert, "-noout", "-pubkey"), ssl("pkey", "-in", key, "-pubout")
        if s2 != 0:
            problems.append(f"{own['private key']} is not a private key")
        elif s1 == 0 and pub_cert.strip() != pub_key.strip():
            problems.append(f"{own['private key']} is not the key of {own['certificate']}")
        if status == 0 and ssl("verify", "-CAfile", ca, cert)[0] != 0:
            problems.append(f"{own['certificate']} is not signed by the CA in {own['CA certificate']}")
    return problems


def quantity(value):
    """A Kubernetes quantity (`250m`, `1`, `384Mi`) as a number; None if it is not one."""
    m = re.match(r"^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$", str(value))
    return float(m.group(1)) * {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 2 ** 10, "Mi": 2 ** 20,
                                "Gi": 2 ** 30, "Ti": 2 ** 40}[m.group(2)] if m else None


def disruption_problems(who, budget, replicas):
    spec, name = budget.get("spec") or {}, f"PodDisruptionBudget {budget['metadata']['name']}"
    if any(isinstance(spec.get(k), str) for k in ("minAvailable", "maxUnavailable")):
        return []   # a percentage: Kubernetes rounds it against the pods it finds
    if "minAvailable" not in spec and "maxUnavailable" not in spec:
        return [f"{name}: neither minAvailable nor maxUnavailable"]
    keep = spec["minAvailable"] if "minAvailable" in spec else replicas - spec["maxUnavailable"]
    if keep < 1:
        return [f"{name}: lets a voluntary disruption take every pod of {who}"]
    return [f"{name}: keeps all {replicas} pods of {who}, so no node that runs one can ever be drained"] if keep >= replicas else []


def agree(stream, containerfile):
    docs, problems = docs_of(stream), []
    say = problems.append
    image = open(containerfile, encoding="utf-8").read()
    args_of = {}
    for key, what in (("UID", "N naming the image's user"), ("HOME", "DIR naming where the models go"), ("VERSION", "V naming the tag the manifests pin")):
        m = re.search(rf"^ARG BRANCHY_{key}=(\S+)", image, re.M)
        args_of[key] = m.group(1) if m else None
        if m is None:
            say(f"{containerfile}: no `ARG BRANCHY_{key}={what.split()[0]}` {' '.join(what.split()[1:])}")
    uid, home, version = (int(args_of["UID"]) if args_of["UID"] else None), args_of["HOME"], args_of["VERSION"]

    topo_map = topology_map(docs)
    topo = yaml.safe_load(topo_map["data"]["topology.yaml"])
    nodes = {n["name"]: n for n in topo["nodes"]}
    namespace = topo_map["metadata"].get("namespace", "default")
    model, certs_dir = topo.get("model", ""), topo.get("certs")
    if home and not model.startswith(home.rstrip("/") + "/models/"):
        say(f"topology model '{model}' is not under {home}/models, where the image keeps the models")
    elif home and not os.path.isfile(os.path.join("models", os.path.basename(model), "model.json")):
        say(f"topology model '{model}': there is no models/{os.path.basename(model)}/model.json to copy into the image")
    if not certs_dir or not certs_dir.startswith("/"):
        say(f"topology certs '{certs_dir}' should be an absolute path inside the pods")
    # A name derived from the contents makes every change a new ConfigMap, which rolls the pods: a
    # change meant for SIGHUP could never reach a running pod.
    if HASHED.match(topo_map["metadata"]["name"]):
        say(f"ConfigMap {topo_map['metadata']['name']}: its name carries a hash of its contents, so a changed topology "
            f"makes a new ConfigMap and rolls every pod instead of reaching the running ones for SIGHUP; "
            f"give its generator `options: disableNameSuffixHash: true`")
    kinds = lambda kind: [d for d in docs if d.get("kind") == kind]
    budgets, deployments, images, served = kinds("PodDisruptionBudget"), kinds("Deployment"), {}, {}
    by_name = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    for dep in deployments:
        who = f"Deployment {dep['metadata']['name']}"
        pod, labels = dep["spec"]["template"]["spec"], dep["spec"]["template"]["metadata"].get("labels", {})
        if not selects(dep["spec"]["selector"].get("matchLabels"), labels):
            say(f"{who}: its selector does not match its pod labels")
        containers = pod.get("containers", [])
        if len(containers) != 1:
            say(f"{who}: expected one container, found {len(containers)}")
            continue
        c = containers[0]
        command, args = (c.get("command") or [""])[0], c.get("args") or []
        role, node_name = {"branchy-edge": "edge", "branchy-cloud": "cloud"}.get(command), arg(args, "--node")
        node = nodes.get(node_name)
        if role is None:
            say(f"{who}: command {command!r} is not branchy-edge or branchy-cloud")
            continue
        if node is None:
            say(f"{who}: --node {node_name!r} is not a node of the topology ({', '.join(nodes)})")
            continue
        if node.get("role") != role:
            say(f"{who}: runs {command} for node '{node_name}', whose role is {node.get('role')}")
        if labels.get("branchy/node", node_name) != node_name:
            say(f"{who}: its pods are labelled branchy/node={labels['branchy/node']} but run node '{node_name}'")
        served[node_name] = (dep, labels)

        # The topology the command reads is the ConfigMap's where it is mounted, never by subPath
        # (which the kubelet never updates: SIGHUP would read the old file).
        mounts, volumes = c.get("volumeMounts", []), {v["name"]: v for v in pod.get("volumes", [])}
        topo_volumes = [n for n, v in volumes.items() if v.get("configMap", {}).get("name") == topo_map["metadata"]["name"]]
        if not any(os.path.join(m.get("mountPath", ""), "topology.yaml") == arg(args, "--topology", "") for m in mounts if m["name"] in topo_volumes):
            say(f"{who}: --topology {arg(args, '--topology', '')} is not the topology.yaml of the ConfigMap {topo_map['metadata']['name']} as mounted")
        if any(m["name"] in topo_volumes and (m.get("subPath") or m.get("subPathExpr")) for m in mounts):
            say(f"{who}: mounts the topology with subPath, which the kubelet never updates: a changed ConfigMap "
                f"would not reach the running pod, and SIGHUP would read the old file")

        ports = c.get("ports", [])
        if node.get("listen") and named_port(ports, "branchy") != port_of(node["listen"]):
            say(f"{who}: container port 'branchy' is {named_port(ports, 'branchy')}, the node listens on {node['listen']}")
        if not node.get("metrics"):
            say(f"{who}: node '{node_name}' has no `metrics:`, so nothing answers the probes")
        else:
            mport = port_of(node["metrics"])
            if named_port(ports, "metrics") != mport:
                say(f"{who}: container port 'metrics' is {named_port(ports, 'metrics')}, the node serves metrics on {node['metrics']}")
            for kind, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                get = (c.get(kind) or {}).get("httpGet") or {}
                port = named_port(ports, get.get("port")) if isinstance(get.get("port"), str) else get.get("port")
                if not c.get(kind):
                    say(f"{who}: no {kind}")
                elif get.get("path") != path or port != mport:
                    say(f"{who}: {kind} should be GET {path} on the metrics port {mport}")
            notes = dep["spec"]["template"]["metadata"].get("annotations", {})
            if notes.get("prometheus.io/scrape") == "true" and notes.get("prometheus.io/port") != str(mport):
                say(f"{who}: prometheus.io/port is {notes.get('prometheus.io/port')}, the metrics port {mport}")
        drain, grace = float(arg(args, "--drain-seconds", "10")), pod.get("terminationGracePeriodSeconds", 30)
        if not grace > drain:
            say(f"{who}: terminationGracePeriodSeconds {grace} is not longer than the drain ({drain} s)")

        psc, csc = pod.get("securityContext", {}), c.get("securityContext", {})
        effective = lambda key: csc.get(key, psc.get(key))   # the container's setting wins over the pod's
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
        ref = images[dep["metadata"]["name"]] = c.get("image", "")
        name_tag, _, digest = ref.partition("@")
        tag = name_tag.rpartition(":")[2] if name_tag.rfind(":") > name_tag.rfind("/") else ""
        if not digest and tag in ("", "latest", "dev"):
            say(f"{who}: image {ref} is not pinned; give it the release tag ({version}) or a digest")
        elif not digest and version and tag != version:
            say(f"{who}: image {ref} has the tag {tag}, but the Containerfile builds version {version} (ARG BRANCHY_VERSION)")

        count = dep["spec"].get("replicas", 1)
        if count < 2:
            say(f"{who}: runs {count} replica; run two or more, so that a crash or a node drain leaves one serving")
        mine = [b for b in budgets if b["metadata"].get("namespace") == dep["metadata"].get("namespace")
                and matches((b.get("spec") or {}).get("selector"), labels)]
        if not mine:
            say(f"{who}: no PodDisruptionBudget selects its pods, so a node drain may take them all at once")
        for budget in mine:
            problems.extend(disruption_problems(who, budget, count))
        # `kubectl exec POD -- sh -c 'kill -HUP 1'` reaches the node only while it is the pod's PID 1.
        if pod.get("shareProcessNamespace"):
            say(f"{who}: shareProcessNamespace makes the pod's pause process PID 1, so `kill -HUP 1` would not reach the node")

        # Certificates: the pod holds the node's own three TLS files from its own Secret and nothing
        # else (no other node's certificate or key, not the CA's key); contents checked with openssl.
        certs_mount = next((m for m in mounts if m.get("mountPath") == certs_dir), None)
        if certs_mount is None:
            say(f"{who}: nothing is mounted at the topology's certs folder {certs_dir}")
            continue
        volume = volumes.get(certs_mount["name"], {})
        sources = (volume.get("projected") or {}).get("sources") or ([{"secret": volume["secret"]}] if "secret" in volume else [])
        if not sources:
            say(f"{who}: the volume '{certs_mount['name']}' at {certs_dir} is neither a Secret nor a projected volume")
        files, modes = {}, [(volume.get("projected") or volume.get("secret") or {}).get("defaultMode", 0o644)]
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
                for item in source[ref].get("items") or [{"key": k, "path": k} for k in data]:
                    if item["key"] not in data:
                        say(f"{who}: {kind} '{name}' has no key '{item['key']}'")
                    if item["path"] in files:
                        say(f"{who}: two sources of the certs volume give {item['path']}")
                    modes += [item["mode"]] if "mode" in item else []
                    files[item["path"]] = (kind, name, data.get(item["key"], b""))
        own = own_tls_files(node, node_name, certs_dir)
        if own is None:
            say(f"{who}: node '{node_name}' has `tls:` paths outside {certs_dir}, where its Secret is mounted")
            continue
        secrets = set()
        for what, f in own.items():
            kind, name, data = files.get(f, ("", "", b""))
            if not kind:
                say(f"{who}: {certs_dir}/{f}, the node's {what}, is missing: the node checks it at start-up")
            elif kind != "Secret":
                say(f"{who}: {f} should come from the node's Secret, not from {kind} '{name}'")
            else:
                secrets.add(name)
                if b"-----BEGIN " not in data:
                    say(f"{who}: {f} in Secret '{name}' is not a PEM file")
        if len(secrets) > 1:
            say(f"{who}: the node's files come from several Secrets ({', '.join(sorted(secrets))}), not its own one")
        for secret in sorted(secrets):
            extra = sorted(set(file_data(by_name[("Secret", secret)])) - set(own.values()))
            if extra:
                say(f"{who}: its Secret '{secret}' also holds {', '.join(extra)}; a node's Secret holds only its own TLS files")
        others = {"ca-key.pem": "the CA's key"}
        for other in nodes:
            if other != node_name:
                others.update({f"{other}.pem": f"the certificate of node '{other}'", f"{other}-key.pem": f"the key of node '{other}'"})
        for f, (kind, name, _) in sorted(files.items()):
            if f not in own.values():
                say(f"{who}: {kind} '{name}' puts {others[os.path.basename(f)]}, {f}, in this pod" if os.path.basename(f) in others
                    else f"{who}: {kind} '{name}' puts {f} in the certs folder, which is not one of the node's own TLS files")
        problems.extend(f"{who}: {p}" for p in pem_problems(node_name, own, files, nodes))
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
        host, port = str(dial).rpartition(":")[0].strip("[]"), port_of(dial)
        svc_name, _, rest = host.partition(".")
        svc = next((d for d in kinds("Service") if d["metadata"]["name"] == svc_name
                    and d["metadata"].get("namespace", namespace) == (rest.split(".")[0] if rest else namespace)), None)
        if svc is None:
            say(f"node '{name}': its children dial {dial}, but no Service of that name is in namespace {namespace}")
            continue
        who, spec, count = f"Service {svc['metadata']['name']}", svc["spec"], dep["spec"].get("replicas", 1)
        if not selects(spec.get("selector"), labels):
            say(f"{who}: does not select the pods of Deployment {dep['metadata']['name']}")
        for other in deployments:
            if other is not dep and selects(spec.get("selector"), other["spec"]["template"]["metadata"].get("labels", {})):
                say(f"{who}: also selects the pods of Deployment {other['metadata']['name']}")
        sp = next((p for p in spec.get("ports", []) if p.get("port") == port), None)
        if sp is None:
            say(f"{who}: has no port {port}, which the topology dials")
        elif sp.get("targetPort") not in ("branchy", port_of(node["listen"])):
            say(f"{who}: port {port} does not lead to the node's listening port")
        if "replicas" in node and spec.get("clusterIP") != "None":
            say(f"{who}: node '{name}' finds its replicas by resolving {host}, so the Service must be headless (clusterIP: None)")
        if "replicas" not in node and spec.get("clusterIP") == "None":
            say(f"{who}: is headless, but node '{name}' is one process dialled at one address")
        if "replicas" in node and count < 2:
            say(f"Deployment {dep['metadata']['name']}: node '{name}' is replicated, but runs {count} replica")
        if "replicas" not in node and count != 1:
            say(f"Deployment {dep['metadata']['name']}: node '{name}' is one named process, but runs {dep['spec'].get('replicas')}")
    if len(set(images.values())) > 1:
        say(f"the Deployments run different images: {', '.join(f'{d} {i}' for d, i in sorted(images.items()))}")
    problems.extend(network_policies(docs, deployments, served, nodes, namespace))
    for p in problems:
        print(p)
    return 1 if problems else 0


def network_policies(docs, deployments, served, nodes, namespace):
    """What the NetworkPolicies let in, against the topology: a node's port `branchy` only from the pods
    of its children when they all run in the cluster, from everywhere when some (devices) do not; its
    port `metrics` only from namespaces a namespaceSelector picks; every pod isolated; ports by names
    the containers have. Kubelet probes come from the pod's node, which NetworkPolicy does not block."""
    problems = []
    say = problems.append
    policies = [d for d in docs if d.get("kind") == "NetworkPolicy"]
    ns_of = lambda d: (d.get("metadata") or {}).get("namespace", namespace)
    pod_labels = lambda dep: dep["spec"]["template"]["metadata"].get("labels", {})
    name_of = lambda d: d["metadata"]["name"]

    def ns_labels(ns):   # kubernetes.io/metadata.name is set by Kubernetes on every namespace
        return dict({"kubernetes.io/metadata.name": ns}, **{k: v for d in docs if d.get("kind") == "Namespace" and name_of(d) == ns
                                                              for k, v in (d["metadata"].get("labels") or {}).items()})

    def container_ports(dep):
        c = (dep["spec"]["template"]["spec"].get("containers") or [{}])[0]
        return {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}

    def isolating(dep, labels):
        return [p for p in policies if ns_of(p) == ns_of(dep) and "Ingress" in (p["spec"].get("policyTypes") or ["Ingress"])
                and matches(p["spec"].get("podSelector"), labels)]

    def port_names(rule, ports, pol_who="", dep_who="", report=False):
        """The container port names a rule covers; every port when it names none."""
        if not rule.get("ports"):
            return set(ports)
        covered = set()
        for p in rule["ports"]:
            want = p.get("port")
            if p.get("protocol", "TCP") != "TCP":
                continue
            if want is None:
                covered |= set(ports)
            elif isinstance(want, str):
                covered |= {want} & set(ports)
                if want not in ports and report:
                    say(f"{pol_who}: port '{want}' is not a port of {dep_who}'s container ({', '.join(ports)})")
            else:
                hit = {n for n, num in ports.items() if num is not None and want <= num <= p.get("endPort", want)}
                if not hit and report:
                    say(f"{pol_who}: port {want} is not a port of {dep_who}'s container ({', '.join(f'{n} {v}' for n, v in ports.items())})")
                covered |= hit
        return covered

    for pol in policies:
        who, sel = f"NetworkPolicy {name_of(pol)}", pol["spec"].get("podSelector")
        if sel is None:
            say(f"{who}: has no podSelector")
        elif not any(ns_of(d) == ns_of(pol) and matches(sel, pod_labels(d)) for d in deployments):
            say(f"{who}: its podSelector ({selector_text(sel)}) selects no pod of the manifests")

    for name, (dep, labels) in served.items():
        dep_who, ports, mine = f"Deployment {name_of(dep)}", container_ports(dep), isolating(dep, labels)
        if not mine:
            say(f"{dep_who}: no NetworkPolicy selects its pods for Ingress, so every source may reach every port")
            continue
        rules = [(pol, rule, port_names(rule, ports, f"NetworkPolicy {name_of(pol)}", dep_who, True))
                 for pol in mine for rule in pol["spec"].get("ingress") or []]
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
                say(f"{dep_who}: NetworkPolicy {name_of(open_to_all[0])} opens its port 'branchy' to every source, "
                    f"but only its children ({', '.join(children)}) dial it, all in the cluster")
            reached = set(inside) if open_to_all else set()
            for pol, rule in serving:
                pol_who = f"NetworkPolicy {name_of(pol)}"
                for peer in rule.get("from") or []:
                    if "ipBlock" in peer or "namespaceSelector" in peer or "podSelector" not in peer:
                        say(f"{pol_who}: lets {json.dumps(peer, sort_keys=True)} reach {dep_who}'s port 'branchy', "
                            f"beyond the pods of its children ({', '.join(children)})")
                    if "ipBlock" in peer:
                        continue
                    ns_sel = peer.get("namespaceSelector")
                    here = matches(ns_sel, ns_labels(ns_of(dep))) if ns_sel is not None else ns_of(pol) == ns_of(dep)
                    picked = [d for d in deployments if here and matches(peer.get("podSelector", {}), pod_labels(d))]
                    if "namespaceSelector" not in peer:
                        for d in picked:
                            if all(d is not c for c in inside.values()):
                                say(f"{pol_who}: lets the pods of Deployment {name_of(d)} reach {dep_who}'s port 'branchy', "
                                    f"but they run none of its children ({', '.join(children)})")
                    reached |= {n for n, c in inside.items() if any(d is c for d in picked)}
            for n in sorted(set(inside) - reached):
                say(f"{dep_who}: its child '{n}' (Deployment {name_of(inside[n])}) may not reach its port 'branchy'")
        if "metrics" in ports:
            scraping = [(pol, rule) for pol, rule, covered in rules if "metrics" in covered]
            if not scraping:
                say(f"{dep_who}: no NetworkPolicy lets a monitoring namespace reach its port 'metrics'")
            for pol, rule in scraping:
                pol_who = f"NetworkPolicy {name_of(pol)}"
                if not rule.get("from"):
                    say(f"{pol_who}: opens {dep_who}'s port 'metrics' to every source, not only the monitoring namespaces")
                for peer in rule.get("from") or []:
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
            ports, mine = container_ports(dep), isolating(dep, labels)
            for sp in svc["spec"].get("ports") or []:
                target = sp.get("targetPort", sp.get("port"))
                tname = target if isinstance(target, str) else next((n for n, v in ports.items() if v == target), str(target))
                if mine and not any(tname in port_names(r, ports) and not r.get("from") for p in mine for r in p["spec"].get("ingress") or []):
                    say(f"Service {name_of(svc)} ({svc['spec']['type']}): leads outside traffic to Deployment "
                        f"{name_of(dep)}'s port '{tname}', which no NetworkPolicy opens to every source")
    return problems


if __name__ == "__main__":
    commands = {"split": split, "break": break_copies, "topology": write_topology, "agree": agree}
    if len(sys.argv) != 4 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    sys.exit(commands[sys.argv[1]](*sys.argv[2:]) or 0)
