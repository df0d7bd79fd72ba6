#!/usr/bin/env bash
# Makes the mutual-TLS files for every node of a Branchy topology:
#   ca.pem, ca-key.pem                 a private CA (EC P-256, 10 years)
#   <name>.pem, <name>-key.pem         one certificate per node, signed by the CA
#                                      (CN=<name>, SAN DNS:<name> only: a node's identity
#                                      is its name, never an address; serverAuth+clientAuth; 825 days)
# Keys are PKCS#8 PEM, mode 600. Existing files are kept unless --force is given.
#
# Node names and the `certs:` folder are read with `branchy topology show` (the
# executables of BRANCHY_BIN, else a release build); `--nodes a,b,c OUTDIR` names the
# nodes directly, for callers without a topology file.
set -euo pipefail
. "$(dirname "$0")/lib/common.sh"

usage() {
    cat <<USAGE
usage: $(basename "$0") [--force] TOPOLOGY [OUTDIR]
       $(basename "$0") [--force] --nodes NAME[,NAME...] OUTDIR

Creates a CA and one certificate + key per node named in TOPOLOGY (or in --nodes).
OUTDIR defaults to the topology's 'certs:' folder (else the topology file's own folder).
  --force   remake every file, the CA included, even if it exists
  --nodes   the node names, comma-separated, instead of a topology file
USAGE
}

force=0
nodes=""
args=()
while [ "$#" -gt 0 ]; do
    case "$1" in
        -f|--force) force=1 ;;
        --nodes) [ "$#" -ge 2 ] || { usage >&2; exit 2; }; nodes="$2"; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) usage >&2; die "unknown option '$1'" ;;
        *) args+=("$1") ;;
    esac
    shift
done
command -v openssl >/dev/null 2>&1 || die "the 'openssl' command is needed but was not found"

if [ -n "$nodes" ]; then
    [ "${#args[@]}" -eq 1 ] || { usage >&2; exit 2; }
    names="$(tr ',' '\n' <<< "$nodes")"
    source_name="--nodes"
    outdir="${args[0]}"
else
    if [ "${#args[@]}" -lt 1 ] || [ "${#args[@]}" -gt 2 ]; then
        usage >&2
        exit 2
    fi
    topology="${args[0]}"
    [ -f "$topology" ] && [ -r "$topology" ] || die "cannot read topology file '$topology'"
    source_name="$topology"
    # The loader's reading of the file: a broken topology gets its error here.
    names="$(topology_nodes "$topology" | cut -f1)" || die "could not read the nodes of '$topology'"
    if [ "${#args[@]}" -eq 2 ]; then
        outdir="${args[1]}"
    else
        outdir="$(topology_certs_dir "$topology")" || die "could not read the certs folder of '$topology'"
    fi
fi
[ -n "$names" ] || die "no node names in $source_name"
while IFS= read -r name; do
    [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || die "node name '$name' in $source_name may contain only letters, digits, '-', '_' and '.'"
done <<< "$names"
duplicate="$(sort <<< "$names" | uniq -d | head -n 1)"
[ -z "$duplicate" ] || die "node name '$duplicate' appears twice in $source_name"
mkdir -p "$outdir"
outdir="$(cd "$outdir" && pwd)"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cat > "$work/openssl.cnf" <<CNF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = placeholder
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
CNF

new_key() { (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null) \
    || die "openssl could not make a key at '$1'"; chmod 600 "$1"; }

ca="$outdir/ca.pem"
ca_key="$outdir/ca-key.pem"
made_ca=0
if [ "$force" -eq 1 ] || [ ! -f "$ca" ] || [ ! -f "$ca_key" ]; then
    new_key "$ca_key"
    openssl req -config "$work/openssl.cnf" -x509 -new -key "$ca_key" -sha256 -days 3650 \
        -subj "/CN=Branchy CA" -extensions v3_ca -out "$ca" 2>"$work/err" \
        || die "openssl could not make the CA: $(cat "$work/err")"
    made_ca=1
    echo "made $ca and $ca_key (CA, EC P-256, 3650 days)"
else
    echo "kept $ca (exists; --force remakes it)"
fi

while IFS= read -r name; do
    cert="$outdir/$name.pem"
    key="$outdir/$name-key.pem"
    if [ "$force" -eq 0 ] && [ "$made_ca" -eq 0 ] && [ -f "$cert" ] && [ -f "$key" ]; then
        if openssl verify -CAfile "$ca" "$cert" >/dev/null 2>&1; then
            sans="$(openssl x509 -in "$cert" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | tr -d ' ')"
            if [ "$sans" = "DNS:$name" ]; then
                echo "kept $cert (exists; --force remakes it)"
                continue
            fi
            echo "remaking $cert: it names $sans, not only DNS:$name"
        else
            echo "remaking $cert: it does not verify against $ca"
        fi
    fi
    new_key "$key"
    openssl req -config "$work/openssl.cnf" -new -key "$key" -subj "/CN=$name" -out "$work/$name.csr" 2>"$work/err" \
        || die "openssl could not make a request for '$name': $(cat "$work/err")"
    cat > "$work/$name.ext" <<EXT
[v3_node]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:$name
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EXT
    openssl x509 -req -in "$work/$name.csr" -CA "$ca" -CAkey "$ca_key" -set_serial "0x$(openssl rand -hex 16)" \
        -sha256 -days 825 -extfile "$work/$name.ext" -extensions v3_node -out "$cert" 2>"$work/err" \
        || die "openssl could not sign the certificate for '$name': $(cat "$work/err")"
    echo "made $cert and $key (CN=$name, 825 days)"
done <<< "$names"
