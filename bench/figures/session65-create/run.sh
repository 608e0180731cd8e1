#!/bin/bash
# SQLite creates at c=16 on this session's host: three runs of the head
# (create-N), then two pairs of the sixty-third session's build (9406f0e)
# against the head (pair-63-N, pair-head-N), one after the other.
# HEAD, OLD: custos binaries; OUT: where to write.
set -u
HEAD=${HEAD:?}; OLD=${OLD:?}; OUT=${OUT:-.}
cd "$OUT"
run() { $1 bench -subjects 2000 -c 16 -duration 10s -workloads create -seed 65 -json $2.json > $2.txt 2>&1; echo "$2 rc=$?"; }
for i in 1 2 3; do run $HEAD create-$i; done
for i in 1 2; do run $OLD pair-63-$i; run $HEAD pair-head-$i; done
