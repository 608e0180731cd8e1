#!/bin/bash
# Rounds of `custos bench` runs of N builds on fresh SQLite stores, one run of each
# build a round, rotating which runs first (the fifty-sixth session's series).
#
#   BINDIR=DIR rounds.sh OUT ROUNDS WORKLOADS X=binx Y=biny [Z=binz ...]
#
# DIR/binx, DIR/biny, … are the builds. Round i writes OUT/Xi.json, OUT/Yi.json, …
# (and .txt). At the end, OUT/compare-Y.txt, … compare each build with the base, the first
# named (BASE=NAME names another): `custos bench -compare Y1.json,… -base X1.json,…`, run
# with the base's build.
#
# SUBJECTS=N seeds N customers a run (2000 unless set). PG=URL (a server's, without a
# database: postgres://postgres@127.0.0.1:5432) runs each on a PostgreSQL database of its
# own instead, made empty before the run (-migrate) and dropped after it (fifty-ninth
# session).
set -euo pipefail
BINDIR=$(realpath "${BINDIR:?set BINDIR}")
out=$1 rounds=$2 workloads=$3; shift 3
names=(); bins=()
for a in "$@"; do names+=("${a%%=*}"); bins+=("${a#*=}"); done
n=${#names[@]}
# The base, which every other build is compared with at the end.
base=${BASE:-${names[0]}} basebin=
for j in $(seq 0 $((n-1))); do
  [ "${names[$j]}" = "$base" ] && basebin=${bins[$j]}
done
[ -n "$basebin" ] || { echo "rounds.sh: BASE=$base names no build" >&2; exit 2; }
mkdir -p "$out"; cd "$out"
subjects=${SUBJECTS:-2000}
run() {
  local store=()
  if [ -n "${PG:-}" ]; then
    local db
    db=$(echo "rounds_$$_$2" | tr A-Z a-z) # psql folds unquoted names to lower case
    psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" > /dev/null
    store=(-store "$PG/$db?sslmode=disable" -migrate)
  fi
  "$BINDIR/$1" bench "${store[@]}" -subjects "$subjects" -duration 5s -workloads "$workloads" -c 16,64 -json "$2.json" > "$2.txt" 2>&1
  if [ -n "${PG:-}" ]; then psql "$PG/postgres" -qc "DROP DATABASE $db" > /dev/null; fi
}
for i in $(seq 1 "$rounds"); do
  for j in $(seq 0 $((n-1))); do
    k=$(( (i + j) % n ))
    run "${bins[$k]}" "${names[$k]}$i"
  done
done
# Each build against the base, round i with round i.
list() { local l=; for i in $(seq 1 "$rounds"); do l+="${l:+,}$1$i.json"; done; echo "$l"; }
for j in $(seq 0 $((n-1))); do
  a=${names[$j]}
  [ "$a" = "$base" ] && continue
  "$BINDIR/$basebin" bench -compare "$(list "$a")" -base "$(list "$base")" > "compare-$a.txt" 2>&1 || true
done
echo done > loop.done
