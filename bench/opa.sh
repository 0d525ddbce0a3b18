#!/usr/bin/env bash
# bench/opa.sh: leasefence-webhook and Open Policy Agent side by side, making
# the same decision on the same AdmissionReview, over TLS with keep-alive.
#
# What it does:
#  1. builds leasefence-webhook (Release, build-bench/) and OPA from its Go
#     module (github.com/open-policy-agent/opa, pinned in bench/opa/go.mod,
#     a module of its own);
#  2. makes one certificate (leasefence-certs) that both servers serve, the
#     review and its Lease of bench/make-review.py;
#  3. starts both servers, pinned to the same CPU (SERVER_CPU, default 0):
#     leasefence with the file Lease source and one thread, OPA with
#     bench/opa/leasefence.rego (the same decision in Rego), the Lease pushed
#     into its data (PUT /v1/data/leases/default/ctrl) and the decision as its
#     default one, so both answer POST of the raw AdmissionReview with an
#     AdmissionReview (checked: both admit it, reason Current);
#  4. runs wrk (pinned to CLIENT_CPU, default 1) against each in turn, for
#     each connection count, ROUNDS times, alternating which goes first, so
#     the machine's other load weighs on both alike; per run: reviews/s,
#     p50/p99, and each server's CPU time per review (from /proc, the
#     figure that depends least on the neighbours);
#  5. prints the totals and the ratios leasefence / OPA, and each server's
#     peak RSS (VmHWM), with the load average before and after.
#
# Usage: bench/opa.sh [seconds per run (default 5)]
# Environment: ROUNDS (default 3), CONNS (default "1 8 64"), SERVER_CPU,
# CLIENT_CPU.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/lib.sh"
build=$root/build-bench
secs=${1:-5}
rounds=${ROUNDS:-3}
conns=${CONNS:-"1 8 64"}
server_cpu=${SERVER_CPU:-0}
client_cpu=${CLIENT_CPU:-1}
work=$(mktemp -d /tmp/lf-opa-bench-XXXXXX)
pids=()

cleanup() {
  for p in "${pids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then
      kill -TERM "$p"
      wait "$p" || true
    fi
  done
  rm -rf "$work"
}
trap cleanup EXIT

for tool in wrk curl cmake python3 go taskset; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done

echo "== build: leasefence-webhook (Release) and OPA in $build"
bench_build "$build" "$work" leasefence-webhook leasefence-certs
(cd "$here/opa" && GOTOOLCHAIN=local go build -o "$build/opa" github.com/open-policy-agent/opa) ||
  { echo "bench: building OPA failed" >&2; exit 1; }
echo "== $("$build/opa" version | head -1), $(go version)"

mkdir -p "$work/certs"
"$build/certs/leasefence-certs" all --dir "$work/certs" --service leasefence --namespace leasefence \
  --ip 127.0.0.1 >/dev/null
python3 "$here/make-review.py" "$work"
echo "== review: $(wc -c <"$work/review.json") bytes"

lf_port=18643
lf_hport=18281
opa_port=18743
taskset -c "$server_cpu" "$build/webhook/leasefence-webhook" --tls-cert-file "$work/certs/tls.crt" \
  --tls-private-key-file "$work/certs/tls.key" --lease-source "file:$work/leases" --threads 1 \
  --bind-address 127.0.0.1 --port $lf_port --health-bind-address 127.0.0.1 --health-port $lf_hport \
  -v 0 2>"$work/leasefence.log" &
lf_pid=$!
pids+=("$lf_pid")
taskset -c "$server_cpu" "$build/opa" run --server --addr "127.0.0.1:$opa_port" \
  --tls-cert-file "$work/certs/tls.crt" --tls-private-key-file "$work/certs/tls.key" \
  --set default_decision=leasefence/response --log-level error \
  "$here/opa/leasefence.rego" >"$work/opa.log" 2>&1 &
opa_pid=$!
pids+=("$opa_pid")
ca=(--cacert "$work/certs/ca.crt")
for _ in $(seq 200); do
  if curl -fs "http://127.0.0.1:$lf_hport/readyz" >/dev/null &&
    curl -fs "${ca[@]}" "https://127.0.0.1:$opa_port/health" >/dev/null; then break; fi
  kill -0 "$lf_pid" 2>/dev/null || { cat "$work/leasefence.log"; exit 1; }
  kill -0 "$opa_pid" 2>/dev/null || { cat "$work/opa.log"; exit 1; }
  sleep 0.05
done
curl -fsS "${ca[@]}" -X PUT -H 'Content-Type: application/json' \
  --data-binary @"$work/leases/default/ctrl.json" "https://127.0.0.1:$opa_port/v1/data/leases/default/ctrl"
declare -A url=([leasefence]="https://127.0.0.1:$lf_port/validate" [opa]="https://127.0.0.1:$opa_port/")
declare -A pid=([leasefence]=$lf_pid [opa]=$opa_pid)
for s in leasefence opa; do
  curl -fsS "${ca[@]}" -H 'Content-Type: application/json' --data-binary @"$work/review.json" "${url[$s]}" |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["response"]; sys.exit(0 if r["allowed"] and r["auditAnnotations"]["reason"]=="Current" else 1)' ||
    { echo "bench: $s does not admit the review as Current" >&2; exit 1; }
done

bench_wrk_script "$work" <<'EOF'
function done(summary, latency, requests)
  io.write(string.format("RESULT %d %.3f %.3f %d\n", summary.requests, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout + summary.errors.status))
end
EOF

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); servers on CPU $server_cpu, wrk on CPU $client_cpu"
echo "== load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A reqs cpu p50 p99 runs errs
for c in $conns; do
  for s in leasefence opa; do
    reqs[$s$c]=0 cpu[$s$c]=0 p50[$s$c]=0 p99[$s$c]=0 runs[$s$c]=0 errs[$s$c]=0
  done
done
for r in $(seq "$rounds"); do
  for c in $conns; do
    order="leasefence opa"
    if [ $((r % 2)) -eq 0 ]; then order="opa leasefence"; fi
    for s in $order; do
      t0=$(ticks "${pid[$s]}")
      line=$(taskset -c "$client_cpu" wrk -t1 -c"$c" -d"${secs}s" -s "$work/post.lua" "${url[$s]}" | grep '^RESULT')
      t1=$(ticks "${pid[$s]}")
      read -r _ n a b e <<<"$line"
      reqs[$s$c]=$((reqs[$s$c] + n))
      cpu[$s$c]=$((cpu[$s$c] + t1 - t0))
      errs[$s$c]=$((errs[$s$c] + e))
      p50[$s$c]=$(awk -v x="${p50[$s$c]}" -v y="$a" 'BEGIN{print x + y}')
      p99[$s$c]=$(awk -v x="${p99[$s$c]}" -v y="$b" 'BEGIN{print x + y}')
      runs[$s$c]=$((runs[$s$c] + 1))
      printf 'round=%d conns=%-3d %-10s reviews/s=%-7.0f p50_ms=%-7.3f p99_ms=%-8.3f cpu_us_per_review=%.1f errors=%d load=%s\n' \
        "$r" "$c" "$s" "$(awk -v n="$n" -v s="$secs" 'BEGIN{print n / s}')" "$a" "$b" \
        "$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$n" 'BEGIN{ if (n > 0) print d / hz * 1e6 / n; else print 0 }')" \
        "$e" "$(cut -d' ' -f1 /proc/loadavg)"
    done
  done
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "over $rounds interleaved rounds of ${secs}s (p50/p99: mean of the runs' percentiles):"
printf '%-6s %-10s %10s %9s %9s %16s %16s\n' conns server reviews/s p50_ms p99_ms cpu_us/review reviews/CPU-s
for c in $conns; do
  for s in leasefence opa; do
    awk -v c="$c" -v s="$s" -v n="${reqs[$s$c]}" -v t="${cpu[$s$c]}" -v hz="$hz" -v k="${runs[$s$c]}" \
      -v secs="$secs" -v a="${p50[$s$c]}" -v b="${p99[$s$c]}" 'BEGIN {
        us = n > 0 ? t / hz * 1e6 / n : 0
        printf "%-6s %-10s %10.0f %9.3f %9.3f %16.1f %16.0f\n", c, s, n / (k * secs), a / k, b / k, us, (us > 0 ? 1e6 / us : 0) }'
  done
  awk -v c="$c" -v nl="${reqs[leasefence$c]}" -v no="${reqs[opa$c]}" -v tl="${cpu[leasefence$c]}" \
    -v to="${cpu[opa$c]}" -v al="${p50[leasefence$c]}" -v ao="${p50[opa$c]}" -v bl="${p99[leasefence$c]}" \
    -v bo="${p99[opa$c]}" 'BEGIN {
      printf "%-6s %-10s %10.2f %9.2f %9.2f %16.2f %16.2f\n", c, "ratio l/o", nl / no, al / ao, bl / bo,
        (tl / nl) / (to / no), (to / no) / (tl / nl) }'
done
echo "errors: leasefence $(for c in $conns; do echo -n "${errs[leasefence$c]} "; done)opa $(for c in $conns; do echo -n "${errs[opa$c]} "; done)"
echo "peak RSS (VmHWM): leasefence $(awk '/VmHWM/{print $2, $3}' "/proc/$lf_pid/status"), opa $(awk '/VmHWM/{print $2, $3}' "/proc/$opa_pid/status")"
