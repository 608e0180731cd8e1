#!/bin/bash
# Scale target: -reuse read runs on the 10M and 10k stores, primed and cold,
# three pairs each, alternating which store goes first; then -scale.
# The stores were seeded first (seed.txt):
#   BIN seed -data BIG -subjects 10000000 -records 0 -seed 7 -no-plans
#   BIN seed -data SMALL -subjects 10000 -records 0 -seed 7 -no-plans -quiet
# BIN: the custos binary; BIG, SMALL: the two data directories; OUT: where to write.
set -u
BIN=${BIN:?}; BIG=${BIG:?}; SMALL=${SMALL:?}; OUT=${OUT:-.}
cd "$OUT"
for variant in primed cold; do
  extra=""; [ $variant = primed ] && extra="-prime"
  for i in 1 2 3; do
    order="big small"; [ $((i % 2)) = 0 ] && order="small big"
    for s in $order; do
      if [ $s = big ]; then d=$BIG; n=100000; else d=$SMALL; n=10000; fi
      $BIN bench -reuse -data $d -subjects $n -c 16 -duration 10s -workloads read -seed 11 $extra -quiet -json $variant-$s-$i.json > $variant-$s-$i.txt 2>&1
      echo "$variant $s $i rc=$?"
    done
  done
  $BIN bench -scale $variant-big-1.json,$variant-big-2.json,$variant-big-3.json -scale-small $variant-small-1.json,$variant-small-2.json,$variant-small-3.json -json scale-$variant.json > scale-$variant.txt 2>&1
  echo "$variant scale rc=$?"
done
