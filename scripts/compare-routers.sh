#!/usr/bin/env bash
# Router CPU per request, side by side: runs the deep query through each given router binary in
# turn (alternating, several rounds) against one set of example subgraphs, so figures taken on
# a noisy machine can be compared within one run.
#   usage: scripts/compare-routers.sh SECONDS CLIENTS ROUNDS NAME=BINARY [NAME=BINARY ...]
#   e.g.:  scripts/compare-routers.sh 6 8 3 before=/tmp/old/tessera after=target/release/tessera
# Each BINARY must accept `router --config supergraph.yaml --listen ADDR` and, with REPLAY=1,
# `router --supergraph FILE --listen ADDR`.
# With REPLAY=1 the routers talk to replayed subgraphs (the `replay` example on ports
# 4011–4015): the subgraphs' answers, kept once per distinct request and served again without
# the subgraphs' own work, so that work does not share the cores with the measured router.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 4 ]; then sed -n 2,11p "$0"; exit 2; fi
seconds=$1; clients=$2; rounds=$3; shift 3
cargo build --release --bin tessera-example --example load --example replay >&2
. scripts/load/subgraphs.sh

supergraph_flags=(--config supergraph.yaml)
if [ "${REPLAY:-0}" = 1 ]; then
  start_replay
  supergraph_flags=(--supergraph "$work/replay.graphql")
fi

echo "# $(nproc) cores, ${seconds}s per row, $clients concurrent clients, $rounds rounds, replayed subgraphs: ${REPLAY:-0}"
for round in $(seq 1 "$rounds"); do
  for pair in "$@"; do
    name=${pair%%=*}; binary=${pair#*=}
    RUST_LOG=warn "$binary" router "${supergraph_flags[@]}" --listen 127.0.0.1:4000 >"$work/router.log" 2>&1 &
    router=$!
    wait_for http://127.0.0.1:4000/health
    target/release/examples/load --seconds "$seconds" --concurrency "$clients" --label "$name (round $round)" \
      --url http://127.0.0.1:4000/graphql --query-file scripts/load/deep.graphql --pid "$router"
    kill "$router"; wait "$router" 2>/dev/null || true
  done
done
