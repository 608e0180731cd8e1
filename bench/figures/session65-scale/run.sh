#!/bin/bash
# Scale target: the forty-third session's run.sh, primed first, then cold:
# three pairs of -reuse read runs at c=16 on the 10M and 10k stores each,
# alternating which store goes first; then -scale.
# The stores were seeded first (seed-10m.txt, seed-10k.txt):
#   BIN seed -data BIG -subjects 10000000 -records 0 -seed 7 -no-plans
#   BIN seed -data SMALL -subjects 10000 -records 0 -seed 7 -no-plans -quiet
# BIN: the custos binary; BIG, SMALL: the two data directories; OUT: where to write.
set -u
: "${BIN:?}" "${BIG:?}" "${SMALL:?}"
export BIN BIG SMALL OUT=${OUT:-.} VARIANTS="primed cold"
exec "$(dirname "$0")/../session43-scale/run.sh"
