#!/bin/bash
# Upper bound: the SQLite writer never files the audit index (N) against the head (H).
cd "$(dirname "$0")"
run() { /work/s55/bin/$1 bench -subjects 2000 -duration 5s -workloads read,lookup,create -c 16,64 -json $2.json > $2.txt 2>&1; }
for i in 1 2 3 4; do
  if [ $((i % 2)) = 1 ]; then run head H$i; run nofile N$i
  else run nofile N$i; run head H$i; fi
done
echo done > loop.done
