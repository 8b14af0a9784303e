#!/usr/bin/env bash
# A test PKI for MQTT over TLS with client certificates (docs/fleet.md): a CA, the broker's
# certificate, and one client certificate per name given (terminal ids, plus the host and fleet
# accounts). Every certificate is X.509 v3 with the extensions rustls and mosquitto expect; the
# certificate's CN is the MQTT username the broker's ACL uses (use_identity_as_username).
#
#   scripts/make-test-pki.sh OUTDIR [NAME...]      default names: T0001 posd-host posd-fleet
#
# Writes OUTDIR/ca.pem, ca.key, broker.pem, broker.key, NAME.pem, NAME.key (keys 0600).
# The broker certificate is for DNS localhost and IP 127.0.0.1 unless BROKER_HOSTS is set
# (e.g. BROKER_HOSTS="DNS:mqtt.example.com,IP:10.0.0.5"). Test use only: production keys are
# made on the boxes and never leave them.
set -euo pipefail

out=${1:?usage: make-test-pki.sh OUTDIR [NAME...]}
shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(T0001 posd-host posd-fleet)
days=${DAYS:-825}
hosts=${BROKER_HOSTS:-DNS:localhost,IP:127.0.0.1}

mkdir -p "$out"
cd "$out"
umask 077

cat > ext.cnf <<CNF
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = $hosts
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
CNF

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca.key
{ printf '[req]\ndistinguished_name = dn\n[dn]\n'; cat ext.cnf; } > req.cnf
openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/O=posd test/CN=posd test CA" \
  -config req.cnf -extensions ca -out ca.pem

sign() { # name CN extension-section
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/O=posd test/CN=$2" -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -sha256 \
    -days "$days" -extfile ext.cnf -extensions "$3" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr"
}

sign broker localhost server
for n in "${names[@]}"; do
  case "$n" in
    ''|*[!A-Za-z0-9_-]*) echo "bad name: $n (letters, digits, - and _)" >&2; exit 1 ;;
  esac
  sign "$n" "$n" client
done
rm -f ext.cnf req.cnf ca.srl
chmod 0644 ./*.pem
echo "test PKI in $out: ca.pem, broker.pem/.key, ${names[*]/%/.pem}"
