# Sourced by the load scripts: a temporary work directory cleaned up on exit, `wait_for URL`,
# the example's five subgraphs started on SQLite (ports 4001–4005; the example's own router
# goes to a spare port, as the measured router is a separate process), and `start_replay`.
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_for() { for _ in $(seq 1 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

RUST_LOG=warn target/release/tessera-example --data-dir "$work/data" --router-listen 127.0.0.1:4199 \
  --config supergraph.yaml >"$work/example.log" 2>&1 &
pids+=($!)
for port in 4001 4002 4003 4004 4005; do wait_for "http://127.0.0.1:$port/health"; done

# Replayed subgraphs on ports 4011–4015 (the `replay` example: each distinct request answered
# once by the subgraph on 4001–4005, then from that answer), and `$work/replay.graphql`, the
# supergraph routed to them.
start_replay() {
  local routes=()
  for n in 1 2 3 4 5; do routes+=(--route "127.0.0.1:401$n=http://127.0.0.1:400$n/graphql"); done
  target/release/examples/replay "${routes[@]}" >"$work/replay.log" 2>&1 &
  pids+=($!)
  for n in 1 2 3 4 5; do wait_for "http://127.0.0.1:401$n/health"; done
  sed 's#http://127.0.0.1:400\([1-5]\)/graphql#http://127.0.0.1:401\1/graphql#' \
    schema/supergraph.graphql >"$work/replay.graphql"
}
