#!/bin/bash
# The read's floor: pairs of a read step at c=16 (and 64) on the head (HEAD,
# primed) and on a scratch build of it where a read by id does nothing but
# its durable audit event (FLOOR, floor.patch: no decision, no load, no
# decryption or masking; the answer is the id alone), alternating which
# runs first, on both stores.
# HEAD, FLOOR: custos binaries; OUT: where to write; PAIRS: pairs a store;
# STORES: which (sqlite postgres); TAG: a prefix for the files, e.g. for
# the runs with CUSTOS_READ_AUDIT_DURABILITY=committed in the environment.
set -u
HEAD=${HEAD:?}; FLOOR=${FLOOR:?}; OUT=${OUT:-.}; PAIRS=${PAIRS:-3}
PG=postgres://postgres@127.0.0.1:5432/custos_s65floor?sslmode=disable
cd "$OUT"
for store in ${STORES:-sqlite postgres}; do
  for i in $(seq 1 $PAIRS); do
    order="head floor"; [ $((i % 2)) = 0 ] && order="floor head"
    for b in $order; do
      bin=$HEAD; [ $b = floor ] && bin=$FLOOR
      extra="-prime"
      if [ $store = postgres ]; then
        psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS custos_s65floor" -c "CREATE DATABASE custos_s65floor" postgres 2>/dev/null
        extra="$extra -store $PG -migrate"
      fi
      $bin bench -subjects 10000 -c 16,64 -duration 10s -workloads read -seed 65 $extra \
        -json ${TAG:-}$store-$b-$i.json > ${TAG:-}$store-$b-$i.txt 2>&1
      echo "${TAG:-}$store $b $i rc=$?"
    done
  done
done
psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS custos_s65floor" postgres 2>/dev/null
