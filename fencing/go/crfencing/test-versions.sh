#!/usr/bin/env bash
# Runs the tests of crfencing against each supported controller-runtime:
#   v0.24 (k8s.io/* v0.36): go.mod
#   v0.25 (k8s.io/* v0.37): go.cr025.mod (go test -modfile)
# Extra arguments go to go test, e.g. ./test-versions.sh -race -v
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
export GOTOOLCHAIN=local
for modfile in go.mod go.cr025.mod; do
	cr=$(go list -modfile="$modfile" -m -f '{{.Version}}' sigs.k8s.io/controller-runtime)
	k8s=$(go list -modfile="$modfile" -m -f '{{.Version}}' k8s.io/client-go)
	echo "test-versions.sh: controller-runtime $cr, k8s.io/client-go $k8s ($modfile)" >&2
	go vet -modfile="$modfile" ./...
	go test -modfile="$modfile" -count=1 "$@" ./...
done
