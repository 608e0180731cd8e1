#!/bin/bash
# Scratch: audit blocks of 1,024 events, a filing's chunk, so that a filing appends (B),
# against the head (L = 78d07f8): reads, lookups, creates.
cd "$(dirname "$0")"
run() { /work/s55/bin/$1 bench -subjects 2000 -duration 5s -workloads read,lookup,create -c 16,64 -json $2.json > $2.txt 2>&1; }
for i in 1 2 3 4 5 6; do
  if [ $((i % 2)) = 1 ]; then run clen L$i; run block10 B$i
  else run block10 B$i; run clen L$i; fi
done
echo done > loop.done
