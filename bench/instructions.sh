#!/usr/bin/env bash
# bench/instructions.sh: CPU instructions the webhook server spends per
# AdmissionReview, counted by valgrind's callgrind, for one or more builds
# side by side. Instruction counts do not depend on what else runs on the
# machine, so two builds compare exactly where timings on a shared machine
# cannot (callgrind counts each iteration of a `rep` string instruction, so
# memset and memcpy weigh more here than in cycles).
#
# What it does, per build: starts BUILD/webhook/leasefence-webhook under
# callgrind (file Lease source, one thread), sends bench/make-review.py's
# review N1 and then, in a second run, N2 times over one keep-alive TLS
# connection (curl), and prints (Ir(N2) - Ir(N1)) / (N2 - N1): the cost of
# one review with start-up and shutdown taken out. The profile of the N2
# run is kept in OUT (default /tmp) for callgrind_annotate.
#
# Usage: bench/instructions.sh [BUILD...]   (default: build-bench, built
#        Release here first)
# Environment: N1 (100), N2 (300), OUT.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/lib.sh"
n1=${N1:-100}
n2=${N2:-300}
out=${OUT:-/tmp}
work=$(mktemp -d /tmp/lf-instructions-XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -TERM "$pid"; wait "$pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
for tool in valgrind curl cmake python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done

builds=("$@")
if [ ${#builds[@]} -eq 0 ]; then
  bench_build "$root/build-bench" "$work" leasefence-webhook leasefence-certs
  builds=("$root/build-bench")
fi
certs_tool=${builds[0]}/certs/leasefence-certs
[ -x "$certs_tool" ] || certs_tool=$root/tests/webhook/certs-openssl.sh
mkdir -p "$work/certs"
"$certs_tool" all --dir "$work/certs" --service leasefence --namespace leasefence --ip 127.0.0.1 >/dev/null
python3 "$here/make-review.py" "$work"

port=18943
hport=18981
for b in "${builds[@]}"; do
  declare -A ir=()
  for n in "$n1" "$n2"; do
    valgrind --tool=callgrind --callgrind-out-file="$work/cg.$n" "$b/webhook/leasefence-webhook" \
      --tls-cert-file "$work/certs/tls.crt" --tls-private-key-file "$work/certs/tls.key" \
      --lease-source "file:$work/leases" --threads 1 --bind-address 127.0.0.1 --port $port \
      --health-bind-address 127.0.0.1 --health-port $hport -v 0 2>"$work/valgrind.log" &
    pid=$!
    bench_await_ready $hport "$pid" "$work/valgrind.log" 60 || exit 1
    urls=()
    for _ in $(seq "$n"); do urls+=("https://127.0.0.1:$port/validate" -o /dev/null); done
    curl -sS --cacert "$work/certs/ca.crt" -H 'Content-Type: application/json' \
      --data-binary @"$work/review.json" "${urls[@]}"
    kill -TERM "$pid"
    wait "$pid" || true
    pid=
    ir[$n]=$(awk '/^summary:/ {print $2; exit}' "$work/cg.$n")
  done
  keep=$out/leasefence-callgrind.$(echo "$b" | tr '/' '_').out
  cp "$work/cg.$n2" "$keep"
  echo "$b: $(((ir[$n2] - ir[$n1]) / (n2 - n1))) instructions per review (profile: $keep)"
done
