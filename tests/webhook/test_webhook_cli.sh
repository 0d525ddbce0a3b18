#!/usr/bin/env bash
# The command line of leasefence-webhook: --help and --version exit 0 and
# list every flag with its default; a bad flag, a bad value or an unreadable
# file exits 2 with one message on stderr.
# Usage: test_webhook_cli.sh <leasefence-webhook> <certs tool>
set -uo pipefail
bin=$1
certs=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fails=0

fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

mkdir -p "$work/certs"
"$certs" all --dir "$work/certs" --service s --namespace n --ip 127.0.0.1 >/dev/null || exit 1
mkdir -p "$work/leases"
good=(--tls-cert-file "$work/certs/tls.crt" --tls-private-key-file "$work/certs/tls.key"
      --lease-source "file:$work/leases" --bind-address 127.0.0.1 --health-bind-address 127.0.0.1)

# --help: exit 0, every flag listed, defaults shown.
out=$("$bin" --help) || fail "--help exited $?"
for flag in --port --bind-address --path --tls-cert-file --tls-private-key-file --client-ca-file \
            --tls-min-version --max-request-bytes --max-connections --idle-timeout --threads \
            --shutdown-timeout --health-port --health-bind-address --log-level -v --mode \
            --lease-source --lease-timeout --cert-poll-interval --identity-binding \
            --clock-skew-tolerance --on-lease-unavailable --exempt-user --exempt-group \
            --help --version; do
  grep -q -- "^  $flag" <<<"$out" || fail "--help does not list $flag"
done
for def in "(default 8443)" "(default 8081)" "(default 7Mi)" "(default when-present)" \
           "(default 2s)" "(default deny)" "(default 10s)" "(default 1.2)"; do
  grep -qF -- "$def" <<<"$out" || fail "--help does not show $def"
done

out=$("$bin" --version) || fail "--version exited $?"
grep -q "^leasefence-webhook [0-9]" <<<"$out" || fail "--version printed: $out"

# expect_2 <what> <args...>: exit code 2 and exactly one line on stderr.
expect_2() {
  local what=$1
  shift
  "$bin" "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  [ "$rc" -eq 2 ] || fail "$what: exit code $rc, want 2"
  [ "$(wc -l <"$work/err")" -eq 1 ] || fail "$what: stderr is not one line: $(cat "$work/err")"
  [ -n "$(grep 'leasefence-webhook: ' "$work/err")" ] || fail "$what: no message"
}

expect_2 "unknown flag" "${good[@]}" --no-such-flag
expect_2 "bad mode" "${good[@]}" --mode=maybe
expect_2 "bad port" "${good[@]}" --port=99999
expect_2 "bad duration" "${good[@]}" --clock-skew-tolerance=soon
expect_2 "bad identity binding" "${good[@]}" --identity-binding=sometimes
expect_2 "bad tls version" "${good[@]}" --tls-min-version=1.0
expect_2 "missing value" "${good[@]}" --port
expect_2 "no certificate flags" --lease-source "file:$work/leases"
expect_2 "unreadable certificate" "${good[@]}" --tls-cert-file "$work/nope.crt"
expect_2 "key of another pair" "${good[@]}" --tls-private-key-file "$work/certs/ca.key"
expect_2 "not a certificate" "${good[@]}" --tls-cert-file "$work/certs/tls.key"
expect_2 "missing lease dir" "${good[@]}" --lease-source "file:$work/none"
expect_2 "unknown lease source" "${good[@]}" --lease-source "etcd:x"
expect_2 "unreadable kubeconfig" "${good[@]}" --lease-source kube --kubeconfig "$work/nope.kubeconfig"
expect_2 "bad cache staleness" "${good[@]}" --cache-max-staleness=-1s
expect_2 "unreadable client CA" "${good[@]}" --client-ca-file "$work/nope.pem"
expect_2 "client CA not PEM" "${good[@]}" --client-ca-file "$work/certs/tls.key"

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed" >&2
  exit 1
fi
echo "all command-line checks passed"
