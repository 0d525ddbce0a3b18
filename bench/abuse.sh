#!/usr/bin/env bash
# bench/abuse.sh: leasefence-webhook under hostile load, while a normal client
# sends reviews. A benchmark, not a test: it reports figures and judges
# nothing but that the server survived.
#
# What it does:
#  1. builds a Release tree in build-bench/ (webhook and certs tool),
#     bench/abuse.c (the attackers) and bench/ratelat.c (the normal client);
#  2. makes certificates, a Lease file and the review (bench/make-review.py);
#  3. starts the server with its default limits (plus SERVER_FLAGS) and the
#     file Lease source (a pool of one thread per CPU), or with SOURCE=kube
#     the kube source against a stand-in API server (a thread per connection,
#     as the Deployment runs);
#  4. runs bench/abuse.c for SECONDS: BIG clients sending the largest body
#     the server accepts (--max-request-bytes, 7 MiB) evenly over
#     BIG_SECONDS each, again and again; STALLED clients announcing that body,
#     sending 1 KiB of it and stalling (reconnecting when the server closes
#     them); SLOWLORIS clients dripping one header byte every 500 ms; and
#     the normal client sending the review at RATE per second over 4
#     keep-alive connections opened before the attack (latency from each
#     request's scheduled time);
#  5. runs the normal client alone first, for comparison;
#  6. samples the server's RSS and VmSize every 200 ms, and reports: the
#     normal client's p50/p99, handshakes refused (closed at accept), the
#     server's counters (refused at accept, closed per phase deadline, 503s
#     for body memory, peak body memory), peak RSS and VmSize, RSS after the
#     attack ended, and whether the server is still running.
#
# Usage: bench/abuse.sh [SECONDS (30)]
# Environment: BIG (64), STALLED (1000), SLOWLORIS (50), RATE (200),
# BIG_SECONDS (8), SERVER_FLAGS (extra server flags, e.g. "--threads 1"),
# MAX_BODY (the big bodies' size; 7340032, the default --max-request-bytes),
# SOURCE (file, or kube: a thread per connection as in the Deployment, with
# Leases from bench/fake-apiserver.py).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/lib.sh"
build=$root/build-bench
secs=${1:-30}
big=${BIG:-64}
stalled=${STALLED:-1000}
slowloris=${SLOWLORIS:-50}
rate=${RATE:-200}
big_secs=${BIG_SECONDS:-8}
work=$(mktemp -d /tmp/lfw-abuse-XXXXXX)
server_pid=
sampler=
api_pid=

cleanup() {
  if [ -n "$sampler" ]; then kill "$sampler" 2>/dev/null || true; fi
  if [ -n "$api_pid" ]; then kill "$api_pid" 2>/dev/null || true; fi
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

for tool in curl cmake python3 cc; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done

echo "== build (Release) in $build"
bench_build "$build" "$work" leasefence-webhook || exit 1
cc -O2 -o "$build/abuse" "$here/abuse.c" $(pkg-config --cflags --libs gnutls) -lpthread
cc -O2 -o "$build/ratelat" "$here/ratelat.c" -lcurl -lpthread
certs_tool=$root/tests/webhook/certs-openssl.sh
if cmake --build "$build" --target leasefence-certs -j"$(nproc)" >>"$work/build.log" 2>&1; then
  certs_tool=$build/certs/leasefence-certs
fi
mkdir -p "$work/certs"
"$certs_tool" all --dir "$work/certs" --service leasefence --namespace leasefence \
  --ip 127.0.0.1 >/dev/null
python3 "$here/make-review.py" "$work"

port=18543
hport=18581
source_flags=(--lease-source "file:$work/leases")
if [ "${SOURCE:-file}" = kube ]; then
  # The production threading: a thread per connection. Leases come from a
  # stand-in API server (bench/fake-apiserver.py) over TLS.
  api_port=18544
  python3 "$here/fake-apiserver.py" $api_port "$work/certs/tls.crt" "$work/certs/tls.key" \
    "$work/leases" &
  api_pid=$!
  cat >"$work/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:$api_port", certificate-authority: "$work/certs/ca.crt"}}]
users: [{name: u, user: {token: bench}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
EOF
  source_flags=(--lease-source kube --kubeconfig "$work/kubeconfig")
fi
# shellcheck disable=SC2086
"$build/webhook/leasefence-webhook" --tls-cert-file "$work/certs/tls.crt" \
  --tls-private-key-file "$work/certs/tls.key" "${source_flags[@]}" \
  --bind-address 127.0.0.1 --port $port --health-bind-address 127.0.0.1 --health-port $hport \
  -v 0 ${SERVER_FLAGS:-} 2>"$work/server.log" &
server_pid=$!
bench_await_ready $hport "$server_pid" "$work/server.log" || exit 1
if [ -n "$api_pid" ] && ! kill -0 "$api_pid" 2>/dev/null; then
  echo "abuse.sh: the stand-in API server exited (port $api_port in use?)" >&2
  exit 1
fi
# The server's default --max-request-bytes (7Mi); set MAX_BODY with the flag.
max_body=${MAX_BODY:-7340032}

metric() { curl -fs "http://127.0.0.1:$hport/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
status_kib() { awk -v f="$1:" '$1 == f { print $2 }' "/proc/$server_pid/status"; }

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg) (the machine may be shared; wall-clock figures include that)"
echo "== server: defaults ${SERVER_FLAGS:-} (Lease source ${SOURCE:-file}); RSS before: $(status_kib VmRSS) KiB, VmSize $(status_kib VmSize) KiB"
echo "== attack for ${secs}s: big=$big (each ${max_body} bytes over ${big_secs}s), stalled=$stalled, slowloris=$slowloris; normal client: $rate reviews/s"

url=https://127.0.0.1:$port/validate
# The normal client (bench/ratelat.c, 4 keep-alive connections); alone first,
# for comparison on this machine as it is now.
normal() {
  "$build/ratelat" "$url" "$work/certs/ca.crt" "$work/review.json" "$rate" "$secs" 4 |
    grep '^RESULT' | sed 's/^RESULT //'
}
echo "== normal client alone for ${secs}s: $(normal)"

(peak_vm=0; peak_rss=0
 while kill -0 "$server_pid" 2>/dev/null; do
   vm=$(status_kib VmSize); rss=$(status_kib VmRSS)
   [ "${vm:-0}" -gt "$peak_vm" ] && peak_vm=$vm
   [ "${rss:-0}" -gt "$peak_rss" ] && peak_rss=$rss
   echo "$peak_rss $peak_vm" >"$work/peaks"
   sleep 0.2
 done) &
sampler=$!

# The normal client connects (within its first 200 ms) before the attack
# starts, so its connections hold slots when the attack fills the rest.
normal >"$work/normal" &
normal_pid=$!
sleep 0.5
attack=$("$build/abuse" 127.0.0.1 $port "$work/certs/ca.crt" "$work/review.json" "$max_body" \
  "$big" "$stalled" "$slowloris" "$secs" "$big_secs" | grep '^RESULT')
wait "$normal_pid" || true
echo "== normal client under attack: $(cat "$work/normal")"
echo "== attackers: ${attack#RESULT }"

alive=no
kill -0 "$server_pid" 2>/dev/null && alive=yes
echo "== server after the attack: running=$alive"
if [ "$alive" = yes ]; then
  for m in leasefence_connections_refused_total \
           'leasefence_connections_timed_out_total{phase="handshake"}' \
           'leasefence_connections_timed_out_total{phase="headers"}' \
           'leasefence_connections_timed_out_total{phase="body"}' \
           'leasefence_connections_timed_out_total{phase="idle"}' \
           leasefence_body_memory_refused_total leasefence_body_memory_peak_bytes \
           leasefence_body_memory_limit_bytes leasefence_request_body_bytes_total; do
    echo "   $m $(metric "$m")"
  done
  read -r peak_rss peak_vm <"$work/peaks"
  echo "   peak RSS (sampled every 200 ms): $peak_rss KiB; VmHWM: $(status_kib VmHWM) KiB; peak VmSize: $peak_vm KiB"
  # Give the server's own trim a moment after the last connections closed.
  for _ in $(seq 50); do
    [ "$(metric leasefence_connections_open)" = 0 ] && break
    sleep 0.1
  done
  echo "   RSS after the attack: $(status_kib VmRSS) KiB (connections open: $(metric leasefence_connections_open))"
fi
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
[ "$alive" = yes ]
