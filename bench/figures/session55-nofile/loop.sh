#!/bin/bash
# Upper bound: no filing (N) against the head (H = 1d95587), four rounds.
# The builds were in /work/s55/bin; see README.md for the commits.
cd "$(dirname "$0")" && BINDIR=${BINDIR:-/work/s55/bin} ../session55-pairs.sh . 4 read,lookup,create H=head N=nofile
