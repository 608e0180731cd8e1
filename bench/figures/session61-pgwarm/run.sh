#!/bin/bash
# A PostgreSQL node's read step just after a start, with its read cache warmed
# from the audit log (-warm) and without, in alternating pairs (sixty-first session).
#
#   run.sh BIN OUT PAIRS
#
# BIN is a custos binary. It seeds 10,000 customers into a database of its own and
# reads each once (-prime), so that the audit log lists them; then each pair runs
# `bench -reuse` twice on that store, each a new process, one with -warm and one
# without, the first of the pair alternating. At the end OUT/compare.txt compares
# the warm runs with the cold ones (`custos bench -compare`).
set -euo pipefail
bin=$(realpath "$1") out=$2 pairs=$3
PG=postgres://postgres@127.0.0.1:5432
db=pgwarm_61
mkdir -p "$out"; cd "$out"
psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" > /dev/null
store="$PG/$db?sslmode=disable"
data=$(mktemp -d)
trap 'rm -rf "$data"; psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db" > /dev/null' EXIT
"$bin" bench -data "$data" -store "$store" -migrate -subjects 10000 -seed 61 -prime \
  -c 16 -duration 5s -workloads read -json seed.json > seed.txt 2>&1
run() { # mode pair
  local flag=()
  [ "$1" = warm ] && flag=(-warm)
  "$bin" bench -data "$data" -store "$store" -reuse -subjects 10000 -seed 61 -draw-seed $((100 + $2)) \
    -c 16,64 -duration 5s -workloads read "${flag[@]}" -json "$1$2.json" > "$1$2.txt" 2>&1
}
for i in $(seq 1 "$pairs"); do
  if [ $((i % 2)) = 1 ]; then run warm "$i"; run cold "$i"; else run cold "$i"; run warm "$i"; fi
done
list() { local l=; for i in $(seq 1 "$pairs"); do l+="${l:+,}$1$i.json"; done; echo "$l"; }
"$bin" bench -compare "$(list warm)" -base "$(list cold)" > compare.txt 2>&1 || true
