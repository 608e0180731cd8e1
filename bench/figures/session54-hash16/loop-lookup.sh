#!/bin/bash
# cached lookups and reads at c=16 and c=64 on SQLite, without creates
# before them: loop.sh's pairs (H, 3445362 against K, e8c3327) with
# WORKLOADS=lookup,read, into lookup-only/. BINDIR as loop.sh.
OUT=lookup-only WORKLOADS=lookup,read exec "$(dirname "$0")/loop.sh"
