#!/bin/bash
# Content-Length on every answer (L) against the head (H), reads and lookups.
cd "$(dirname "$0")"
run() { /work/s55/bin/$1 bench -subjects 2000 -duration 5s -workloads read,lookup -c 16,64 -json $2.json > $2.txt 2>&1; }
for i in 1 2 3 4 5 6; do
  if [ $((i % 2)) = 1 ]; then run head H$i; run clen L$i
  else run clen L$i; run head H$i; fi
done
echo done > loop.done
