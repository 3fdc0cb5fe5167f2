#!/bin/sh
# Regenerates the test PKI used by tests/integration/web_config.rs: a CA, a server
# certificate for 127.0.0.1/localhost and a client certificate, all signed by the CA, ECDSA
# P-256, valid for 100 years so the committed files do not expire. Test-only keys: never use
# them anywhere else.
#
#   sh tests/data/web/generate.sh
set -eu
cd "$(dirname "$0")"
days=36500

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
  -subj "/CN=honcho_exporter test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -keyout ca.key -out ca.crt

for name in server client; do
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=honcho_exporter test $name" -keyout "$name.key.tmp" -out "$name.csr"
  # rustls wants PKCS#8; openssl 3 writes it by default, convert anyway to be explicit.
  openssl pkcs8 -topk8 -nocrypt -in "$name.key.tmp" -out "$name.key"
  rm "$name.key.tmp"
done

cat > server.ext <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
EXT
cat > client.ext <<'EXT'
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectAltName=DNS:scraper.test
EXT
for name in server client; do
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile "$name.ext" -out "$name.crt"
  rm "$name.csr" "$name.ext"
done
rm -f ca.srl
