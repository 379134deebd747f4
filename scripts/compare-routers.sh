#!/usr/bin/env bash
# Router CPU per request, side by side: runs the deep query through each given router binary in
# turn (alternating, several rounds) against one set of example subgraphs, so figures taken on
# a noisy machine can be compared within one run.
#   usage: scripts/compare-routers.sh SECONDS CLIENTS ROUNDS NAME=BINARY [NAME=BINARY ...]
#   e.g.:  scripts/compare-routers.sh 6 8 3 before=/tmp/old/tessera after=target/release/tessera
# Each BINARY must accept `router --config supergraph.yaml --listen ADDR`.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 4 ]; then sed -n 2,7p "$0"; exit 2; fi
seconds=$1; clients=$2; rounds=$3; shift 3
cargo build --release --bin tessera-example --example load >&2
. scripts/load/subgraphs.sh

echo "# $(nproc) cores, ${seconds}s per row, $clients concurrent clients, $rounds rounds"
for round in $(seq 1 "$rounds"); do
  for pair in "$@"; do
    name=${pair%%=*}; binary=${pair#*=}
    RUST_LOG=warn "$binary" router --config supergraph.yaml --listen 127.0.0.1:4000 >"$work/router.log" 2>&1 &
    router=$!
    wait_for http://127.0.0.1:4000/health
    target/release/examples/load --seconds "$seconds" --concurrency "$clients" --label "$name (round $round)" \
      --url http://127.0.0.1:4000/graphql --query-file scripts/load/deep.graphql --pid "$router"
    kill "$router"; wait "$router" 2>/dev/null || true
  done
done
