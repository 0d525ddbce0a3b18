#!/bin/sh
# Makes the webhook's private CA and serving certificate with leasefence-certs
# and writes the files this overlay needs:
#
#   pki/ca.crt pki/ca.key pki/tls.crt pki/tls.key
#   tls-secret.yaml       Secret leasefence-webhook-tls (kubernetes.io/tls)
#   ca-bundle-patch.yaml  caBundle of both webhooks in ValidatingWebhookConfiguration leasefence
#
# Usage: generate.sh [--rotate] [leasefence-certs flags...]
#
#   (no --rotate)  makes the CA and the serving pair if pki/ has none; an
#                  existing pair is kept. Then (re)writes the two manifests.
#   --rotate       new serving key and certificate from the same CA
#                  (leasefence-certs rotate); the caBundle does not change.
#
# Further flags go to leasefence-certs (for example --days 90,
# --key-type rsa-2048, --dns NAME, --ip ADDR).
#
# Environment:
#   LEASEFENCE_CERTS      the leasefence-certs binary (default: from PATH, else
#                         build/certs/leasefence-certs in the source tree)
#   LEASEFENCE_SERVICE    Service name (default leasefence-webhook)
#   LEASEFENCE_NAMESPACE  namespace (default leasefence)
#   LEASEFENCE_PKI_DIR    where the keys live (default pki/ next to this script)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
service=${LEASEFENCE_SERVICE:-leasefence-webhook}
namespace=${LEASEFENCE_NAMESPACE:-leasefence}
pki=${LEASEFENCE_PKI_DIR:-$here/pki}
secret_name=leasefence-webhook-tls

rotate=0
if [ "${1:-}" = "--rotate" ]; then
  rotate=1
  shift
fi

tool=${LEASEFENCE_CERTS:-}
if [ -z "$tool" ]; then
  if command -v leasefence-certs >/dev/null 2>&1; then
    tool=leasefence-certs
  elif [ -x "$here/../../../build/certs/leasefence-certs" ]; then
    tool=$here/../../../build/certs/leasefence-certs
  else
    echo "generate.sh: leasefence-certs not found; build it (cmake --build build --target leasefence-certs) or set LEASEFENCE_CERTS" >&2
    exit 2
  fi
fi

umask 077
mkdir -p "$pki"

if [ "$rotate" -eq 1 ]; then
  if [ ! -f "$pki/tls.crt" ]; then
    echo "generate.sh: --rotate: $pki/tls.crt does not exist; run generate.sh without --rotate first" >&2
    exit 2
  fi
  "$tool" rotate --dir "$pki" "$@"
elif [ ! -f "$pki/ca.crt" ] || [ ! -f "$pki/tls.crt" ]; then
  "$tool" all --dir "$pki" --service "$service" --namespace "$namespace" "$@"
else
  echo "generate.sh: keeping the existing certificate in $pki (use --rotate for a new one)" >&2
fi

b64() {
  base64 <"$1" | tr -d '\n'
}

ca_bundle=$("$tool" ca-bundle --dir "$pki")

# Written to a temporary file and renamed, so that a failure never leaves a
# half-written manifest behind.
tmp=$(mktemp "$here/.tls-secret.XXXXXX")
trap 'rm -f "$tmp"' EXIT
cat >"$tmp" <<YAML
# Written by generate.sh from $pki; do not edit, do not commit.
apiVersion: v1
kind: Secret
metadata:
  name: $secret_name
  namespace: $namespace
  labels:
    app.kubernetes.io/name: leasefence-webhook
    app.kubernetes.io/part-of: leasefence
type: kubernetes.io/tls
data:
  tls.crt: $(b64 "$pki/tls.crt")
  tls.key: $(b64 "$pki/tls.key")
  ca.crt: $(b64 "$pki/ca.crt")
YAML
mv -f "$tmp" "$here/tls-secret.yaml"

tmp=$(mktemp "$here/.ca-bundle-patch.XXXXXX")
cat >"$tmp" <<YAML
# Written by generate.sh from $pki/ca.crt; do not edit.
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: leasefence
webhooks:
  - name: fence.leasefence.io
    clientConfig:
      caBundle: $ca_bundle
  - name: scale.leasefence.io
    clientConfig:
      caBundle: $ca_bundle
YAML
chmod 644 "$tmp"
mv -f "$tmp" "$here/ca-bundle-patch.yaml"
trap - EXIT

echo "generate.sh: wrote $here/tls-secret.yaml and $here/ca-bundle-patch.yaml" >&2
echo "generate.sh: next: kubectl apply -k $here" >&2
