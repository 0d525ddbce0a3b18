#!/usr/bin/env bash
# Installs everything leasefence needs to build, test and run its demo on a
# fresh Debian machine. Idempotent: packages already present are not touched.
# Go modules (the real control plane for the end-to-end tests) are fetched by
# the Go toolchain itself when e2e/build.sh first runs.
set -euo pipefail

# One list, one place: every Debian package the project uses.
PACKAGES=(
  build-essential cmake pkg-config git
  libmicrohttpd-dev libgnutls28-dev   # webhook HTTPS server
  libjansson-dev                      # JSON
  libcurl4-openssl-dev                # Kubernetes API client, server tests
  libssl-dev                          # certs tool
  libyaml-dev                         # kubeconfig files
  libcmocka-dev                       # unit tests
  clang libclang-rt-14-dev            # libFuzzer harnesses, sanitizers
  clang-format                        # the C layout CI checks (.clang-format)
  valgrind                            # leak checks
  spin                                # the protocol's model check (tests/model)
  wrk nghttp2-client                  # benchmarks
  curl jq openssl procps psmisc iproute2
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
      echo "setup: need root (or sudo) to install: ${missing[*]}" >&2; exit 1
    fi
  fi
  export DEBIAN_FRONTEND=noninteractive
  if ! $SUDO apt-get update -qq >/tmp/leasefence-apt.log 2>&1 ||
     ! $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >>/tmp/leasefence-apt.log 2>&1; then
    echo "setup: could not install ${missing[*]}; see /tmp/leasefence-apt.log" >&2
    exit 1
  fi
fi

# Kubernetes v1.36 and the Go modules here declare go 1.26: older toolchains
# cannot build them, and GOTOOLCHAIN=local (e2e/build.sh) forbids a download.
if ! command -v go >/dev/null 2>&1; then
  echo "setup: the Go toolchain (1.26 or newer) is required and is not on PATH" >&2
  exit 1
fi
go_version=$(go env GOVERSION 2>/dev/null || true)
go_minor=${go_version#go1.}
go_minor=${go_minor%%.*}
if [[ ! $go_version =~ ^go1\.[0-9]+ ]] || [ "$go_minor" -lt 26 ]; then
  echo "setup: Go 1.26 or newer is required; found ${go_version:-an unknown version}" >&2
  exit 1
fi
echo "setup: all dependencies present"
