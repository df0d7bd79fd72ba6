#!/usr/bin/env python3
"""Helpers of scripts/k8s-check.sh on manifests rendered by `kubectl kustomize` (needs PyYAML):
  split STREAM OUTDIR         each document to OUTDIR/NN-kind-name.yaml; prints `FILE<TAB>Kind namespace/name`
  break DOC OUTDIR            invalid copies of a Deployment (a misspelt field, a wrong type) or NetworkPolicy
  topology STREAM OUT         the topology.yaml of the stream's ConfigMap to OUT
  agree STREAM CONTAINERFILE  the manifests agree with their topology and the image; one problem a line, exit 1
"""
import copy, os, re, sys
import yaml

from k8s_network_policies import network_policies
from k8s_objects import arg, disruption_problems, file_data, matches, named_port, own_tls_files, pem_problems, port_of, quantity, selects

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


if __name__ == "__main__":
    commands = {"split": split, "break": break_copies, "topology": write_topology, "agree": agree}
    if len(sys.argv) != 4 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    sys.exit(commands[sys.argv[1]](*sys.argv[2:]) or 0)
