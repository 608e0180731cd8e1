#!/bin/bash
# The writer files the audit index one kind of entry a transaction, letting waiting
# requests in between (K), against the head (L = 78d07f8): reads, lookups, creates.
cd "$(dirname "$0")"
run() { /work/s55/bin/$1 bench -subjects 2000 -duration 5s -workloads read,lookup,create -c 16,64 -json $2.json > $2.txt 2>&1; }
for i in 1 2 3 4 5 6; do
  if [ $((i % 2)) = 1 ]; then run clen L$i; run kinds K$i
  else run kinds K$i; run clen L$i; fi
done
echo done > loop.done
