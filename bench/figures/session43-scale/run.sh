#!/bin/bash
# Scale target: -reuse read runs on the 10M and 10k stores, cold and primed,
# three pairs each, alternating which store goes first; then -scale.
# BIN, BIG, SMALL, OUT and VARIANTS default to what the forty-third session
# ran; the sixty-fifth session's run.sh sets them.
OUT=${OUT:-/work/s43/scale}; B=${BIN:-/tmp/custos}
BIG=${BIG:-/tmp/s43-10m}; SMALL=${SMALL:-/tmp/s43-10k}
cd "$OUT"
for variant in ${VARIANTS:-cold primed}; do
  extra=""; [ $variant = primed ] && extra="-prime"
  for i in 1 2 3; do
    order="big small"; [ $((i % 2)) = 0 ] && order="small big"
    for s in $order; do
      if [ $s = big ]; then d=$BIG; n=100000; else d=$SMALL; n=10000; fi
      $B bench -reuse -data $d -subjects $n -c 16 -duration 10s -workloads read -seed 11 $extra -quiet -json $variant-$s-$i.json > $variant-$s-$i.txt 2>&1
      echo "$variant $s $i rc=$?"
    done
  done
  $B bench -scale $variant-big-1.json,$variant-big-2.json,$variant-big-3.json -scale-small $variant-small-1.json,$variant-small-2.json,$variant-small-3.json -json scale-$variant.json > scale-$variant.txt 2>&1
  echo "$variant scale rc=$?"
done
