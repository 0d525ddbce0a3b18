#!/usr/bin/env bash
# A stand-in for leasefence-certs built on the openssl CLI, used by the
# webhook tests only when the project's certs tool is not part of the build.
# It implements the subset the tests call, with the same file names:
#   all    --dir D --service S --namespace N [--ip A]   ca.crt/key, tls.crt/key
#   client --dir D --cn NAME [--org O]                  client.crt/key
#   rotate --dir D [...]                                new tls.crt/key, same CA
set -euo pipefail
cmd=$1; shift
dir=. service=leasefence namespace=default ip=127.0.0.1 cn= org=
while [ $# -gt 0 ]; do
  case $1 in
    --dir) dir=$2; shift 2 ;;
    --service) service=$2; shift 2 ;;
    --namespace) namespace=$2; shift 2 ;;
    --ip) ip=$2; shift 2 ;;
    --cn) cn=$2; shift 2 ;;
    --org) org=$2; shift 2 ;;
    *) shift ;;
  esac
done
mkdir -p "$dir"
cd "$dir"
leaf() { # leaf <prefix> <subject> <ext>
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key.tmp" \
    -subj "$2" -out "$1.csr" 2>/dev/null
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
    -days 30 -extfile <(printf '%s\n' "$3") -out "$1.crt.tmp" 2>/dev/null
  rm -f "$1.csr"
  chmod 600 "$1.key.tmp"
  mv "$1.key.tmp" "$1.key"
  mv "$1.crt.tmp" "$1.crt"
}
serving() {
  leaf tls "/CN=$service.$namespace.svc" \
    "subjectAltName=DNS:$service.$namespace.svc,IP:$ip
extendedKeyUsage=serverAuth"
}
case $cmd in
  all)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
      -subj "/CN=leasefence-ca" -days 30 -out ca.crt 2>/dev/null
    serving ;;
  rotate) serving ;;
  client) leaf client "/CN=$cn${org:+/O=$org}" "extendedKeyUsage=clientAuth" ;;
  *) echo "certs-openssl.sh: unknown command $cmd" >&2; exit 2 ;;
esac
