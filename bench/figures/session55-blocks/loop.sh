#!/bin/bash
# The built change (G = 3284be3: audit blocks of 1,024 events, migration 0015) against
# the head before it (L = 78d07f8): reads, lookups, creates, a second series after the
# scratch build's (../block10).
cd "$(dirname "$0")"
run() { /work/s55/bin/$1 bench -subjects 2000 -duration 5s -workloads read,lookup,create -c 16,64 -json $2.json > $2.txt 2>&1; }
for i in 1 2 3 4 5 6; do
  if [ $((i % 2)) = 1 ]; then run blk G$i; run clen L$i
  else run clen L$i; run blk G$i; fi
done
echo done > loop.done
