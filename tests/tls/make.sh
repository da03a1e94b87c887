#!/usr/bin/env bash
# Makes the TLS test certificates of tests/postgres_tls.rs (committed, so
# the tests need no tool to make them): P-256 keys (PKCS #8 PEM), valid for
# 100 years from the day they were made. Run from anywhere; rewrites the
# files beside this script.
#   ca.pem                      the authority of the test server's certificate
#   server.pem, server.key      the server's certificate, for DNS:localhost only
#   other_ca.pem                an authority that vouches for nobody here
#   client_ca.pem               the authority of the client certificates
#   client_postgres.{pem,key}   a client certificate for the user postgres
#   client_someone_else.{pem,key}  one for a user that does not exist
set -euo pipefail
cd "$(dirname "$0")"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
days=36500

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

authority() { # name, common name
  key "$work/$1.key"
  openssl req -x509 -new -key "$work/$1.key" -out "$1.pem" -days "$days" -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
}

issue() { # name, common name, authority, extensions
  key "$1.key"
  openssl req -new -key "$1.key" -out "$work/$1.csr" -subj "/CN=$2"
  printf '%b' "$4" >"$work/$1.ext"
  openssl x509 -req -in "$work/$1.csr" -CA "$3.pem" -CAkey "$work/$3.key" -set_serial "0x$(openssl rand -hex 8)" \
    -days "$days" -out "$1.pem" -extfile "$work/$1.ext" 2>/dev/null
}

authority ca "segments test CA"
authority other_ca "segments other CA"
authority client_ca "segments test client CA"
issue server localhost ca 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n'
issue client_postgres postgres client_ca 'extendedKeyUsage=clientAuth\n'
issue client_someone_else someone_else client_ca 'extendedKeyUsage=clientAuth\n'
