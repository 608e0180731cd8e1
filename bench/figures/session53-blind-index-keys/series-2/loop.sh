#!/bin/bash
# second series: base (B), 16-byte keys (K), no lookups_subject_id (N), both (X); order rotates each round
# BINDIR holds custos (the head), custos-k16, custos-noli and custos-both (the head with one scratch patch, the other, or both)
BINDIR=$(realpath "${BINDIR:?set BINDIR}"); cd "$(dirname "$0")"
run() { $BINDIR/$1 bench -subjects 2000 -duration 5s -workloads create -c 16,64 -json $2.json > $2.txt 2>&1; }
for i in 1 2 3 4 5 6; do
  case $((i % 4)) in
  1) run custos B$i; run custos-k16 K$i; run custos-noli N$i; run custos-both X$i ;;
  2) run custos-k16 K$i; run custos-noli N$i; run custos-both X$i; run custos B$i ;;
  3) run custos-noli N$i; run custos-both X$i; run custos B$i; run custos-k16 K$i ;;
  0) run custos-both X$i; run custos B$i; run custos-k16 K$i; run custos-noli N$i ;;
  esac
done
echo done > loop.done
