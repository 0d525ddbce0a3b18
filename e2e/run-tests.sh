#!/usr/bin/env bash
# Runs the e2e tests against a real kube-apiserver and etcd: builds the pinned
# binaries (or reuses them, see build.sh), then runs go test in e2e/ with
# LF_KUBE_BIN_DIR pointing at them. Extra arguments go to go test, e.g.
#   e2e/run-tests.sh -run TestPodIdentity -v
# The exit code is go test's.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin_dir=$("$here/build.sh")
export LF_KUBE_BIN_DIR=$bin_dir
export GOTOOLCHAIN=local
cd "$here"
echo "run-tests.sh: go test with LF_KUBE_BIN_DIR=$bin_dir" >&2
set +e
go test -count=1 -timeout 30m "$@" ./...
status=$?
set -e
exit "$status"
