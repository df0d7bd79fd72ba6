"""Readers of Kubernetes objects for k8s_check.py agree: ports and arguments, label selectors,
the files a Secret or ConfigMap gives a volume and the node's TLS files among them (checked with
openssl), quantities and PodDisruptionBudgets."""
import base64, os, re, shutil, subprocess, tempfile


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
