#!/bin/bash
# creates at c=16 and c=64 on SQLite: base (B), 16-byte blind-index keys (K), no lookups_subject_id index (N); order rotates each round
# BINDIR holds custos (the head), custos-k16 and custos-noli (the head with each scratch patch)
BINDIR=$(realpath "${BINDIR:?set BINDIR}"); cd "$(dirname "$0")"
run() { $BINDIR/$1 bench -subjects 2000 -duration 5s -workloads create -c 16,64 -json $2.json > $2.txt 2>&1; }
for i in 1 2 3 4 5 6; do
  case $((i % 3)) in
  1) run custos B$i; run custos-k16 K$i; run custos-noli N$i ;;
  2) run custos-k16 K$i; run custos-noli N$i; run custos B$i ;;
  0) run custos-noli N$i; run custos B$i; run custos-k16 K$i ;;
  esac
done
echo done > loop.done
