#!/bin/bash
# Scratch upper bound: data_keys WITHOUT ROWID (W) against the head (L = 78d07f8), creates.
cd "$(dirname "$0")"
run() { /work/s55/bin/$1 bench -subjects 2000 -duration 5s -workloads create -c 16,64 -json $2.json > $2.txt 2>&1; }
for i in 1 2 3 4 5 6; do
  if [ $((i % 2)) = 1 ]; then run clen L$i; run dkwr W$i
  else run dkwr W$i; run clen L$i; fi
done
echo done > loop.done
