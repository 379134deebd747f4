#!/usr/bin/env python3
"""Composes every federation-audit suite's subgraphs with Tessera.

The audit (graphql-hive/federation-gateway-audit) serves each suite's subgraphs; `/<suite>/subgraphs`
lists their names, SDL and URLs. For each suite this writes DIR/<suite>/<subgraph>.graphql and
DIR/<suite>/supergraph.yaml (rover's format), runs `tessera compose`, and writes
DIR/<suite>.graphql. It prints one line per suite and a summary.

usage: scripts/compose-audit-suites.py [--subgraphs http://127.0.0.1:4200] [--out /tmp/tessera-audit]
                                       [--tessera target/debug/tessera]
Then run the audit on Tessera's supergraphs with
  run.py --cmd 'tessera router --supergraph DIR/{suite}.graphql --listen 127.0.0.1:{port}' ...
"""
import argparse, json, os, subprocess, sys, time, urllib.request


def get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--subgraphs", default="http://127.0.0.1:4200")
    parser.add_argument("--out", default="/tmp/tessera-audit")
    parser.add_argument("--tessera", default="target/debug/tessera")
    args = parser.parse_args()
    suites = json.loads(get(f"{args.subgraphs}/_ids") if False else b"[]") or None
    if not suites:
        # The audit's server has no index route; the suite ids are its test-suites folders.
        suites = sorted(os.listdir(os.environ.get("AUDIT_SUITES", "/tmp/audit/src/test-suites")))
    os.makedirs(args.out, exist_ok=True)
    ok = failed = 0
    for suite in suites:
        subgraphs = json.loads(get(f"{args.subgraphs}/{suite}/subgraphs"))
        folder = os.path.join(args.out, suite)
        os.makedirs(folder, exist_ok=True)
        lines = ["federation_version: =2.3.0", "subgraphs:"]
        for subgraph in subgraphs:
            name = subgraph["name"]
            with open(os.path.join(folder, f"{name}.graphql"), "w") as f:
                f.write(subgraph["sdl"])
            lines += [f"  {name}:", f"    routing_url: {subgraph['url']}",
                      "    schema:", f"      file: ./{name}.graphql"]
        config = os.path.join(folder, "supergraph.yaml")
        with open(config, "w") as f:
            f.write("\n".join(lines) + "\n")
        output = os.path.join(args.out, f"{suite}.graphql")
        started = time.time()
        result = subprocess.run([args.tessera, "compose", config, "-o", output],
                                capture_output=True, text=True)
        took = (time.time() - started) * 1000
        if result.returncode == 0:
            ok += 1
            print(f"{suite:40} composed ({took:.0f} ms)")
        else:
            failed += 1
            errors = [l for l in result.stderr.splitlines() if l.startswith("error")]
            print(f"{suite:40} FAILED: {errors[:3]}")
    print(f"{ok} composed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
