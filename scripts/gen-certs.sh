#!/usr/bin/env bash
# Makes the mutual-TLS files for every node of a topology (names and `certs:` folder read with `branchy
# topology show`), or of the nodes given with --nodes: a private CA (ca.pem, ca-key.pem: EC P-256, 10
# years) and per node <name>.pem and <name>-key.pem (CN=<name>, SAN DNS:<name> only: a node's identity
# is its name, never an address; serverAuth+clientAuth; 825 days). Keys are PKCS#8 PEM, mode 600.
# Existing files that verify and name their node are kept unless --force is given.
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
force=0 nodes="" args=()
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
    names="$(tr ',' '\n' <<< "$nodes")" source_name="--nodes" outdir="${args[0]}"
else
    [ "${#args[@]}" -ge 1 ] && [ "${#args[@]}" -le 2 ] || { usage >&2; exit 2; }
    [ -f "${args[0]}" ] && [ -r "${args[0]}" ] || die "cannot read topology file '${args[0]}'"
    source_name="${args[0]}"
    # The loader's reading of the file: a broken topology gets its error here.
    names="$(topology_nodes "${args[0]}" | cut -f1)" || die "could not read the nodes of '${args[0]}'"
    outdir="${args[1]:-$(topology_certs_dir "${args[0]}")}" || die "could not read the certs folder of '${args[0]}'"
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
printf '[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = placeholder\n[v3_ca]\nbasicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n' > "$work/openssl.cnf"
new_key() { (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null) || die "openssl could not make a key at '$1'"; chmod 600 "$1"; }

ca="$outdir/ca.pem" ca_key="$outdir/ca-key.pem" made_ca=0
if [ "$force" -eq 1 ] || [ ! -f "$ca" ] || [ ! -f "$ca_key" ]; then
    new_key "$ca_key"
    openssl req -config "$work/openssl.cnf" -x509 -new -key "$ca_key" -sha256 -days 3650 -subj "/CN=Branchy CA" -extensions v3_ca \
        -out "$ca" 2>"$work/err" || die "openssl could not make the CA: $(cat "$work/err")"
    made_ca=1
    echo "made $ca and $ca_key (CA, EC P-256, 3650 days)"
else
    echo "kept $ca (exists; --force remakes it)"
fi
while IFS= read -r name; do
    cert="$outdir/$name.pem" key="$outdir/$name-key.pem"
    if [ "$force" -eq 0 ] && [ "$made_ca" -eq 0 ] && [ -f "$cert" ] && [ -f "$key" ]; then
        if ! openssl verify -CAfile "$ca" "$cert" >/dev/null 2>&1; then
            echo "remaking $cert: it does not verify against $ca"
        elif sans="$(openssl x509 -in "$cert" -noout -ext subjectAltName 2>/dev/null | tail -n +2 | tr -d ' ')" && [ "$sans" = "DNS:$name" ]; then
            echo "kept $cert (exists; --force remakes it)"
            continue
        else
            echo "remaking $cert: it names $sans, not only DNS:$name"
        fi
    fi
    new_key "$key"
    openssl req -config "$work/openssl.cnf" -new -key "$key" -subj "/CN=$name" -out "$work/$name.csr" 2>"$work/err" \
        || die "openssl could not make a request for '$name': $(cat "$work/err")"
    printf '[v3_node]\nbasicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\nextendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:%s\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n' "$name" > "$work/$name.ext"
    openssl x509 -req -in "$work/$name.csr" -CA "$ca" -CAkey "$ca_key" -set_serial "0x$(openssl rand -hex 16)" \
        -sha256 -days 825 -extfile "$work/$name.ext" -extensions v3_node -out "$cert" 2>"$work/err" \
        || die "openssl could not sign the certificate for '$name': $(cat "$work/err")"
    echo "made $cert and $key (CN=$name, 825 days)"
done <<< "$names"
