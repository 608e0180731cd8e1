#!/bin/bash
# Scratch: data_keys WITHOUT ROWID (W) against the head (L = 78d07f8).
# The builds were in /work/s55/bin; see README.md for the commits.
cd "$(dirname "$0")" && BINDIR=${BINDIR:-/work/s55/bin} ../session55-pairs.sh . 6 create L=clen W=dkwr
