#!/usr/bin/env bash
# make_test_certs.sh DIR: test certificates for the TLS tests, written with
# the openssl CLI into DIR (created if missing). Never use them elsewhere.
#   ca.pem ca.key              a test CA (the only trust anchor)
#   server.pem server.key      CN=localhost, SAN DNS:localhost, IP:127.0.0.1
#   server2.pem server2.key    the same names, another key and serial
#                              (certificate reload tests)
#   wrongname.pem wrongname.key  SAN DNS:wrong.example only
#   expired.pem expired.key    localhost, valid 2020-01-01 .. 2021-01-01
#   client.pem client.key      a client certificate (mutual TLS)
#   spki.txt                   base64 SHA-256 of server.key's public key
#                              (Chromium --ignore-certificate-errors-spki-list)
# Leaves carry no chain: the CA is only in ca.pem.
set -euo pipefail

dir=${1:?usage: make_test_certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/evsse-certs.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

quiet() { "$@" >/dev/null 2>"$tmp/err" || { cat "$tmp/err" >&2; exit 1; }; }

key() { quiet openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

key ca.key
quiet openssl req -x509 -new -key ca.key -sha256 -days 3650 \
  -subj "/CN=evsse test CA" -out ca.pem \
  -addext basicConstraints=critical,CA:TRUE \
  -addext keyUsage=critical,keyCertSign,cRLSign

# A minimal `openssl ca` setup: it alone can set explicit validity dates.
mkdir -p "$tmp/ca"
: >"$tmp/ca/index.txt"
echo 1000 >"$tmp/ca/serial"
cat >"$tmp/ca.cnf" <<CNF
[ca]
default_ca = test
[test]
dir = $tmp/ca
database = \$dir/index.txt
serial = \$dir/serial
new_certs_dir = \$dir
certificate = $PWD/ca.pem
private_key = $PWD/ca.key
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
[server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = \${ENV::SAN}
[client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
CNF

# leaf NAME CN SAN EXT [CA-DATE-ARGS...]
leaf() {
  local name=$1 cn=$2 san=$3 ext=$4
  shift 4
  key "$name.key"
  quiet openssl req -new -key "$name.key" -subj "/CN=$cn" -out "$tmp/$name.csr"
  SAN=$san quiet openssl ca -batch -config "$tmp/ca.cnf" -extensions "$ext" \
    -notext -in "$tmp/$name.csr" -out "$name.pem" "$@"
}

leaf server localhost "DNS:localhost,IP:127.0.0.1" server -days 3650
leaf server2 localhost "DNS:localhost,IP:127.0.0.1" server -days 3650
leaf wrongname wrong.example "DNS:wrong.example" server -days 3650
leaf expired localhost "DNS:localhost,IP:127.0.0.1" server \
  -startdate 20200101000000Z -enddate 20210101000000Z
leaf client "evsse test client" "DNS:client.invalid" client -days 3650

openssl pkey -in server.key -pubout -outform der 2>/dev/null |
  openssl dgst -sha256 -binary | openssl base64 -A >spki.txt
chmod 600 ./*.key
