#!/usr/bin/env bash
# Runs every test of leasefence: the C unit, fuzz-replay, certificate and
# server tests (ctest), the Go helper's and the controller-runtime
# integration's tests, the example operator's, and the end-to-end tests on a
# real control plane built from pinned Go modules.
#
#   ./test.sh              everything
#   ./test.sh --sanitize   the C tests again under AddressSanitizer + UBSan
#   ./test.sh --no-e2e     skip the end-to-end tests (no Kubernetes build)
set -uo pipefail
cd "$(dirname "$0")"

sanitize=0
e2e=1
for arg in "$@"; do
  case "$arg" in
    --sanitize) sanitize=1 ;;
    --no-e2e) e2e=0 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "test.sh: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done

./setup.sh || exit 1

passed=0
failed=0
failures=()
step() { # step NAME COMMAND...: runs one suite and counts it
  local name="$1"; shift
  echo
  echo "=== $name"
  if "$@"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    failures+=("$name")
  fi
}

jobs=$(nproc)
werror=OFF
[ "${CI:-}" = "true" ] && werror=ON

if [ "$sanitize" = 1 ]; then
  build=build-sanitize
  step "configure (ASan+UBSan)" cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug \
    -DLF_ASAN=ON -DLF_UBSAN=ON -DLF_WERROR="$werror"
  step "build (ASan+UBSan)" cmake --build "$build" -j"$jobs"
  # The valgrind test is meaningless under ASan; everything else runs.
  step "C tests under ASan+UBSan" env ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$build" --output-on-failure -j"$jobs" -LE valgrind
else
  build=build
  step "configure" cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLF_WERROR="$werror"
  step "build" cmake --build "$build" -j"$jobs"
  step "C tests (unit, fuzz replay, certs, server)" \
    ctest --test-dir "$build" --output-on-failure -j"$jobs"
  if [ -f fencing/go/go.mod ]; then
    step "Go helper tests" bash -c 'cd fencing/go && go vet ./... && go test -count=1 ./...'
  fi
  if [ -x fencing/go/crfencing/test-versions.sh ]; then
    step "controller-runtime integration (v0.24 and v0.25)" fencing/go/crfencing/test-versions.sh
  fi
  if [ -f examples/operator/go.mod ]; then
    step "example operator" bash -c 'cd examples/operator && go vet ./... && go test -count=1 ./...'
  fi
  if [ "$e2e" = 1 ] && [ -x e2e/run-tests.sh ]; then
    step "end-to-end tests (real kube-apiserver)" env LF_BUILD_DIR="$PWD/$build" e2e/run-tests.sh
  fi
fi

echo
if [ "$failed" -gt 0 ]; then
  printf 'failed: %s\n' "${failures[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
