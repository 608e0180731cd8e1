#!/bin/bash
# What the key fill (postgres/keyfill.go) buys a fresh PostgreSQL store's read and
# lookup steps, as in a whole run (sixty-second session).
#
#   run.sh NEW OLD OUT PAIRS
#   EXTRA="-read-cache 10000" run.sh NEW OLD OUT PAIRS   (flags added to every run)
#   DB=name SEED=n run.sh …   (the scratch database and the seed; keyfill_62 and 62)
#
# NEW and OLD are custos binaries (with and without the key fill). Each run seeds
# 10,000 customers into a new database and runs the read steps, then the lookup
# steps, at c=1, 16 and 64, as a whole run orders them; the builds alternate which
# runs first in a pair. At the end OUT/compare.txt compares NEW with OLD
# (`custos bench -compare`).
set -euo pipefail
new=$(realpath "$1") old=$(realpath "$2") out=$3 pairs=$4
PG=postgres://postgres@127.0.0.1:5432
db=${DB:-keyfill_62}
mkdir -p "$out"; cd "$out"
trap 'psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db" > /dev/null' EXIT
run() { # build pair
  local bin=$new
  [ "$1" = old ] && bin=$old
  psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" > /dev/null
  "$bin" bench -store "$PG/$db?sslmode=disable" -migrate -subjects 10000 -seed ${SEED:-62} -draw-seed $((100 + $2)) \
    -c 1,16,64 -duration 5s -workloads read,lookup ${EXTRA:-} -json "$1$2.json" > "$1$2.txt" 2>&1
}
for i in $(seq 1 "$pairs"); do
  if [ $((i % 2)) = 1 ]; then run new "$i"; run old "$i"; else run old "$i"; run new "$i"; fi
done
list() { local l=; for i in $(seq 1 "$pairs"); do l+="${l:+,}$1$i.json"; done; echo "$l"; }
"$new" bench -compare "$(list new)" -base "$(list old)" > compare.txt 2>&1 || true
