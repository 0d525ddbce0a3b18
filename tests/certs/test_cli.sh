#!/bin/sh
# test_cli.sh BINARY: runs the built leasefence-certs and checks its exit
# codes, its messages, and its output with the openssl command, which shares
# no code with it beyond libcrypto.
set -u

BIN=${1:?usage: test_cli.sh path/to/leasefence-certs}
WORK=$(mktemp -d /tmp/lfc-cli-XXXXXX) || exit 1
trap 'rm -rf "$WORK"' EXIT INT TERM
D=$WORK/d
mkdir "$D"
FAILS=0

fail() {
  echo "FAIL: $*" >&2
  FAILS=$((FAILS + 1))
}

# expect CODE ARGS...: runs the tool, keeps its output in $WORK/out and
# $WORK/err, and checks the exit code. No output may ever hold a key.
expect() {
  want=$1
  shift
  "$BIN" "$@" >"$WORK/out" 2>"$WORK/err"
  got=$?
  if [ "$got" -ne "$want" ]; then
    fail "'$*' exited $got, want $want; stderr: $(cat "$WORK/err")"
  fi
  if grep -q "PRIVATE KEY" "$WORK/out" "$WORK/err"; then
    fail "'$*' printed a private key"
  fi
  if [ "$want" -ne 0 ]; then
    lines=$(wc -l <"$WORK/err")
    if [ "$lines" -ne 1 ]; then
      fail "'$*' wrote $lines lines to stderr, want one"
    fi
  fi
}

# err_has TEXT: the last command's stderr contains TEXT.
err_has() {
  grep -qF -- "$1" "$WORK/err" || fail "stderr lacks '$1': $(cat "$WORK/err")"
}

# --- Help lists every flag with its default -------------------------------
expect 0 --help
grep -q "rotate" "$WORK/out" || fail "--help does not list rotate"
for cmd in ca serving rotate client ca-bundle all; do
  expect 0 "$cmd" --help
  grep -q -- "--dir DIR" "$WORK/out" || fail "$cmd --help lacks --dir"
  grep -q -- "(default \." "$WORK/out" || fail "$cmd --help lacks dir default"
done
expect 0 serving --help
for flag in --service --namespace --dns --ip --days --key-type --cn --org; do
  grep -q -- "$flag" "$WORK/out" || fail "serving --help lacks $flag"
done
grep -q "default 365" "$WORK/out" || fail "serving --help lacks days default"
expect 0 ca --help
grep -q "default 3650" "$WORK/out" || fail "ca --help lacks days default"
expect 0 client --help
grep -q -- "--out-prefix" "$WORK/out" || fail "client --help lacks --out-prefix"

# --- Usage errors: exit 2, one line -----------------------------------------
expect 2
expect 2 frobnicate
err_has "unknown command"
expect 2 ca --dir "$D" --bogus
err_has "unknown flag --bogus"
expect 2 serving --dir "$D" --namespace leasefence
err_has "--service is required"
expect 2 serving --dir "$D" --service
err_has "missing value"
expect 2 ca --dir "$D" --days abc
err_has "--days"
expect 2 ca --dir "$D" --key-type ed25519
err_has "unknown key type"
expect 2 ca --dir "$D" extra
err_has "unexpected argument"
expect 2 ca --dir "$D" --cn a --cn b
err_has "given twice"
expect 2 client --dir "$D"
err_has "--cn is required"
expect 2 serving --dir "$D" --service leasefence-webhook --namespace leasefence
err_has "ca.crt"
expect 2 ca-bundle --dir "$D"
err_has "ca.crt"
expect 2 rotate --dir "$D" --service x
err_has "go together"

# --- The one-shot, for the webhook on 127.0.0.1 -----------------------------
expect 0 all --dir "$D" --service leasefence-webhook --namespace leasefence \
  --ip 127.0.0.1 --ip ::1 --dns webhook.example.com
for f in ca.crt ca.key tls.crt tls.key; do
  [ -f "$D/$f" ] || fail "all did not write $f"
done
for f in ca.key tls.key; do
  mode=$(stat -c %a "$D/$f")
  [ "$mode" = 600 ] || fail "$f has mode $mode, want 600"
done
openssl verify -CAfile "$D/ca.crt" "$D/tls.crt" >/dev/null 2>&1 ||
  fail "openssl verify tls.crt"
openssl verify -purpose sslserver -CAfile "$D/ca.crt" "$D/tls.crt" \
  >/dev/null 2>&1 || fail "openssl verify -purpose sslserver"
san=$(openssl x509 -in "$D/tls.crt" -noout -ext subjectAltName | tail -n +2 |
  sed 's/^ *//')
want="DNS:leasefence-webhook.leasefence.svc, DNS:leasefence-webhook.leasefence.svc.cluster.local, DNS:webhook.example.com, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1"
[ "$san" = "$want" ] || fail "subjectAltName is '$san', want '$want'"
openssl x509 -in "$D/tls.crt" -noout -ext extendedKeyUsage |
  grep -q "TLS Web Server Authentication" || fail "no serverAuth EKU"
openssl pkey -in "$D/tls.key" -noout -text 2>/dev/null | grep -q "prime256v1" ||
  fail "tls.key is not ECDSA P-256"

# A second run keeps the CA.
ca_before=$(openssl x509 -in "$D/ca.crt" -noout -fingerprint -sha256)
expect 0 all --dir "$D" --service leasefence-webhook --namespace leasefence \
  --ip 127.0.0.1
ca_after=$(openssl x509 -in "$D/ca.crt" -noout -fingerprint -sha256)
[ "$ca_before" = "$ca_after" ] || fail "all replaced an existing CA"
expect 2 ca --dir "$D"
err_has "--force"

# --- ca-bundle --------------------------------------------------------------
expect 0 ca-bundle --dir "$D"
[ "$(wc -l <"$WORK/out")" -eq 1 ] || fail "ca-bundle is not one line"
base64 -d <"$WORK/out" >"$WORK/bundle.pem" || fail "ca-bundle is not base64"
cmp -s "$WORK/bundle.pem" "$D/ca.crt" || fail "ca-bundle does not decode to ca.crt"

# --- rotate -----------------------------------------------------------------
serial_before=$(openssl x509 -in "$D/tls.crt" -noout -serial)
pub_before=$(openssl pkey -in "$D/tls.key" -pubout)
expect 0 rotate --dir "$D"
serial_after=$(openssl x509 -in "$D/tls.crt" -noout -serial)
pub_after=$(openssl pkey -in "$D/tls.key" -pubout)
[ "$serial_before" != "$serial_after" ] || fail "rotate kept the serial"
[ "$pub_before" != "$pub_after" ] || fail "rotate kept the key"
[ "$(openssl x509 -in "$D/tls.crt" -noout -pubkey)" = "$pub_after" ] ||
  fail "rotated tls.crt does not match tls.key"
openssl verify -CAfile "$D/ca.crt" "$D/tls.crt" >/dev/null 2>&1 ||
  fail "openssl verify after rotate"
openssl x509 -in "$D/tls.crt" -noout -ext subjectAltName |
  grep -q "IP Address:127.0.0.1" || fail "rotate lost the IP SAN"
[ "$(stat -c %a "$D/tls.key")" = 600 ] || fail "rotated tls.key is not 0600"
ls -A "$D" | grep -q '^\.' && fail "temporary files left in $D"
# Rotations racing each other still leave a matching pair: the renames are
# serialized by a lock on the directory.
i=0
while [ $i -lt 8 ]; do
  "$BIN" rotate --dir "$D" >/dev/null 2>&1 &
  i=$((i + 1))
done
wait
[ "$(openssl x509 -in "$D/tls.crt" -noout -pubkey)" = "$(openssl pkey -in "$D/tls.key" -pubout)" ] ||
  fail "concurrent rotations left a mismatched pair"
ls -A "$D" | grep -q '^\.' && fail "temporary files left after concurrent rotations"
expect 0 rotate --dir "$D" --key-type rsa-2048
openssl pkey -in "$D/tls.key" -noout -text 2>/dev/null | grep -q "2048 bit" ||
  fail "rotate --key-type rsa-2048 did not make an RSA 2048 key"

# --- client -----------------------------------------------------------------
expect 0 client --dir "$D" --cn admin --org system:masters
openssl verify -purpose sslclient -CAfile "$D/ca.crt" "$D/client.crt" \
  >/dev/null 2>&1 || fail "openssl verify client.crt"
openssl x509 -in "$D/client.crt" -noout -subject | grep -q "O = system:masters, CN = admin" ||
  fail "client subject: $(openssl x509 -in "$D/client.crt" -noout -subject)"
[ "$(stat -c %a "$D/client.key")" = 600 ] || fail "client.key is not 0600"
expect 0 client --dir "$D" --cn tester --out-prefix tester
[ -f "$D/tester.crt" ] && [ -f "$D/tester.key" ] || fail "--out-prefix"

# --- Bad values ---------------------------------------------------------------
expect 2 serving --dir "$D" --service leasefence-webhook --namespace leasefence \
  --ip 300.1.1.1
err_has "not an IPv4 or IPv6 address"
expect 2 serving --dir "$D" --service Bad_Name --namespace leasefence
err_has "DNS-1123"

# --- Machine failures: exit 1 -----------------------------------------------
expect 1 ca --dir "$WORK/no/such/dir"
err_has "cannot create"
if [ -w /dev/full ]; then
  "$BIN" ca-bundle --dir "$D" >/dev/full 2>/dev/null
  [ $? -eq 1 ] || fail "ca-bundle to a full stdout did not exit 1"
fi

if [ "$FAILS" -ne 0 ]; then
  echo "$FAILS check(s) failed" >&2
  exit 1
fi
echo "all CLI checks passed"
