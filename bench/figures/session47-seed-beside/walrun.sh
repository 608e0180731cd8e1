#!/bin/bash
# walrun.sh BIN TAG N: reads at c=16 for 100 s on the 1M store, custos seed of N customers beside it from 7 s in; WAL size each second
BIN=$1; TAG=$2; N=$3; D=/tmp/s47/m1; cd /tmp/s47
$BIN bench -reuse -data $D -subjects 100000 -c 16 -duration ${DUR:-100s} -workloads read -seed 11 -draw-seed $RANDOM -json wal-$TAG.json -server-log srvw-$TAG.log > wal-$TAG.out 2> wal-$TAG.err &
B=$!
until grep -q "bench: ceiling" wal-$TAG.err 2>/dev/null; do sleep 0.2; done
sleep 7
( for i in $(seq 1 ${SECS:-100}); do s=$(stat -c %s $D/custos.db-wal 2>/dev/null || echo 0); echo -n "$((s/1048576)) "; sleep 1; done; echo ) > walsizes-$TAG.txt &
T0=$(date +%s.%N)
$BIN seed -data $D -subjects $N -records 0 -seed $RANDOM -no-plans -quiet > seedw-$TAG.out 2> seedw-$TAG.err
T1=$(date +%s.%N)
wait $B
echo "$TAG: seed of $N $(echo "$T1 - $T0" | bc) s"
python3 -c "
import json;r=json.load(open('wal-$TAG.json'))
for s in r['results']:
  if s['workload']=='read': print('  read c=%d: %.0f/s p50 %.2f p95 %.2f p99 %.2f max %.1f ms errors %d' % (s['concurrency'], s['throughput'], s['p50_ms'], s['p95_ms'], s['p99_ms'], s['max_ms'], s['errors']))
"
sleep 1; echo "  WAL MiB each second: $(cat walsizes-$TAG.txt)"
