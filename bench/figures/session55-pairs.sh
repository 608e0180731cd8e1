#!/bin/bash
# Pairs of `custos bench` runs of two builds on fresh SQLite stores, alternating
# which runs first (the fifty-fifth session's series).
#
#   BINDIR=DIR session55-pairs.sh OUT ROUNDS WORKLOADS X=binx Y=biny
#
# DIR/binx and DIR/biny are the builds. Round i writes OUT/Xi.json and OUT/Yi.json
# (and .txt); odd rounds run X first, even rounds Y first. Compare them with
# `custos bench -compare Y1.json,… -base X1.json,…`.
set -euo pipefail
BINDIR=$(realpath "${BINDIR:?set BINDIR}")
out=$1 rounds=$2 workloads=$3 x=${4%%=*} xbin=${4#*=} y=${5%%=*} ybin=${5#*=}
mkdir -p "$out"; cd "$out"
run() { "$BINDIR/$1" bench -subjects 2000 -duration 5s -workloads "$workloads" -c 16,64 -json "$2.json" > "$2.txt" 2>&1; }
for i in $(seq 1 "$rounds"); do
  if [ $((i % 2)) = 1 ]; then run "$xbin" "$x$i"; run "$ybin" "$y$i"
  else run "$ybin" "$y$i"; run "$xbin" "$x$i"; fi
done
echo done > loop.done
