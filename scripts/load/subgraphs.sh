# Sourced by the load scripts: a temporary work directory cleaned up on exit, `wait_for URL`,
# and the example's five subgraphs started on SQLite (ports 4001–4005; the example's own
# router goes to a spare port, as the measured router is a separate process).
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

wait_for() { for _ in $(seq 1 100); do curl -sf "$1" >/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

RUST_LOG=warn target/release/tessera-example --data-dir "$work/data" --router-listen 127.0.0.1:4199 \
  --config supergraph.yaml >"$work/example.log" 2>&1 &
pids+=($!)
for port in 4001 4002 4003 4004 4005; do wait_for "http://127.0.0.1:$port/health"; done
