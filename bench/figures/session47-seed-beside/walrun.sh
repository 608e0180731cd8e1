#!/bin/bash
# walrun.sh BIN TAG N: reads at c=16 for 100 s on the 1M store (DATA), custos seed of N
# customers beside it from 7 s in, the WAL's size each second (stall.sh of session 46)
BIN=$1; TAG=$2; N=$3
DUR=${DUR:-100s} WALSECS=${WALSECS:-100} SECOND="seed -subjects $N -records 0 -seed $RANDOM -no-plans -quiet" \
  exec "$(dirname "$0")/../session46-turns/stall.sh" "$BIN" "$TAG"
