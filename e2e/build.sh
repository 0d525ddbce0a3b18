#!/usr/bin/env bash
# Builds the pinned cluster for the e2e tests: kube-apiserver, kubectl, etcd,
# kube-controller-manager and kube-scheduler from the versions pinned in
# e2e/go.mod and e2e/go.sum, and kwok (simulated nodes) from its own module in
# e2e/tools/kwok, with kwok's stage definitions beside it (kwok-stages.yaml).
#
# The binaries go to ${LEASEFENCE_CACHE:-$HOME/.cache/leasefence}/k8s-<hash>/,
# where <hash> covers both modules' go.mod and go.sum, so they are reused
# between runs and rebuilt only when the pins change. Progress goes to stderr;
# the one line on stdout is the folder that holds the binaries, so callers can do
#   bin_dir=$(e2e/build.sh)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${LEASEFENCE_CACHE:-$HOME/.cache/leasefence}

say() { printf 'build.sh: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

command -v go >/dev/null 2>&1 ||
	die "no Go toolchain on PATH: install Go 1.26 or newer (see e2e/README.md)"

# A toolchain download is not possible here; fail clearly on an old Go instead.
export GOTOOLCHAIN=local
# -mod=mod would let a build silently rewrite go.mod; the pins are the point.
export GOFLAGS="-buildvcs=false"

kwok_mod="$here/tools/kwok"
# package cluster computes the same hash (DefaultBinDir): keep the two in step.
hash=$(cat "$here/go.mod" "$here/go.sum" "$kwok_mod/go.mod" "$kwok_mod/go.sum" | sha256sum | cut -c1-16)
bin_dir="$cache_root/k8s-$hash"
binaries=(kube-apiserver kubectl etcd kube-controller-manager kube-scheduler kwok)

complete=1
for b in "${binaries[@]}"; do
	[[ -x "$bin_dir/$b" ]] || complete=0
done
if [[ $complete == 1 && -f "$bin_dir/.complete" ]]; then
	say "reusing binaries in $bin_dir"
	echo "$bin_dir"
	exit 0
fi

mkdir -p "$cache_root"
# One build per pin set at a time: a second run waits, then reuses the result.
exec 9>"$cache_root/.lock-$hash"
if ! flock -n 9; then
	say "another build of $bin_dir is running; waiting for it"
	flock 9
fi
if [[ -f "$bin_dir/.complete" ]]; then
	say "reusing binaries in $bin_dir"
	echo "$bin_dir"
	exit 0
fi
log="$cache_root/build-$hash.log"
: >"$log"

cd "$here"
k8s_version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes 2>>"$log") ||
	die "cannot read the k8s.io/kubernetes pin from e2e/go.mod; see $log"
etcd_version=$(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3 2>>"$log") ||
	die "cannot read the etcd pin from e2e/go.mod; see $log"
kwok_version=$(cd "$kwok_mod" && go list -m -f '{{.Version}}' sigs.k8s.io/kwok 2>>"$log") ||
	die "cannot read the kwok pin from e2e/tools/kwok/go.mod; see $log"
major=${k8s_version#v}
major=${major%%.*}
minor=${k8s_version#v*.}
minor=${minor%%.*}

# The same stamps hack/lib/version.sh sets, so `kubectl version` reports the pin
# for both the client and the server.
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$k8s_version"
	ldflags+=" -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
	ldflags+=" -X $pkg.gitTreeState=clean"
done

# Build into a fresh folder and rename it at the end, so an interrupted build
# never leaves a half-filled folder that a later run would trust.
tmp_dir=$(mktemp -d "$cache_root/.build-$hash.XXXXXX")
trap 'rm -rf "$tmp_dir"; [[ -n "${ticker:-}" ]] && kill "$ticker" 2>/dev/null || true' EXIT

say "building Kubernetes $k8s_version, etcd $etcd_version and kwok $kwok_version into $bin_dir"
say "a cold build takes several minutes; build log: $log"
start=$(date +%s)
for b in "${binaries[@]}"; do
	case $b in
	kube-apiserver) pkg=k8s.io/kubernetes/cmd/kube-apiserver ;;
	kubectl) pkg=k8s.io/kubernetes/cmd/kubectl ;;
	etcd) pkg=go.etcd.io/etcd/server/v3 ;;
	kube-controller-manager) pkg=k8s.io/kubernetes/cmd/kube-controller-manager ;;
	kube-scheduler) pkg=k8s.io/kubernetes/cmd/kube-scheduler ;;
	kwok) pkg=sigs.k8s.io/kwok/cmd/kwok ;;
	esac
	# kwok builds in its own module, with its own k8s.io/* versions; its
	# version is compiled in (pkg/consts), so it takes no Kubernetes stamps.
	mod_dir=$here flags=$ldflags
	[[ $b == kwok ]] && mod_dir=$kwok_mod flags="-s -w"
	t0=$(date +%s)
	say "building $b ($pkg)"
	# Report progress while the compiler is busy, so a long cold build is visibly alive.
	# (9>&-: the ticker must not hold the build lock after it is killed.)
	(while sleep 30; do say "  still building $b: $(($(date +%s) - t0))s"; done) 9>&- &
	ticker=$!
	echo "== go build $pkg" >>"$log"
	if ! (cd "$mod_dir" && go build -trimpath -ldflags "$flags" -o "$tmp_dir/$b" "$pkg") >>"$log" 2>&1 9>&-; then
		kill "$ticker" 2>/dev/null || true
		tail -n 20 "$log" >&2
		die "building $b failed; full log: $log"
	fi
	kill "$ticker" 2>/dev/null || true
	ticker=
	say "built $b in $(($(date +%s) - t0))s"
done

# kwok's stages, as kwokctl gives its nodes by default (node-initialize,
# node-heartbeat-with-lease, pod-ready, pod-complete, pod-delete), copied
# from the pinned module so they match the binary.
kwok_src=$(cd "$kwok_mod" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok 2>>"$log") ||
	die "cannot find the kwok module's source; see $log"
stages=(node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
	pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml)
for st in "${stages[@]}"; do
	printf -- '---\n'
	cat "$kwok_src/kustomize/stage/$st" || die "kwok stage $st missing in $kwok_src"
done >"$tmp_dir/kwok-stages.yaml"

printf 'kubernetes %s\netcd %s\nkwok %s\n' "$k8s_version" "$etcd_version" "$kwok_version" >"$tmp_dir/VERSIONS"
touch "$tmp_dir/.complete"
rm -rf "$bin_dir"
mv "$tmp_dir" "$bin_dir"
say "done in $(($(date +%s) - start))s: $bin_dir"
echo "$bin_dir"
