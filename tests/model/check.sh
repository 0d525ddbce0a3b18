#!/usr/bin/env bash
# Model-checks leasefence.pml with spin: every configuration in which the
# properties must hold is searched exhaustively within its bounds, and every
# configuration that switches a defence off (or enters a documented limit)
# must make spin find the named counterexample.
#
#   tests/model/check.sh          the bounded search run by ctest (./test.sh)
#   tests/model/check.sh --deep   larger bounds (tests/model/deep.sh)
#   tests/model/check.sh NAME...  only the named runs (of either set)
#
# Prints one line per run: name, outcome, states stored, depth reached,
# memory, seconds. Exits non-zero if any run's outcome is not the expected
# one, or if a search that must hold did not complete.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
model="$here/leasefence.pml"

for tool in spin gcc; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "check.sh: $tool is required (./setup.sh installs it)" >&2
    exit 2
  fi
done

deep=0
only=()
for arg in "$@"; do
  case "$arg" in
    --deep) deep=1 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "check.sh: unknown option $arg" >&2; exit 2 ;;
    *) only+=("$arg") ;;
  esac
done

work=$(mktemp -d "${TMPDIR:-/tmp}/leasefence-model.XXXXXX")
trap 'rm -rf "$work"' EXIT

# pan's memory bound (MiB) and search-depth bound: a search that reaches
# either does not complete, and a run that must hold then fails.
memlim=${LF_MODEL_MEMLIM:-4096}
maxdepth=${LF_MODEL_DEPTH:-500000}
# The bounded runs are small: an unoptimised verifier builds in a fraction
# of the time and runs them about as fast. The deep runs are optimised.
copt=-O0
cflags=
if [ "$deep" = 1 ]; then
  copt=-O2
  cflags=-DCOLLAPSE # compressed state vectors: more states in memory
fi

failed=0
printf '%-26s %-24s %12s %8s %9s %8s\n' run outcome states depth MiB seconds

# run NAME EXPECT SPIN-FLAGS...: EXPECT is "holds" or the name of the
# property spin must find violated (as the model prints it).
run() {
  local name="$1" expect="$2"
  shift 2
  if [ "${#only[@]}" -gt 0 ]; then
    local o match=0
    for o in "${only[@]}"; do [ "$o" = "$name" ] && match=1; done
    [ "$match" = 1 ] || return 0
  fi
  local d="$work/$name"
  mkdir -p "$d"
  cp "$model" "$d/leasefence.pml"
  if ! (cd "$d" && spin -a "$@" leasefence.pml >spin.log 2>&1 &&
        gcc -w "$copt" $cflags -DSAFETY -DNOFAIR -DMEMLIM="$memlim" -o pan pan.c >>spin.log 2>&1); then
    echo "$name: could not build the verifier:" >&2
    cat "$d/spin.log" >&2
    failed=$((failed + 1))
    return
  fi
  local start end secs
  start=$(date +%s.%N)
  (cd "$d" && ./pan -m"$maxdepth" -E >pan.out 2>&1)
  end=$(date +%s.%N)
  secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
  local out="$d/pan.out"
  local states depth mem outcome ok=0
  states=$(sed -n 's/^ *\([0-9][0-9.e+]*\) states, stored.*/\1/p' "$out" | head -1)
  depth=$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' "$out" | head -1)
  mem=$(sed -n 's/^ *\([0-9.]*\)[[:space:]]*total actual memory usage.*/\1/p' "$out" | head -1)
  if [ -f "$d/leasefence.pml.trail" ]; then
    local prop
    prop=$(cd "$d" && spin -t "$@" leasefence.pml 2>/dev/null |
           sed -n 's/.*property \([A-Za-z0-9-]*\) violated.*/\1/p' | head -1)
    outcome="violates ${prop:-?}"
    [ "$expect" != holds ] && [ "$prop" = "$expect" ] && ok=1
  elif grep -q 'errors: 0' "$out" && ! grep -qE 'max search depth too small|Search not completed|out of memory' "$out"; then
    outcome="holds"
    [ "$expect" = holds ] && ok=1
  else
    outcome="incomplete"
  fi
  printf '%-26s %-24s %12s %8s %9s %8s\n' "$name" "$outcome" "${states:-?}" "${depth:-?}" "${mem:-?}" "$secs"
  if [ "$ok" != 1 ]; then
    echo "  expected: $expect (spin flags: $*); pan said:" >&2
    grep -E 'error|violated|errors:|depth too small|memory' "$out" | head -5 | sed 's/^/    /' >&2
    failed=$((failed + 1))
  fi
}

if [ "$deep" = 0 ]; then
  # The properties hold: client-go electors, strong Lease reads, fail
  # closed. And G2 is a second line there: rules 18-19 never decide.
  run strong                 holds -DG2_IDLE -DMAXTEN=3 -DMAXUID=1 -DMAXOTHER=1
  run strong-recreated       holds -DG2_IDLE -DMAXTEN=2 -DMAXUID=2 -DNO_OTHERS
  run coordinated            holds -DG2_IDLE -DCOORDINATED -DMAXTEN=3 -DMAXUID=1 -DNO_OTHERS
  # Failing open: G1 and NA-read are waived by design; G2 holds. (G6 and
  # NA-order: the limits below.)
  run fail-open-g2           holds -DFAIL_OPEN -DSKIP_G6 -DSKIP_NA_ORDER -DMAXTEN=3 -DMAXUID=2 -DNO_OTHERS
  # The watch cache: G1 (on the copy the webhook used), G2 and NA-order
  # hold while nobody erases the stored stamp; NA-read and G6: limits below.
  run cached                 holds -DCACHED -DSKIP_NA_READ -DSKIP_G6 -DOTHERS_KEEP_STAMP -DMAXTEN=3 -DMAXUID=1 -DMAXOTHER=1
  # Non-vacuity: each defence switched off, spin finds the split brain.
  run no-lease-check         G1       -DNO_LEASE_CHECK -DMAXTEN=3 -DMAXUID=1
  run no-g2-fail-open        G2       -DNO_G2 -DFAIL_OPEN -DSKIP_G6 -DMAXTEN=3 -DMAXUID=1
  run cached-g2-decides      G2-idle  -DG2_IDLE -DCACHED -DSKIP_NA_READ -DSKIP_G6 -DMAXTEN=3 -DMAXUID=1 -DNO_OTHERS
  run stored-stamp-only      NA-read  -DSTORED_STAMP -DMAXTEN=3 -DMAXUID=1
  run others-unchecked       G6       -DOTHERS_UNCHECKED -DMAXTEN=3 -DMAXUID=1
  # Pod-bound identities alone do not make a carried stamp safe: the same
  # pod's request from an earlier tenure carries its later tenure's stamp.
  run stored-stamp-identity  NA-read  -DSTORED_STAMP -DIDENTITY -DMAXTEN=3 -DMAXUID=1
  # Documented limits: spin shows each.
  run limit-aba              NA-read  -DCOORDINATED -DABA -DMAXTEN=3 -DMAXUID=1
  run limit-fail-open-g6     G6       -DFAIL_OPEN -DMAXTEN=3 -DMAXUID=1
  run limit-fail-open-order  NA-order -DFAIL_OPEN -DSKIP_G6 -DMAXTEN=3 -DMAXUID=2 -DNO_OTHERS
  # Identity fencing without stamps: a pod that lost the Lease and won it
  # back sends a write of its earlier tenure (docs/protocol.md 7a.1).
  run limit-identity-fencing NA-read  -DIDENTITY_FENCING -DMAXTEN=3 -DMAXUID=1 -DNO_OTHERS
  run limit-cached-read      NA-read  -DCACHED -DMAXTEN=3 -DMAXUID=1
  run limit-cached-g6        G6       -DCACHED -DSKIP_NA_READ -DMAXTEN=3 -DMAXUID=1
  run limit-cached-order     NA-order -DCACHED -DSKIP_NA_READ -DSKIP_G6 -DMAXTEN=3 -DMAXUID=1
else
  run deep-strong            holds -DG2_IDLE -DMAXTEN=4 -DMAXUID=2 -DMAXOTHER=1
  run deep-strong-3          holds -DG2_IDLE -DNE=3 -DMAXTEN=4 -DMAXUID=1 -DMAXOTHER=1
  run deep-coordinated       holds -DG2_IDLE -DCOORDINATED -DMAXTEN=4 -DMAXUID=1 -DMAXOTHER=1
  run deep-coordinated-3     holds -DG2_IDLE -DCOORDINATED -DNE=3 -DMAXTEN=3 -DMAXUID=1 -DNO_OTHERS
  run deep-fail-open-g2      holds -DFAIL_OPEN -DSKIP_G6 -DSKIP_NA_ORDER -DMAXTEN=4 -DMAXUID=2 -DNO_OTHERS
  run deep-cached            holds -DCACHED -DSKIP_NA_READ -DSKIP_G6 -DOTHERS_KEEP_STAMP -DMAXTEN=4 -DMAXUID=1 -DMAXOTHER=1
fi

[ "$failed" -eq 0 ] || { echo "check.sh: $failed run(s) did not give the expected outcome" >&2; exit 1; }
