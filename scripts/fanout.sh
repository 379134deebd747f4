#!/usr/bin/env bash
# Subscription fan-out through the router and straight against the subgraph, in one run.
#   usage: scripts/fanout.sh [subscribers] [events]      (defaults: 10000 subscribers, 10 events)
# Starts the example's subgraphs (tessera-example, SQLite in a temp dir, in-process events) and a
# release `tessera router` on 127.0.0.1:4400 in front of them, then runs the fan-out benchmark
# (router/examples/fanout.rs): N identical `orderPlaced` subscribers on each target, one order a
# second placed straight at the orders subgraph, and prints acknowledgement time, memory per idle
# subscription, CPU per delivered message and creation-to-receipt latency for each target.
set -euo pipefail
cd "$(dirname "$0")/.."
subscribers=${1:-10000}
events=${2:-10}
cargo build --release --bin tessera --bin tessera-example --example fanout
data=$(mktemp -d)
cleanup() { kill "${router_pid:-}" "${example_pid:-}" 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT
target/release/tessera-example --data-dir "$data" --config /nonexistent \
  --router-listen 127.0.0.1:4090 >"$data/example.log" 2>&1 &
example_pid=$!
for _ in $(seq 1 100); do curl -sf 127.0.0.1:4005/health >/dev/null && break; sleep 0.2; done
target/release/tessera router --supergraph schema/supergraph.graphql --listen 127.0.0.1:4400 \
  >"$data/router.log" 2>&1 &
router_pid=$!
for _ in $(seq 1 100); do curl -sf 127.0.0.1:4400/health >/dev/null && break; sleep 0.2; done
target/release/examples/fanout \
  --target "router=ws://127.0.0.1:4400/graphql@$router_pid" \
  --target "subgraph=ws://127.0.0.1:4005/graphql@$example_pid" \
  --mutation-url http://127.0.0.1:4005/graphql \
  --subscribers "$subscribers" --events "$events"
