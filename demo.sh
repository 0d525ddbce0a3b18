#!/usr/bin/env bash
# The leasefence demo: a real leader-election split brain on a real
# kube-apiserver, first without leasefence (the stale ex-leader's writes
# land), then with it (they are denied, with a message that says why): once
# with the controller unchanged (fenced by identity), once with it stamping
# its writes.
#
#   ./demo.sh          run it (first run: builds the Kubernetes binaries
#                      from pinned Go modules, minutes; see README.md)
#   ./demo.sh --keep   keep the logs (control plane, webhook, electors)
#
# It installs what it needs (./setup.sh), builds the C parts (cmake) and the
# Kubernetes binaries (e2e/build.sh, cached), then runs e2e/cmd/demo. Nothing
# is left running afterwards, also on Ctrl-C. The exit code is non-zero when
# the outcome is not the expected one: the demo is also a check.
set -euo pipefail
cd "$(dirname "$0")"
root=$PWD
logs=$(mktemp -d "${TMPDIR:-/tmp}/leasefence-demo-build.XXXXXX")
trap 'rm -rf "$logs"' EXIT

step() { # step WHAT LOG COMMAND...: quiet unless it fails
	local what=$1 log=$2
	shift 2
	printf '%-48s' "$what"
	local t=$SECONDS
	if "$@" >"$log" 2>&1; then
		printf 'done (%ds)\n' "$((SECONDS - t))"
	else
		printf 'FAILED\n\n'
		tail -n 30 "$log" >&2
		exit 1
	fi
}

step "installing what is missing (setup.sh)" "$logs/setup.log" ./setup.sh
step "building the C parts (cmake)" "$logs/cmake.log" \
	bash -c 'cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo && cmake --build build -j"$(nproc)"'
step "Kubernetes binaries (e2e/build.sh)" "$logs/k8s.log" bash -c 'e2e/build.sh >"$0"' "$logs/bindir"
step "building the demo" "$logs/demo-build.log" \
	bash -c 'cd e2e && GOTOOLCHAIN=local go build -o "$0" ./cmd/demo' "$root/build/e2e-demo/lf-demo"
echo

export LF_BUILD_DIR="$root/build"
LF_KUBE_BIN_DIR=$(cat "$logs/bindir")
export LF_KUBE_BIN_DIR
cd e2e
# Not exec: the trap removes the build logs afterwards. Ctrl-C reaches the
# demo too, which stops everything it started.
set +e
"$root/build/e2e-demo/lf-demo" "$@"
status=$?
set -e
exit "$status"
