#!/usr/bin/env bash
# bench/webhook.sh: throughput and latency of leasefence-webhook per
# AdmissionReview, over TLS with keep-alive, on this machine.
#
# What it does:
#  1. builds a Release tree in build-bench/ (webhook and certs tool only);
#  2. makes certificates with leasefence-certs and a Lease file renewed now
#     (an hour long, so it stays current for the whole run);
#  3. starts the server with the file Lease source, so every review runs the
#     full path: parse, lf_request, Lease file read and parse, decision,
#     response (a protected ConfigMap UPDATE with a current stamp);
#  4. closed-loop throughput: wrk over HTTPS keep-alive, POSTing one fixed
#     AdmissionReview, at several connection counts;
#  5. fixed-rate latency: bench/ratelat.c (built here), 8 threads with one
#     keep-alive HTTPS connection each, requests evenly spaced at the target
#     rate and latency counted from each request's scheduled time (wrk2 is
#     not in Debian; h2load's -r paces connection creation, not requests,
#     and reports no percentiles; wrk's Lua delay() paces in whole
#     milliseconds on timers that fire together, so its requests leave in
#     bursts);
#  6. the server's peak RSS (VmHWM).
#
# Usage: bench/webhook.sh [seconds per run (default 10)] [fixed rate (default 7500;
#        it is also run at half that)]
# Environment: CONNS="1 8 64" to change the connection counts, CLIENT_THREADS
# for the fixed-rate client's connections (default 8), THREADS for
# the server's --threads (default: one per CPU); SERVER_CPUS and CLIENT_CPUS
# (taskset lists, e.g. 0 and 1) pin the server and the fixed-rate client to
# CPUs of their own, so that the client does not preempt the server.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
. "$here/lib.sh"
build=$root/build-bench
secs=${1:-10}
rate=${2:-7500}
conns=${CONNS:-"1 8 64"}
work=$(mktemp -d /tmp/lfw-bench-XXXXXX)
server_pid=

cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

for tool in wrk curl cmake python3 cc; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is required" >&2; exit 1; }
done

echo "== build (Release) in $build"
bench_build "$build" "$work" leasefence-webhook
cc -O2 -o "$build/ratelat" "$here/ratelat.c" -lcurl -lpthread
certs_tool=$root/tests/webhook/certs-openssl.sh
if cmake --build "$build" --target leasefence-certs -j"$(nproc)" >>"$work/build.log" 2>&1; then
  certs_tool=$build/certs/leasefence-certs
fi

echo "== certificates ($certs_tool), Lease and review"
mkdir -p "$work/certs" "$work/leases/default"
"$certs_tool" all --dir "$work/certs" --service leasefence --namespace leasefence \
  --ip 127.0.0.1 >/dev/null
python3 "$here/make-review.py" "$work"
body_bytes=$(wc -c <"$work/review.json")

# wrk script: POST the review; report percentiles (wrk's own --latency stops
# at p99).
bench_wrk_script "$work" <<'EOF'
function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  io.write(string.format("RESULT reviews/s=%.0f p50_ms=%.3f p99_ms=%.3f p99.9_ms=%.3f max_ms=%.3f errors=%d non2xx=%d\n",
    summary.requests / secs, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status))
end
EOF

port=18443
hport=18081
threads_flag=()
if [ -n "${THREADS:-}" ]; then threads_flag=(--threads "$THREADS"); fi
${SERVER_CPUS:+taskset -c "$SERVER_CPUS"} "$build/webhook/leasefence-webhook" --tls-cert-file "$work/certs/tls.crt" \
  --tls-private-key-file "$work/certs/tls.key" --lease-source "file:$work/leases" \
  --bind-address 127.0.0.1 --port $port --health-bind-address 127.0.0.1 --health-port $hport \
  -v 0 "${threads_flag[@]}" 2>"$work/server.log" &
server_pid=$!
bench_await_ready $hport "$server_pid" "$work/server.log" || exit 1
url=https://127.0.0.1:$port/validate
# One review by hand first: it must be admitted as Current.
curl -fsS --cacert "$work/certs/ca.crt" -H 'Content-Type: application/json' \
  --data-binary @"$work/review.json" "$url" | grep -q '"reason":"Current"' ||
  { echo "bench: the sample review is not admitted as Current" >&2; exit 1; }

# CPU time the server spent (user + system, in clock ticks), to report its
# cost per review independently of how busy the machine is.
server_ticks() { awk '{print $14 + $15}' "/proc/$server_pid/stat"; }
hz=$(getconf CLK_TCK)
# run_wrk <label> <wrk args...>: one run, with the server's CPU per review.
run_wrk() {
  local label=$1 t0 t1 line n
  shift
  t0=$(server_ticks)
  line=$(wrk "$@" -s "$work/post.lua" "$url" | grep '^RESULT')
  t1=$(server_ticks)
  n=$(sed -n 's/.*reviews\/s=\([0-9]*\).*/\1/p' <<<"$line")
  echo "$label ${line#RESULT } server_cpu_us_per_review=$(awk -v d=$((t1 - t0)) -v hz="$hz" \
    -v n="$n" -v s="$secs" 'BEGIN { if (n > 0) printf "%.1f", d / hz * 1e6 / (n * s); else print "n/a" }')"
}

echo "== machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r)"
echo "== load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews wall-clock figures; server_cpu_us_per_review does not depend on it)"
echo "== review body: $body_bytes bytes; server threads: ${THREADS:-$(nproc)}; wrk on the same machine"
echo "== closed loop (wrk -t T -c C -d ${secs}s, keep-alive)"
for c in $conns; do
  t=$(( c < 2 ? 1 : 2 ))
  run_wrk "connections=$c" -t$t -c"$c" -d"${secs}s"
done

# The server's own duration histogram (leasefence_request_duration_seconds),
# as "le count" lines, to tell the server's time from the machine's.
histogram() {
  curl -fs "http://127.0.0.1:$hport/metrics" |
    sed -n 's/^leasefence_request_duration_seconds_bucket{le="\([^"]*\)"} \([0-9]*\)$/\1 \2/p'
}
echo "== fixed rate (bench/ratelat.c: ${CLIENT_THREADS:-8} keep-alive connections, evenly spaced, latency from the scheduled time)"
echo "   server_le_*: share of these reviews the server itself answered within 1 ms / 2.5 ms"
echo "   runnable: mean number of runnable tasks on the machine during the run (2 CPUs; this
   benchmark's own client and server threads included)"
for r in $rate $((rate / 2)); do
  histogram >"$work/h0"
  (while :; do sed -n 's/^procs_running //p' /proc/stat; sleep 0.5; done) >"$work/runnable" &
  sampler=$!
  t0=$(server_ticks)
  line=$(${CLIENT_CPUS:+taskset -c "$CLIENT_CPUS"} "$build/ratelat" "$url" "$work/certs/ca.crt" "$work/review.json" "$r" "$secs" "${CLIENT_THREADS:-8}" | grep '^RESULT')
  t1=$(server_ticks)
  kill "$sampler"
  wait "$sampler" 2>/dev/null || true
  histogram >"$work/h1"
  server_share=$(paste "$work/h0" "$work/h1" | awk '
    { d[$1] = $4 - $2 } END { printf "server_le_1ms=%.3f%% server_le_2.5ms=%.3f%%",
      100 * d["0.001"] / d["+Inf"], 100 * d["0.0025"] / d["+Inf"] }')
  runnable=$(awk '{ s += $1; n++ } END { if (n) printf "%.1f", s / n }' "$work/runnable")
  echo "${line#RESULT } server_cpu_us_per_review=$(awk -v d=$((t1 - t0)) -v hz="$hz" -v n="$r" \
    -v s="$secs" 'BEGIN { printf "%.1f", d / hz * 1e6 / (n * s) }') $server_share runnable=$runnable"
done

echo "== server memory: $(grep -E 'VmHWM' /proc/$server_pid/status | tr -s ' \t' ' ') (peak RSS)"
echo "== load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
curl -fs "http://127.0.0.1:$hport/metrics" | grep -E '^leasefence_requests_total' | sed 's/^/   /'
