#!/usr/bin/env bash
# Measures the control plane as e2e/README.md reports it: time from start to
# ready, RSS of each process right after start and after an idle wait, and
# the time to stop. Usage: e2e/measure.sh [--full] [idle-seconds]
# --full measures the fuller cluster (kube-controller-manager, kube-scheduler
# and one kwok node too; ready once the node is Ready and the controllers run).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
full=()
if [[ ${1:-} == --full ]]; then
	full=(--full)
	shift
fi
idle=${1:-30}
bin_dir=$("$here/build.sh")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$here" && go build -o "$work/lfcluster" ./cmd/lfcluster)

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN {printf "%.2f", b - a}'; }
rss() { ps -o pid=,rss=,comm= -p "$1" | awk '{printf "%s %.1f MiB  ", $3, $2/1024; s+=$2} END {printf "total %.1f MiB\n", s/1024}'; }

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
t0=$(now)
"$work/lfcluster" up --dir "$work/cp" --bin-dir "$bin_dir" "${full[@]}" >"$work/out" 2>&1 &
lf=$!
until grep -q 'press Ctrl-C' "$work/out"; do
	if ! kill -0 "$lf" 2>/dev/null; then
		cat "$work/out" >&2
		exit 1
	fi
	sleep 0.05
done
echo "ready after $(since "$t0") s"
pids=$(sed -n 's/^pids: *etcd \([0-9]*\), kube-apiserver \([0-9]*\)$/\1,\2/p' "$work/out")
more=$(sed -n 's/^more pids: *kube-controller-manager \([0-9]*\), kube-scheduler \([0-9]*\), kwok \([0-9]*\)$/,\1,\2,\3/p' "$work/out")
pids+=$more
echo "RSS after start:  $(rss "$pids")"
sleep "$idle" # the point is to let it idle
echo "RSS after ${idle}s idle: $(rss "$pids")"
t0=$(now)
kill -INT "$lf"
wait "$lf"
echo "stopped after $(since "$t0") s"
