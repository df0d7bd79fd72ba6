"""The NetworkPolicy checks of k8s_check.py agree."""
import json

from k8s_objects import matches, selects, selector_text


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
