#!/bin/bash
# creates at c=16 and c=64 on SQLite: secure_delete OFF (A, a scratch build) against ON (B, the head)
OFF=$(realpath "$1"); HEAD=$(realpath "$2"); cd "$(dirname "$0")"
for i in 1 2 3 4; do
  $OFF bench -subjects 2000 -duration 5s -workloads create,update -c 16,64 -json A$i.json > A$i.txt 2>&1
  $HEAD bench -subjects 2000 -duration 5s -workloads create,update -c 16,64 -json B$i.json > B$i.txt 2>&1
done
echo done > loop.done
