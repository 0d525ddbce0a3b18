#!/usr/bin/env bash
# bench/lease-sources.sh: what reading the Lease from a real API server costs
# a decision, per Lease source, and what coalescing saves under load.
#
# What it does:
#  1. builds a Release tree in build-bench/ (webhook, certs tool, with the
#     Kubernetes client) and bench/ratelat.c;
#  2. starts the real control plane (e2e/build.sh binaries, e2e/cmd/lfcluster)
#     on loopback and creates Lease default/ctrl, held and renewed for an hour;
#  3. for each source — file (no API server: the baseline), kube (a quorum
#     GET per decision, coalesced) and kube-cached (watch cache) — starts the
#     webhook with the admin kubeconfig and measures, with the fixed review of
#     bench/make-review.py stamped with the real Lease uid:
#       - latency at a low fixed rate (200/s, 1 connection): what one
#         decision costs when nothing is shared;
#       - closed-loop throughput at 1, 8 and 64 connections (wrk), with the
#         number of Lease GETs the webhook sent per review
#         (leasefence_lease_reads_total / reviews): below 1 is coalescing.
#
# Usage: bench/lease-sources.sh [seconds per run (default 10)]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/lib.sh"
build=$root/build-bench
secs=${1:-10}
work=$(mktemp -d /tmp/lf-lease-bench-XXXXXX)
server_pid=
cluster_pid=

stop_server() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" || true
  fi
  server_pid=
}
renewer_pid=
cleanup() {
  stop_server
  if [ -n "$renewer_pid" ]; then kill "$renewer_pid" 2>/dev/null || true; fi
  if [ -n "$cluster_pid" ] && kill -0 "$cluster_pid" 2>/dev/null; then
    kill -INT "$cluster_pid"
    wait "$cluster_pid" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

for tool in wrk curl cmake python3 cc go; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required (./setup.sh)" >&2; exit 1; }
done

echo "== build (Release) in $build"
bench_build "$build" "$work" leasefence-webhook leasefence-certs
cc -O2 -o "$build/ratelat" "$here/ratelat.c" -lcurl -lpthread
bin=$("$root/e2e/build.sh")
(cd "$root/e2e" && go build -o "$work/lfcluster" ./cmd/lfcluster)

echo "== control plane (kube-apiserver and etcd on loopback)"
LF_KUBE_BIN_DIR=$bin "$work/lfcluster" up --dir "$work/cp" >"$work/cluster.log" 2>&1 &
cluster_pid=$!
kubectl="$bin/kubectl --kubeconfig $work/cp/kubeconfig"
for _ in $(seq 600); do
  if [ -f "$work/cp/kubeconfig" ] && $kubectl get --raw /readyz >/dev/null 2>&1; then break; fi
  kill -0 "$cluster_pid" 2>/dev/null || { cat "$work/cluster.log"; exit 1; }
  sleep 0.1
done
now=$(date -u +%Y-%m-%dT%H:%M:%S.000000Z)
$kubectl apply -f - >/dev/null <<EOF
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: ctrl, namespace: default}
spec:
  holderIdentity: ctrl-a_aaaaaaaa-0000-4000-8000-000000000001
  leaseDurationSeconds: 3600
  leaseTransitions: 3
  acquireTime: "$now"
  renewTime: "$now"
EOF
uid=$($kubectl get lease ctrl -n default -o jsonpath='{.metadata.uid}')
# A holder renews its Lease every retryPeriod; do the same (every second), so
# the watch cache sees the Lease change as it would in a real cluster.
(while kill -0 "$cluster_pid" 2>/dev/null; do
  $kubectl patch lease ctrl -n default --type=merge \
    -p "{\"spec\":{\"renewTime\":\"$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)\"}}" >/dev/null 2>&1 || true
  sleep 1
done) &
renewer_pid=$!
python3 "$here/make-review.py" "$work" "$uid"
mkdir -p "$work/certs"
"$build/certs/leasefence-certs" all --dir "$work/certs" --service leasefence --namespace leasefence \
  --ip 127.0.0.1 >/dev/null

bench_wrk_script "$work" <<'EOF'
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %.0f %.3f %.3f %d\n", summary.requests,
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout + summary.errors.status))
end
EOF

port=18443
hport=18081
url=https://127.0.0.1:$port/validate
metric() { # metric NAME_AND_LABELS: its value, 0 when absent
  curl -fs "http://127.0.0.1:$hport/metrics" | awk -v m="$1" '$1 == m { print $2; f = 1 } END { if (!f) print 0 }'
}
start_server() {
  "$build/webhook/leasefence-webhook" --tls-cert-file "$work/certs/tls.crt" \
    --tls-private-key-file "$work/certs/tls.key" --lease-source "$1" \
    --kubeconfig "$work/cp/kubeconfig" --bind-address 127.0.0.1 --port $port \
    --health-bind-address 127.0.0.1 --health-port $hport -v 0 2>"$work/server.log" &
  server_pid=$!
  bench_await_ready $hport "$server_pid" "$work/server.log" 15 || exit 1
  curl -fsS --cacert "$work/certs/ca.crt" -H 'Content-Type: application/json' \
    --data-binary @"$work/review.json" "$url" | grep -q '"reason":"Current"' ||
    { echo "bench: the sample review is not admitted as Current with $1" >&2; exit 1; }
}

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== everything (API server, etcd, webhook, load tool) shares these CPUs"
printf '%-12s %-26s %10s %9s %9s %14s\n' source run reviews/s p50_ms p99_ms gets/review
for source in "file:$work/leases" kube kube-cached; do
  name=${source%%:*}
  start_server "$source"
  line=$("$build/ratelat" "$url" "$work/certs/ca.crt" "$work/review.json" 200 "$secs" 1 | grep '^RESULT')
  p50=$(sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p' <<<"$line")
  p99=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$line")
  printf '%-12s %-26s %10s %9s %9s %14s\n' "$name" "fixed 200/s, 1 conn" 200 "$p50" "$p99" -
  for c in 1 8 64; do
    g0=$(metric 'leasefence_lease_reads_total{result="ok"}')
    read -r n rps p50 p99 errs < <(wrk -t$(( c < 2 ? 1 : 2 )) -c"$c" -d"${secs}s" -s "$work/post.lua" "$url" |
      sed -n 's/^RESULT //p')
    g1=$(metric 'leasefence_lease_reads_total{result="ok"}')
    [ "$errs" = 0 ] || echo "bench: $errs errors in the run above" >&2
    printf '%-12s %-26s %10s %9s %9s %14s\n' "$name" "closed loop, $c conn" "$rps" "$p50" "$p99" \
      "$(awk -v a="$g0" -v b="$g1" -v n="$n" 'BEGIN { printf "%.3f", (b - a) / n }')"
  done
  if [ "$name" = kube-cached ]; then
    curl -fs "http://127.0.0.1:$hport/metrics" | grep -E '^leasefence_lease_cache_lookups_total' | sed 's/^/   /'
  fi
  stop_server
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
