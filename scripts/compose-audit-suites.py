#!/usr/bin/env python3
"""Composes every federation-audit suite's subgraphs with Tessera.

The audit (graphql-hive/federation-gateway-audit) serves each suite's subgraphs; `/<suite>/subgraphs`
lists their names, SDL and URLs. For each suite this writes DIR/<suite>/<subgraph>.graphql and
DIR/<suite>/supergraph.yaml (rover's format), runs `tessera compose`, and writes
DIR/<suite>.graphql. It prints one line per suite and a summary.

With --live it also composes each suite from the subgraphs themselves (DIR/<suite>/live.yaml,
`schema: subgraph_url:` pointing at each running subgraph, whose `_service { sdl }` prints
federation's own definitions too) into DIR/<suite>.live.graphql, and checks that both
supergraphs are the same.

usage: scripts/compose-audit-suites.py [--subgraphs http://127.0.0.1:4200] [--out /tmp/tessera-audit]
                                       [--tessera target/debug/tessera] [--live]
Then run the audit on Tessera's supergraphs with
  run.py --cmd 'tessera router --supergraph DIR/{suite}.graphql --listen 127.0.0.1:{port}' ...
"""
import argparse, json, os, subprocess, sys, time, urllib.request


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def compose(tessera, config, output):
    started = time.time()
    result = subprocess.run([tessera, "compose", config, "-o", output], capture_output=True, text=True)
    took = (time.time() - started) * 1000
    errors = [l for l in result.stderr.splitlines() if l.startswith("error")]
    return result.returncode == 0, took, errors


def write_config(path, subgraphs, schema_lines):
    lines = ["federation_version: =2.3.0", "subgraphs:"]
    for subgraph in subgraphs:
        lines += [f"  {subgraph['name']}:", f"    routing_url: {subgraph['url']}", "    schema:"]
        lines += schema_lines(subgraph)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--subgraphs", default="http://127.0.0.1:4200")
    parser.add_argument("--out", default="/tmp/tessera-audit")
    parser.add_argument("--tessera", default="target/debug/tessera")
    parser.add_argument("--live", action="store_true")
    args = parser.parse_args()
    # The audit's server has no index route; the suite ids are its test-suites folders.
    suites = sorted(os.listdir(os.environ.get("AUDIT_SUITES", "/tmp/audit/src/test-suites")))
    os.makedirs(args.out, exist_ok=True)
    ok = failed = same = different = 0
    for suite in suites:
        subgraphs = json.loads(get(f"{args.subgraphs}/{suite}/subgraphs"))
        folder = os.path.join(args.out, suite)
        os.makedirs(folder, exist_ok=True)
        for subgraph in subgraphs:
            with open(os.path.join(folder, f"{subgraph['name']}.graphql"), "w") as f:
                f.write(subgraph["sdl"])
        config = os.path.join(folder, "supergraph.yaml")
        write_config(config, subgraphs, lambda s: [f"      file: ./{s['name']}.graphql"])
        output = os.path.join(args.out, f"{suite}.graphql")
        composed, took, errors = compose(args.tessera, config, output)
        line = f"{suite:40} " + (f"composed ({took:.0f} ms)" if composed else f"FAILED: {errors[:3]}")
        ok += composed
        failed += not composed
        if args.live:
            live = os.path.join(folder, "live.yaml")
            write_config(live, subgraphs, lambda s: [f"      subgraph_url: {s['url']}"])
            live_output = os.path.join(args.out, f"{suite}.live.graphql")
            live_composed, _, live_errors = compose(args.tessera, live, live_output)
            if not live_composed:
                different += 1
                line += f"; live FAILED: {live_errors[:3]}"
            elif composed and open(output).read() == open(live_output).read():
                same += 1
                line += "; live: same supergraph"
            else:
                different += 1
                line += "; live: DIFFERENT supergraph"
        print(line)
    print(f"{ok} composed, {failed} failed")
    if args.live:
        print(f"live: {same} the same as from files, {different} not")
    return 1 if failed or different else 0


if __name__ == "__main__":
    sys.exit(main())
