#!/usr/bin/env bash
# The deeper search: the configurations in which the properties must hold,
# with larger bounds than the ctest run (three electors, four tenures, the
# Lease re-created). Runs at low priority (nice 10); prints the machine, spin's
# version and, per run, states, depth, memory and seconds. Its figures are
# quoted in docs/protocol.md (section "The protocol, model-checked").
#
#   tests/model/deep.sh            every deep run
#   tests/model/deep.sh NAME...    the named ones
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; $(spin -V 2>&1 | head -1); $(gcc --version | head -1)"
exec nice -n 10 "$here/check.sh" --deep "$@"
