#!/usr/bin/env bash
# Load figures for the router: a deep query across four subgraphs through the router (with
# in-flight de-duplication off and on, and on one worker thread), and a one-subgraph query
# through the router and straight against that subgraph, side by side in one run.
# The last row runs the deep query against replayed subgraphs (see scripts/load/subgraphs.sh),
# so the subgraphs' own work does not share the cores with the router.
#   usage: scripts/load.sh [seconds per row, default 10] [concurrency, default 8]
# Builds in release mode (benchmarks only; tests never do), runs the example's subgraphs on
# SQLite in a temporary directory, and prints one row per measurement.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
concurrency=${2:-8}
cargo build --release --bin tessera --bin tessera-example --example load --example replay >&2
. scripts/load/subgraphs.sh

# start_router FLAGS: the router on port 4000 (FLAGS name its supergraph).
start_router() {
  RUST_LOG=warn target/release/tessera router --listen 127.0.0.1:4000 "$@" \
    >"$work/router.log" 2>&1 &
  router=$!
  pids+=($router)
  wait_for http://127.0.0.1:4000/health
}

load() { target/release/examples/load --seconds "$seconds" --concurrency "$concurrency" "$@"; }

echo "# $(nproc) cores, ${seconds}s per row, $concurrency concurrent clients"
start_router --config supergraph.yaml
load --label "deep via router (dedupe off)" --url http://127.0.0.1:4000/graphql --query-file scripts/load/deep.graphql --pid "$router"
load --label "one-subgraph via router" --url http://127.0.0.1:4000/graphql --query-file scripts/load/single.graphql --pid "$router"
load --label "one-subgraph direct (products)" --url http://127.0.0.1:4002/graphql --query-file scripts/load/single.graphql
kill "$router"; wait "$router" 2>/dev/null || true
start_router --config supergraph.yaml --worker-threads 1
load --label "deep via router (1 worker)" --url http://127.0.0.1:4000/graphql --query-file scripts/load/deep.graphql --pid "$router"
kill "$router"; wait "$router" 2>/dev/null || true
start_router --config supergraph.yaml --dedupe
load --label "deep via router (dedupe on)" --url http://127.0.0.1:4000/graphql --query-file scripts/load/deep.graphql --pid "$router"
kill "$router"; wait "$router" 2>/dev/null || true
start_replay
start_router --supergraph "$work/replay.graphql"
load --label "deep via router (replayed subgraphs)" --url http://127.0.0.1:4000/graphql --query-file scripts/load/deep.graphql --pid "$router"
