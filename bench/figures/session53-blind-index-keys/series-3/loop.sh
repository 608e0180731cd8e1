#!/bin/bash
# third series: base (B) against both scratch changes (X), six pairs, alternating order
# BINDIR holds custos (the head) and custos-both (the head with both scratch patches)
BINDIR=$(realpath "${BINDIR:?set BINDIR}"); cd "$(dirname "$0")"
run() { $BINDIR/$1 bench -subjects 2000 -duration 5s -workloads create -c 16,64 -json $2.json > $2.txt 2>&1; }
for i in 1 2 3 4 5 6; do
  if [ $((i % 2)) = 1 ]; then run custos-both X$i; run custos B$i; else run custos B$i; run custos-both X$i; fi
done
echo done > loop.done
