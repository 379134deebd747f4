#!/usr/bin/env python3
"""Fuzz the router with random *valid* queries over the federation gateway audit's suites.

For each suite: download its supergraph from the audit server, start the router on it, introspect
the API schema, generate --count random valid queries (fixed --seed), run each one plus two
variants that must answer the same (no-op @skip(if: false)/@include(if: true) added; selection
sets shuffled) and classify suspicious answers. Failing queries are shrunk (fields, fragments,
directives, aliases, optional arguments removed one at a time while the failure stays) and the
query plan of each minimal example is fetched. Python 3 standard library only.

  usage: scripts/fuzz-audit-queries.py [--suites a,b] [--count 200] [--seed 1]
             [--binary /tmp/tessera-fuzz] [--audit-url http://127.0.0.1:4200]
             [--audit-dir /tmp/audit] [--out /tmp/fuzz-out] [--base-port 4150]

Needs the audit's subgraphs served (`npm start -- serve --port 4200` style) on --audit-url.
When node and the audit's graphql-js (AUDIT_DIR/node_modules/graphql) are present every generated
query is also validated with graphql-js; a query graphql-js rejects is a fuzzer artefact and is
counted apart, never reported as a router failure.

Output (in --out): results.jsonl (every request), failures.jsonl (shrunk examples with plans),
other-errors.jsonl (errors judged to come from the data), summary.txt (what is printed at the end),
router-<suite>.log.
"""
import argparse
import atexit
import copy
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter, OrderedDict, defaultdict

INTROSPECTION = """query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name locations args { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name
  fields(includeDeprecated: true) { name args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name type { ...TypeRef } defaultValue }
fragment TypeRef on __Type {
  kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name
  ofType { kind name ofType { kind name ofType { kind name } } } } } } }
}"""

# Categories of a failure; everything else an error can be is "OTHER" (listed apart, not a failure).
SUSPICIOUS = {
    "WRONG_SUBGRAPH", "QUERY_PLANNING_FAILED", "SUBGRAPH_VALIDATION_FAILED", "SUBGRAPH_REJECTED_QUERY",
    "ROUTER_REJECTED_VALID_QUERY", "INTERNAL_SERVER_ERROR", "DATA_NULL_WITH_ERRORS", "HTTP_5XX",
    "NON_JSON", "REQUEST_FAILED", "ROUTER_CRASHED",
    "SHAPE_KEY_ORDER", "SHAPE_KEYS_MISMATCH", "SHAPE_BAD_TYPENAME", "SHAPE_NULL_IN_NON_NULL",
    "SHAPE_SCALAR_TYPE", "SHAPE_ENUM_VALUE", "SHAPE_NOT_OBJECT", "SHAPE_NOT_LIST",
    "NOOP_VARIANT_DATA", "NOOP_VARIANT_KEY_ORDER", "NOOP_VARIANT_ERRORS",
    "SHUFFLE_VARIANT_DATA", "SHUFFLE_VARIANT_ERRORS", "ALIAS_VARIANT_DATA", "ALIAS_VARIANT_ERRORS",
    "ERROR_PATH_NOT_REQUESTED",
}
VARIANT_PREFIXES = ("NOOP", "SHUFFLE", "ALIAS")
# A subgraph error whose message reads like GraphQL validation: the router sent it a bad operation.
SUBGRAPH_VALIDATION_RE = re.compile(
    r"Cannot query field|Unknown argument|Unknown type|Unknown fragment|Unknown directive|"
    r"must have a selection of subfields|must not have a selection|Fields \".*\" conflict|"
    r"Variable \"\$.*\" (is never used|is not defined|of type|of required type|got invalid)|"
    r"Syntax Error|Expected type|Argument \".*\" of required type|Abstract type|"
    r"Fragment .* cannot be spread|There can be only one|is not defined by operation|"
    r"Representation|representations", re.S)

ROUTERS = []  # every router process this script started
# Suites whose subgraphs change their data as they are queried (mutations: resolving a Product
# entity deletes it), so two runs of one query need not agree: no variant comparisons there.
STATEFUL = {"mutations"}


def stop_router(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    if proc in ROUTERS:
        ROUTERS.remove(proc)


def stop_all_routers():
    for proc in list(ROUTERS):
        stop_router(proc)


atexit.register(stop_all_routers)


def on_signal(signum, _frame):
    stop_all_routers()
    sys.exit(128 + signum)


# ---------------------------------------------------------------------------------------------
# HTTP

def http(url, body=None, headers=None, timeout=30):
    """(status, text); status 0 when the request failed (text says why)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET")
    req.add_header("content-type", "application/json")
    req.add_header("accept", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except Exception as e:  # connection refused / reset / timeout
        return 0, "%s: %s" % (type(e).__name__, e)


def free_port(start):
    port = start
    while True:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                port += 1


class Router:
    def __init__(self, binary, supergraph, port, log_path):
        self.binary, self.supergraph, self.port, self.log_path = binary, supergraph, port, log_path
        self.proc = None
        self.url = "http://127.0.0.1:%d/graphql" % port
        self.restarts = 0

    def start(self):
        self.port = free_port(self.port)
        self.url = "http://127.0.0.1:%d/graphql" % self.port
        log = open(self.log_path, "a")
        self.proc = subprocess.Popen(
            [self.binary, "router", "--supergraph", self.supergraph, "--listen", "127.0.0.1:%d" % self.port],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=dict(os.environ, RUST_LOG="warn"))
        log.close()
        ROUTERS.append(self.proc)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            st, _ = http("http://127.0.0.1:%d/health" % self.port, timeout=2)
            if st == 200:
                return True
            time.sleep(0.1)
        return False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is not None:
            stop_router(self.proc)

    def log_tail(self, n=15):
        try:
            with open(self.log_path) as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""


# ---------------------------------------------------------------------------------------------
# Schema

class Schema:
    def __init__(self, intro):
        s = intro["__schema"]
        self.query = s["queryType"]["name"]
        self.types = {t["name"]: t for t in s["types"]}
        self.fields = {}
        for t in s["types"]:
            if t["kind"] in ("OBJECT", "INTERFACE"):
                self.fields[t["name"]] = OrderedDict((f["name"], f) for f in t["fields"] or [])
        self._possible = {}
        self.composites = [n for n, t in self.types.items()
                           if t["kind"] in ("OBJECT", "INTERFACE", "UNION") and not n.startswith("__")]

    def kind(self, name):
        return self.types[name]["kind"]

    def possible(self, name):
        if name not in self._possible:
            t = self.types[name]
            if t["kind"] == "OBJECT":
                self._possible[name] = [name]
            else:
                self._possible[name] = [p["name"] for p in t.get("possibleTypes") or []]
        return self._possible[name]

    def is_composite(self, name):
        return self.types[name]["kind"] in ("OBJECT", "INTERFACE", "UNION")

    def applies(self, cond, obj):
        return cond is None or cond == obj or obj in self.possible(cond)

    def overlapping(self, parent):
        mine = set(self.possible(parent))
        return [n for n in self.composites if mine & set(self.possible(n))]

    def field_def(self, type_name, field):
        if field == "__typename":
            return {"name": "__typename", "args": [], "type": {"kind": "NON_NULL", "name": None,
                                                              "ofType": {"kind": "SCALAR", "name": "String", "ofType": None}}}
        return self.fields.get(type_name, {}).get(field)


def named(tref):
    while tref.get("ofType"):
        tref = tref["ofType"]
    return tref["name"]


def tstr(tref):
    if tref["kind"] == "NON_NULL":
        return tstr(tref["ofType"]) + "!"
    if tref["kind"] == "LIST":
        return "[" + tstr(tref["ofType"]) + "]"
    return tref["name"]


# ---------------------------------------------------------------------------------------------
# Values seen in the audit (for ID/String/Int/enum arguments)

class Values:
    LIT = re.compile(r'\b([A-Za-z_]\w*)\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?(?![\w.])|true|false|[A-Za-z_]\w*)')
    TS_STR = re.compile(r'\b([A-Za-z_]\w*)\s*:\s*"([^"$\\\n]*)"')
    TS_NUM = re.compile(r'\b([A-Za-z_]\w*)\s*:\s*(-?\d+(?:\.\d+)?)(?![\w.])')

    def __init__(self):
        self.strings = defaultdict(list)
        self.numbers = defaultdict(list)
        self.idents = defaultdict(list)

    def add(self, table, key, value):
        if value not in table[key]:
            table[key].append(value)

    def from_queries(self, queries):
        for q in queries:
            for k, v in self.LIT.findall(q):
                if v.startswith('"'):
                    try:
                        s = json.loads(v)
                    except ValueError:
                        continue
                    if "${" not in s:
                        self.add(self.strings, k, s)
                elif re.match(r"-?\d", v):
                    self.add(self.numbers, k, v)
                elif v not in ("true", "false"):
                    self.add(self.idents, k, v)

    def from_sources(self, folder):
        if not os.path.isdir(folder):
            return
        for fn in sorted(os.listdir(folder)):
            if not fn.endswith(".ts") or fn in ("test.ts", "index.ts"):
                continue
            with open(os.path.join(folder, fn), errors="replace") as f:
                text = f.read()
            self.from_queries([text])  # literal arguments, in field sets of the SDL too
            for k, v in self.TS_STR.findall(text):
                if k not in ("url", "fields", "from", "requires", "provides", "import", "as", "name_"):
                    self.add(self.strings, k, v)
            for k, v in self.TS_NUM.findall(text):
                self.add(self.numbers, k, v)


# ---------------------------------------------------------------------------------------------
# Operations: a small AST
#   field: {id, kind: "field", alias, name, args: [[name, text, required]], dirs: [[skip|include, text]],
#           sel: [...] | None, pt: parent type, rt: return type string}
#   frag:  {id, kind: "frag", on: type | None, dirs, sel, named: bool, pt}
#   op:    {sel: [...], vars: {name: {type, value, has_value, default}}}

def canon_args(node):
    return ",".join("%s:%s" % (a[0], a[1]) for a in sorted(node["args"], key=lambda a: a[0]))


def iter_lists(sel, parent=None):
    """Every selection list (with the node that owns it) depth-first, parents before children."""
    yield parent, sel
    for s in sel:
        if s["sel"]:
            yield from iter_lists(s["sel"], s)


def iter_nodes(sel):
    for s in sel:
        yield s
        if s["sel"]:
            yield from iter_nodes(s["sel"])


def find_node(sel, nid):
    for s in iter_nodes(sel):
        if s["id"] == nid:
            return s
    return None


def merge_ok(sel, scope=None):
    """Stricter than the spec's FieldsInSetCanMerge: a response key is one field, one set of
    arguments, one type; its sub-selections (all occurrences together) the same again."""
    if scope is None:
        scope = {}
    for s in sel:
        if s["kind"] == "field":
            key = s["alias"] or s["name"]
            sig = (s["name"], canon_args(s), s["rt"])
            if key in scope and scope[key][0] != sig:
                return False
            entry = scope.setdefault(key, (sig, {}))
            if s["sel"] and not merge_ok(s["sel"], entry[1]):
                return False
        elif not merge_ok(s["sel"], scope):
            return False
    return True


def used_vars(op):
    names = []
    for s in iter_nodes(op["sel"]):
        texts = [d[1] for d in s["dirs"]] + ([a[1] for a in s["args"]] if s["kind"] == "field" else [])
        for t in texts:
            for m in re.findall(r"\$(\w+)", t):
                if m not in names:
                    names.append(m)
    return names


def render(op, pretty=False):
    frags = []
    nl = "\n" if pretty else " "

    def dirs(ds):
        return "".join(" @%s(if: %s)" % (d, v) for d, v in ds)

    def block(sel, ind):
        pad = "  " * (ind + 1) if pretty else ""
        lines = []
        for s in sel:
            if s["kind"] == "field":
                head = (s["alias"] + ": " if s["alias"] else "") + s["name"]
                if s["args"]:
                    head += "(" + ", ".join("%s: %s" % (a[0], a[1]) for a in s["args"]) + ")"
                head += dirs(s["dirs"])
                if s["sel"]:
                    head += " " + block(s["sel"], ind + 1)
            elif s["named"] and s["on"]:
                name = "F%d" % s["id"]
                frags.append((name, s["on"], s["sel"]))
                head = "..." + name + dirs(s["dirs"])
            else:
                head = "..." + (" on " + s["on"] if s["on"] else "") + dirs(s["dirs"]) + " " + block(s["sel"], ind + 1)
            lines.append(pad + head)
        end = ("  " * ind if pretty else "")
        return "{" + nl + nl.join(lines) + nl + end + "}"

    body = block(op["sel"], 0)
    names = used_vars(op)
    vdefs = ""
    if names:
        parts = []
        for n in names:
            v = op["vars"][n]
            parts.append("$%s: %s%s" % (n, v["type"], " = " + v["default"] if v.get("default") else ""))
        vdefs = "(" + ", ".join(parts) + ")"
    text = "query" + vdefs + " " + body
    done = set()
    i = 0
    while i < len(frags):  # fragment bodies may add more fragments
        name, on, sel = frags[i]
        i += 1
        if name in done:
            continue
        done.add(name)
        text += nl + ("\n" if pretty else "") + "fragment %s on %s %s" % (name, on, block(sel, 0))
    variables = {n: op["vars"][n]["value"] for n in names if op["vars"][n]["has_value"]}
    return text, variables


class Gen:
    def __init__(self, schema, values, rng, max_depth=4):
        self.s, self.values, self.rng, self.max_depth = schema, values, rng, max_depth
        self.nid = 0
        self.vars = {}
        self.frag_nesting = 0

    def new_id(self):
        self.nid += 1
        return self.nid

    # values -----------------------------------------------------------------------------------
    def literal(self, tref, argname, depth=0):
        """(text, json value) of a plausible literal of this type, or None."""
        rng = self.rng
        if tref["kind"] == "NON_NULL":
            return self.literal(tref["ofType"], argname, depth)
        if tref["kind"] == "LIST":
            inner = self.literal(tref["ofType"], argname, depth)
            return None if inner is None else ("[" + inner[0] + "]", [inner[1]])
        name = tref["name"]
        t = self.s.types[name]
        if t["kind"] == "ENUM":
            vals = [v["name"] for v in t["enumValues"]]
            if not vals:
                return None
            seen = [v for v in self.values.idents.get(argname, []) if v in vals]
            v = rng.choice(seen) if seen and rng.random() < 0.5 else (vals[0] if rng.random() < 0.7 else rng.choice(vals))
            return v, v
        if t["kind"] == "INPUT_OBJECT":
            if depth > 3:
                return None
            parts, obj = [], {}
            for f in t["inputFields"]:
                required = f["type"]["kind"] == "NON_NULL" and f["defaultValue"] is None
                if not required and rng.random() > 0.3:
                    continue
                lit = self.literal(f["type"], f["name"], depth + 1)
                if lit is None:
                    if required:
                        return None
                    continue
                parts.append("%s: %s" % (f["name"], lit[0]))
                obj[f["name"]] = lit[1]
            return "{" + ", ".join(parts) + "}", obj
        if name in ("ID", "String"):
            cands = self.values.strings.get(argname) or []
            s = rng.choice(cands) if cands and rng.random() < 0.9 else "1"
            return json.dumps(s), s
        if name == "Int":
            cands = [c for c in self.values.numbers.get(argname, []) if "." not in c] or ["1", "2"]
            v = rng.choice(cands)
            return v, int(v)
        if name == "Float":
            cands = self.values.numbers.get(argname) or ["1.5"]
            v = rng.choice(cands)
            return v, float(v)
        if name == "Boolean":
            v = rng.random() < 0.5
            return ("true" if v else "false"), v
        cands = self.values.strings.get(argname)  # a custom scalar: only a value the audit uses
        if cands:
            s = rng.choice(cands)
            return json.dumps(s), s
        return None

    def gen_args(self, argdefs):
        out = []
        for a in argdefs:
            required = a["type"]["kind"] == "NON_NULL" and a["defaultValue"] is None
            if not required and self.rng.random() > 0.3:
                continue
            lit = self.literal(a["type"], a["name"])
            if lit is None:
                if required:
                    return None
                continue
            text = lit[0]
            base = self.s.types[named(a["type"])]["kind"]
            if base in ("SCALAR", "ENUM") and self.rng.random() < 0.15:
                vname = "a%d" % len(self.vars)
                self.vars[vname] = {"type": tstr(a["type"]), "value": lit[1], "has_value": True, "default": None}
                text = "$" + vname
            out.append([a["name"], text, required])
        return out

    def condition(self, want=None):
        """A Boolean for @skip/@include: literal or variable. want=True/False forces its value."""
        rng = self.rng
        value = want if want is not None else rng.random() < 0.5
        r = rng.random()
        if r < 0.55:
            return ("true" if value else "false"), value
        existing = [n for n, v in self.vars.items()
                    if (v["type"] == "Boolean!" or (v["type"] == "Boolean" and v["default"]))
                    and (v["value"] if v["has_value"] else v["default"] == "true") == value]
        if existing and rng.random() < 0.5:
            return "$" + rng.choice(existing), value
        vname = "v%d" % len(self.vars)
        if rng.random() < 0.25:
            self.vars[vname] = {"type": "Boolean", "value": None, "has_value": False,
                                "default": "true" if value else "false"}
        else:
            self.vars[vname] = {"type": "Boolean!", "value": value, "has_value": True, "default": None}
        return "$" + vname, value

    def add_directives(self, node):
        rng = self.rng
        if rng.random() > 0.13:
            return
        kinds = ["skip", "include"]
        rng.shuffle(kinds)
        for k in kinds[: 2 if rng.random() < 0.2 else 1]:
            node["dirs"].append([k, self.condition()[0]])

    def skip_all(self, sel):
        for s in sel:
            if self.rng.random() < 0.5:
                s["dirs"] = [["skip", self.condition(True)[0]]]
            else:
                s["dirs"] = [["include", self.condition(False)[0]]]

    # selections --------------------------------------------------------------------------------
    def typename(self, pt, scope, alias=None):
        key = alias or "__typename"
        sig = ("__typename", "", "String!")
        if key in scope and scope[key][0] != sig:
            alias = self.fresh_alias("__typename", scope)
            key = alias
        scope.setdefault(key, (sig, {}))
        return {"id": self.new_id(), "kind": "field", "alias": alias, "name": "__typename", "args": [],
                "dirs": [], "sel": None, "pt": pt, "rt": "String!"}

    def fresh_alias(self, name, scope):
        i = len(scope)
        while True:
            a = "%s_%d" % (name.lstrip("_") or "t", i)
            if a not in scope:
                return a
            i += 1

    def gen_field(self, pt, depth, scope):
        rng = self.rng
        fields = [f for f in self.s.fields.get(pt, {}).values()
                  if f["name"] not in ("_entities", "_service") and not f["name"].startswith("__")]
        if depth + 1 >= self.max_depth:
            fields = [f for f in fields if not self.s.is_composite(named(f["type"]))]
        rng.shuffle(fields)
        for f in fields[:4]:
            args = self.gen_args(f["args"])
            if args is None:
                continue
            rt = tstr(f["type"])
            node = {"id": self.new_id(), "kind": "field", "alias": None, "name": f["name"], "args": args,
                    "dirs": [], "sel": None, "pt": pt, "rt": rt}
            alias = None
            r = rng.random()
            if r < 0.07:
                alias = self.fresh_alias(f["name"], scope)
            elif r < 0.10:
                alias = f["name"]  # "x: x"
            elif r < 0.15:
                others = [g for g in self.s.fields.get(pt, {}) if g != f["name"]]
                if others:
                    alias = rng.choice(others)  # another field's name: may collide, then a fresh alias
            key = alias or f["name"]
            sig = (f["name"], canon_args(node), rt)
            if key in scope and scope[key][0] != sig:
                alias = self.fresh_alias(f["name"], scope)
                key = alias
            node["alias"] = alias
            entry = scope.setdefault(key, (sig, {}))
            inner = named(f["type"])
            if self.s.is_composite(inner):
                node["sel"] = self.gen_selset(inner, depth + 1, entry[1])
                if rng.random() < 0.05:
                    self.skip_all(node["sel"])
            return node
        return None

    def gen_fragment(self, pt, depth, scope):
        if self.frag_nesting >= 2:
            return None
        rng = self.rng
        r = rng.random()
        possible = self.s.possible(pt)
        if r < 0.65 and possible:
            on = rng.choice(possible)
        elif r < 0.9:
            on = rng.choice(self.s.overlapping(pt) or [pt])
        elif r < 0.95:
            on = pt
        else:
            on = None
        self.frag_nesting += 1
        try:
            sel = self.gen_selset(on or pt, depth, scope, nmax=3)
        finally:
            self.frag_nesting -= 1
        return {"id": self.new_id(), "kind": "frag", "on": on, "dirs": [], "sel": sel,
                "named": on is not None and rng.random() < 0.25, "pt": pt}

    def gen_selset(self, pt, depth, scope, nmax=None):
        rng = self.rng
        kind = self.s.kind(pt)
        if nmax is None:
            nmax = 3 if depth == 0 else 4
        out = []
        for _ in range(rng.randint(1, nmax)):
            r = rng.random()
            node = None
            if kind == "UNION" or (kind == "INTERFACE" and r < 0.45) or (kind == "OBJECT" and r < 0.08):
                node = self.gen_fragment(pt, depth, scope)
                if node is None and kind == "UNION":
                    node = self.typename(pt, scope)
            elif r > 0.92:
                node = self.typename(pt, scope, self.fresh_alias("__typename", scope) if rng.random() < 0.2 else None)
            else:
                node = self.gen_field(pt, depth, scope)
            if node is not None:
                self.add_directives(node)
                out.append(node)
        if not out:
            out.append(self.typename(pt, scope))
        return out

    def gen_op(self):
        self.vars = {}
        op = {"sel": self.gen_selset(self.s.query, 0, {}), "vars": self.vars}
        assert merge_ok(op["sel"])
        return op

    # variants ----------------------------------------------------------------------------------
    def noop_spec(self, op):
        spec = {}
        for s in iter_nodes(op["sel"]):
            if self.rng.random() < 0.35:
                have = {d[0] for d in s["dirs"]}
                if "skip" not in have and (self.rng.random() < 0.5 or "include" in have):
                    spec[s["id"]] = ["skip", "false"]
                elif "include" not in have:
                    spec[s["id"]] = ["include", "true"]
        return spec

    def shuffle_spec(self, op):
        return {s["id"]: self.rng.random() for s in iter_nodes(op["sel"])}


def apply_noop(op, spec):
    op = copy.deepcopy(op)
    for s in iter_nodes(op["sel"]):
        if s["id"] in spec and spec[s["id"]][0] not in {d[0] for d in s["dirs"]}:
            s["dirs"].append(list(spec[s["id"]]))
    return op


def apply_shuffle(op, spec):
    op = copy.deepcopy(op)
    for _, sel in iter_lists(op["sel"]):
        sel.sort(key=lambda s: spec.get(s["id"], 0.5))
    return op


ALIAS_SUFFIX = "_zz"


def apply_alias_rename(op, _spec=None):
    """Every alias a name no field can have (x: y becomes x_zz: y; x: x becomes plain x)."""
    op = copy.deepcopy(op)
    for s in iter_nodes(op["sel"]):
        if s["kind"] == "field" and s["alias"]:
            s["alias"] = None if s["alias"] == s["name"] else s["alias"] + ALIAS_SUFFIX
    return op


def has_shadowing_alias(op):
    return any(s["kind"] == "field" and s["alias"] and s["alias"] != s["name"] for s in iter_nodes(op["sel"]))


def unrename(x):
    if isinstance(x, dict):
        return OrderedDict((k[: -len(ALIAS_SUFFIX)] if k.endswith(ALIAS_SUFFIX) else k, unrename(v)) for k, v in x.items())
    if isinstance(x, list):
        return [unrename(v) for v in x]
    return x


def apply_variant(op, variant):
    kind, spec = variant
    return {"noop": apply_noop, "shuffle": apply_shuffle, "alias": apply_alias_rename}[kind](op, spec)


# ---------------------------------------------------------------------------------------------
# Checking answers

def norm_msg(msg):
    msg = re.sub(r"_[0-9a-f]{8}\b", "_H", msg)
    msg = re.sub(r"\d+", "N", msg)
    return msg[:220]


def classify_errors(resp, status, text, validity):
    """[(category, signature, detail)] of one answer. validity: None (unknown) or graphql-js errors."""
    out = []
    if status == 0:
        return [("REQUEST_FAILED", text[:120], text[:400])]
    if resp is None:
        return [("HTTP_5XX" if status >= 500 else "NON_JSON", "HTTP %d" % status, text[:400])]
    if status >= 500:
        out.append(("HTTP_5XX", "HTTP %d" % status, text[:400]))
    errors = resp.get("errors") or []
    for e in errors:
        msg = str(e.get("message", ""))
        ext = e.get("extensions") or {}
        code = ext.get("code")
        svc = ext.get("serviceName") or ext.get("service") or ext.get("subgraph")
        if "You should be using" in msg:
            cat = "WRONG_SUBGRAPH"
        elif code == "QUERY_PLANNING_FAILED":
            cat = "QUERY_PLANNING_FAILED"
        elif code == "GRAPHQL_VALIDATION_FAILED" and svc:
            cat = "SUBGRAPH_VALIDATION_FAILED"
        elif code == "GRAPHQL_VALIDATION_FAILED":
            cat = "FUZZER_INVALID_QUERY" if validity else "ROUTER_REJECTED_VALID_QUERY"
        elif code == "INTERNAL_SERVER_ERROR":
            cat = "INTERNAL_SERVER_ERROR"
        elif svc and SUBGRAPH_VALIDATION_RE.search(msg):
            cat = "SUBGRAPH_REJECTED_QUERY"
        else:
            cat = "OTHER"
        out.append((cat, "%s: %s" % (code or "-", coarse(msg)), json.dumps(e)[:600]))
    if errors and "data" in resp and resp["data"] is None and not any(f[0] in SUSPICIOUS for f in out):
        first = errors[0]
        out.append(("DATA_NULL_WITH_ERRORS", coarse(str(first.get("message", ""))), json.dumps(errors)[:600]))
    return out


def coarse(msg):
    """The class of an error message: names in double quotes, numbers and generated aliases out."""
    msg = norm_msg(msg)
    if re.match(r'Fields ".*" conflict because', msg):
        why = ("conflicting types" if "conflicting types" in msg else "different fields" if "different fields" in msg
               else "different arguments" if "arguments" in msg else "other")
        return "Fields conflict (%s)" % why
    return re.sub(r'"[^"]*"', '"…"', msg)[:110]


def cond_true(text, op):
    if text in ("true", "false"):
        return text == "true"
    v = op["vars"][text[1:]]
    return bool(v["value"]) if v["has_value"] else v["default"] == "true"


def included(node, op):
    for d, v in node["dirs"]:
        c = cond_true(v, op)
        if (d == "skip" and c) or (d == "include" and not c):
            return False
    return True


def collect(schema, sel, obj_type, op, out=None):
    if out is None:
        out = OrderedDict()
    for s in sel:
        if not included(s, op):
            continue
        if s["kind"] == "field":
            out.setdefault(s["alias"] or s["name"], []).append(s)
        elif schema.applies(s["on"], obj_type):
            collect(schema, s["sel"], obj_type, op, out)
    return out


def level_fields(sel):
    """The fields of one selection set, fragments flattened (not the fields' own sub-selections)."""
    for s in sel:
        if s["kind"] == "field":
            yield s
        else:
            yield from level_fields(s["sel"])


def check_shape(schema, op, data, has_errors):
    """[(category, signature, detail)]: the data against the query (keys, their order, types).
    Where the runtime type of an object is not told by a __typename, every possible type whose
    fields match is tried and the object is accepted if one of them fits all the way down."""

    def issue(cat, path, detail):
        return [(cat, cat, "%s: %s" % ("/".join(map(str, path)) or "data", detail))]

    def value(v, tref, fields, path):
        if v is None:
            if tref["kind"] == "NON_NULL" and not has_errors:
                return issue("SHAPE_NULL_IN_NON_NULL", path, "null for %s without an error" % tstr(tref))
            return []
        if tref["kind"] == "NON_NULL":
            return value(v, tref["ofType"], fields, path)
        if tref["kind"] == "LIST":
            if not isinstance(v, list):
                return issue("SHAPE_NOT_LIST", path, "expected a list, got %r" % (v,))
            out = []
            for i, x in enumerate(v):
                out += value(x, tref["ofType"], fields, path + [i])
            return out
        name = tref["name"]
        t = schema.types[name]
        if t["kind"] in ("OBJECT", "INTERFACE", "UNION"):
            if not isinstance(v, dict):
                return issue("SHAPE_NOT_OBJECT", path, "expected an object, got %r" % (v,))
            return obj(v, name, [x for f in fields for x in (f["sel"] or [])], path)
        if t["kind"] == "ENUM":
            if v not in [e["name"] for e in t["enumValues"]]:
                return issue("SHAPE_ENUM_VALUE", path, "%r is not a value of %s" % (v, name))
            return []
        ok = {"Int": lambda x: isinstance(x, int) and not isinstance(x, bool),
              "Float": lambda x: isinstance(x, (int, float)) and not isinstance(x, bool),
              "String": lambda x: isinstance(x, str), "ID": lambda x: isinstance(x, str),
              "Boolean": lambda x: isinstance(x, bool)}.get(name)
        if ok and not ok(v):
            return issue("SHAPE_SCALAR_TYPE", path, "%r is not a %s" % (v, name))
        return []

    def children(v, c, exp, path):
        out = []
        for k, fields in exp.items():
            fdef = schema.field_def(c, fields[0]["name"])
            if fdef is not None:
                out += value(v.get(k), fdef["type"], fields, path + [k])
        return out

    def obj(v, pt, sel, path):
        actual = list(v.keys())
        candidates = schema.possible(pt)
        pre = []
        keys_tn = {f["alias"] or "__typename" for f in level_fields(sel) if f["name"] == "__typename"}
        tn = next((v[k] for k in keys_tn if isinstance(v.get(k), str)), None)
        if tn is not None:
            if tn not in candidates:
                pre = issue("SHAPE_BAD_TYPENAME", path, "__typename %r is not a possible type of %s" % (tn, pt))
            else:
                candidates = [tn]
        expected = [(c, collect(schema, sel, c, op)) for c in candidates]
        exact = [(c, e) for c, e in expected if list(e.keys()) == actual]
        first = None
        for c, e in exact:
            sub = children(v, c, e, path)
            if not sub:
                return pre
            first = first or sub
        if first:
            return pre + first
        same = [(c, e) for c, e in expected if set(e.keys()) == set(actual)]
        if same:
            order = issue("SHAPE_KEY_ORDER", path, "keys %s, the query orders them %s (as %s)"
                          % (actual, list(same[0][1].keys()), same[0][0]))
            for c, e in same:
                sub = children(v, c, e, path)
                if not sub:
                    return pre + order
                first = first or sub
            return pre + order + first
        if pre and not candidates:
            return pre
        exp = expected[0][1] if expected else {}
        return pre + issue("SHAPE_KEYS_MISMATCH", path, "keys %s, expected %s (as %s)%s"
                           % (actual, list(exp.keys()), candidates[0] if candidates else "?",
                              "" if len(candidates) == 1 else " or another of %s" % candidates))

    if isinstance(data, dict):
        return obj(data, schema.query, op["sel"], [])
    return []


def check_error_paths(schema, op, resp):
    """Errors whose path names a response key the query does not ask for there (skipped, or
    never selected: an internal field of the plan leaking out)."""
    out = []
    if not isinstance(resp, dict):
        return out
    for e in resp.get("errors") or []:
        path = e.get("path") if isinstance(e, dict) else None
        if not isinstance(path, list) or not path:
            continue
        sel, pt = op["sel"], schema.query
        for i, p in enumerate(path):
            if isinstance(p, int):
                continue
            fields = []
            for c in schema.possible(pt) or [pt]:
                fields += collect(schema, sel, c, op).get(p, [])
            if not fields:
                out.append(("ERROR_PATH_NOT_REQUESTED", "ERROR_PATH_NOT_REQUESTED",
                            "error at %s, but the query has no included %r there: %s" % (path, p, json.dumps(e)[:300])))
                break
            sel = [x for f in fields for x in (f["sel"] or [])]
            pt = re.sub(r"[\[\]!]", "", fields[0]["rt"])
            if i + 1 < len(path) and not schema.is_composite(pt):
                break
    return out


def canon(x):
    return json.dumps(x, sort_keys=True)


def err_set(resp):
    if not isinstance(resp, dict):
        return []
    return sorted(json.dumps([e.get("message"), e.get("path")]) for e in resp.get("errors") or [])


def compare(kind, base, other):
    """[(category, signature, detail)] when a variant's answer differs from the base answer."""
    if not isinstance(base, dict) or not isinstance(other, dict):
        return []
    out = []
    bd, od = base.get("data"), other.get("data")
    if kind == "noop":
        if json.dumps(bd) != json.dumps(od):
            if canon(bd) == canon(od):
                out.append(("NOOP_VARIANT_KEY_ORDER", "NOOP_VARIANT_KEY_ORDER", ""))
            else:
                out.append(("NOOP_VARIANT_DATA", "NOOP_VARIANT_DATA", diff(bd, od)))
        if err_set(base) != err_set(other):
            out.append(("NOOP_VARIANT_ERRORS", "NOOP_VARIANT_ERRORS", "%s vs %s" % (err_set(base)[:3], err_set(other)[:3])))
    elif kind == "shuffle":
        if canon(bd) != canon(od):
            out.append(("SHUFFLE_VARIANT_DATA", "SHUFFLE_VARIANT_DATA", diff(bd, od)))
        if err_set(base) != err_set(other):
            out.append(("SHUFFLE_VARIANT_ERRORS", "SHUFFLE_VARIANT_ERRORS", "%s vs %s" % (err_set(base)[:3], err_set(other)[:3])))
    else:  # aliases renamed: the same data once the keys are renamed back
        od = unrename(od)
        if canon(bd) != canon(od):
            out.append(("ALIAS_VARIANT_DATA", "ALIAS_VARIANT_DATA", diff(bd, od)))
        other = dict(other, errors=[dict(e, path=unrename(e.get("path"))) if isinstance(e, dict) and e.get("path") else e
                                    for e in other.get("errors") or []])
        other["errors"] = [dict(e, path=[p[: -len(ALIAS_SUFFIX)] if isinstance(p, str) and p.endswith(ALIAS_SUFFIX) else p
                                         for p in e["path"]]) if isinstance(e, dict) and isinstance(e.get("path"), list) else e
                           for e in other["errors"]]
        if err_set(base) != err_set(other):
            out.append(("ALIAS_VARIANT_ERRORS", "ALIAS_VARIANT_ERRORS", "%s vs %s" % (err_set(base)[:3], err_set(other)[:3])))
    return out


def diff(a, b, path="data"):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a.keys()) + [k for k in b if k not in a]:
            if k not in a or k not in b:
                return "%s.%s only in %s" % (path, k, "base" if k in a else "variant")
            d = diff(a[k], b[k], path + "." + k)
            if d:
                return d
        return ""
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return "%s: %d vs %d items" % (path, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            d = diff(x, y, "%s[%d]" % (path, i))
            if d:
                return d
        return ""
    return "" if a == b else "%s: %s vs %s" % (path, json.dumps(a)[:120], json.dumps(b)[:120])


# ---------------------------------------------------------------------------------------------
# graphql-js validation (optional)

VALIDATOR_JS = r"""
const g = require(process.argv[2]);
const rl = require('readline').createInterface({ input: process.stdin });
let schema = null;
rl.on('line', (line) => {
  const msg = JSON.parse(line);
  let out;
  try {
    if (msg.schema) { schema = g.buildClientSchema(msg.schema); out = []; }
    else { out = g.validate(schema, g.parse(msg.query)).map((e) => e.message); }
  } catch (e) { out = ['error: ' + e.message]; }
  process.stdout.write(JSON.stringify(out) + '\n');
});
"""


class Validator:
    def __init__(self, audit_dir):
        self.proc = None
        node = shutil.which("node")
        gql = os.path.join(audit_dir, "node_modules", "graphql")
        if not node or not os.path.isdir(gql):
            return
        self.tmp = tempfile.NamedTemporaryFile("w", suffix=".js", delete=False)
        self.tmp.write(VALIDATOR_JS)
        self.tmp.close()
        self.proc = subprocess.Popen([node, self.tmp.name, gql], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)

    def ask(self, msg):
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def set_schema(self, intro):
        if self.proc:
            self.ask({"schema": intro})

    def validate(self, query):
        """None when unknown, else the list of graphql-js validation errors."""
        return self.ask({"query": query}) if self.proc else None

    def close(self):
        if self.proc:
            self.proc.stdin.close()
            self.proc.wait(5)
            os.unlink(self.tmp.name)


# ---------------------------------------------------------------------------------------------
# Running one suite

class Suite:
    def __init__(self, name, args, router, schema, validator, out):
        self.name, self.args, self.router, self.schema, self.validator, self.out = name, args, router, schema, validator, out
        self.requests = 0

    def run(self, op, plan=False):
        """(status, text, resp) of one operation through the router; restarts a crashed router."""
        query, variables = render(op)
        headers = {"tessera-expose-query-plan": "true"} if plan else None
        status, text = http(self.router.url, {"query": query, "variables": variables}, headers)
        self.requests += 1
        resp = None
        try:
            resp = json.loads(text) if status else None
        except ValueError:
            pass
        if not self.router.alive():
            status, text, resp = 0, "router exited: " + self.router.log_tail(5), None
            self.router.restarts += 1
            self.router.start()
            return status, text, resp, "ROUTER_CRASHED"
        return status, text, resp, None

    def judge(self, op, status, text, resp, crashed):
        query, _ = render(op)
        validity = self.validator.validate(query) if self.validator.proc else None
        found = []
        if crashed:
            found.append(("ROUTER_CRASHED", "router exited", text[:400]))
        found += classify_errors(resp, status, text, validity)
        if isinstance(resp, dict) and "data" in resp:
            found += check_shape(self.schema, op, resp["data"], bool(resp.get("errors")))
            found += check_error_paths(self.schema, op, resp)
        return found, validity

    def failing(self, op, category, signature, variant=None):
        """Whether op (or its variant pair) still fails with this category/signature."""
        ops = [op]
        if variant:
            ops.append(apply_variant(op, variant))
        if not all(merge_ok(o["sel"]) for o in ops):
            return False
        if self.validator.proc and any(self.validator.validate(render(o)[0]) for o in ops):
            return False
        answers = []
        for o in ops:
            status, text, resp, crashed = self.run(o)
            answers.append(resp)
            if not variant:
                found, _ = self.judge(o, status, text, resp, crashed)
                return any(f[0] == category and (f[1] == signature or category.startswith("SHAPE")) for f in found)
        return any(f[0] == category for f in compare(variant[0], answers[0], answers[1]))

    def shrink(self, op, category, signature, variant=None, budget=250):
        start = self.requests
        current = copy.deepcopy(op)
        progress = True
        while progress and self.requests - start < budget:
            progress = False
            for cand in candidates(current, self.schema):
                if self.requests - start >= budget:
                    break
                if self.failing(cand, category, signature, variant):
                    current = cand
                    progress = True
                    break
        return current


def candidates(op, schema):
    """Smaller or simpler versions of op, each a valid-looking operation (merge_ok is checked later)."""
    # remove a selection (an emptied selection set keeps __typename)
    for owner, sel in list(iter_lists(op["sel"])):
        for i, s in enumerate(sel):
            if owner is None and len(sel) == 1:
                continue
            if len(sel) == 1 and s["kind"] == "field" and s["name"] == "__typename" and not s["alias"] and not s["dirs"]:
                continue
            new = copy.deepcopy(op)
            nsel = new["sel"] if owner is None else find_node(new["sel"], owner["id"])["sel"]
            del nsel[i]
            if not nsel:
                pt = owner["on"] if owner["kind"] == "frag" and owner["on"] else named_rt(owner, schema)
                nsel.append({"id": 10 ** 6 + s["id"], "kind": "field", "alias": None, "name": "__typename",
                             "args": [], "dirs": [], "sel": None, "pt": pt, "rt": "String!"})
            yield new
    # drop a directive, an alias, an optional argument; inline a named fragment
    for s in list(iter_nodes(op["sel"])):
        for j in range(len(s["dirs"])):
            new = copy.deepcopy(op)
            del find_node(new["sel"], s["id"])["dirs"][j]
            yield new
        if s["kind"] == "frag" and s["named"]:
            new = copy.deepcopy(op)
            find_node(new["sel"], s["id"])["named"] = False
            yield new
        if s["kind"] == "field" and s["alias"]:
            new = copy.deepcopy(op)
            find_node(new["sel"], s["id"])["alias"] = None
            yield new
        if s["kind"] == "field":
            for j, a in enumerate(s["args"]):
                if not a[2]:
                    new = copy.deepcopy(op)
                    del find_node(new["sel"], s["id"])["args"][j]
                    yield new
    # unwrap a fragment whose condition is its parent's type (or none)
    for owner, sel in list(iter_lists(op["sel"])):
        for i, s in enumerate(sel):
            if s["kind"] == "frag" and not s["dirs"] and (s["on"] is None or s["on"] == s["pt"]):
                new = copy.deepcopy(op)
                nsel = new["sel"] if owner is None else find_node(new["sel"], owner["id"])["sel"]
                nsel[i:i + 1] = nsel[i]["sel"]
                yield new


def named_rt(field, schema):
    # A fragment without a type condition has its parent's type.
    return re.sub(r"[\[\]!]", "", field["rt"]) if "rt" in field else field.get("pt")


def fetch_plan(suite, op):
    _, _, resp, _ = suite.run(op, plan=True)
    if isinstance(resp, dict):
        return (resp.get("extensions") or {}).get("queryPlanText") or json.dumps((resp.get("extensions") or {}).get("queryPlan"))
    return None


def run_suite(name, index, args, validator, results_f, failures_f, others_f, examples, totals):
    print("== %s" % name, flush=True)
    summary = {"suite": name, "queries": 0, "requests": 0, "suspicious": Counter(), "other": Counter(),
               "invalid": 0, "status": "ok" if name not in STATEFUL else "stateful suite: no variant comparisons"}
    status, sdl = http("%s/%s/supergraph" % (args.audit_url, name))
    if status != 200:
        summary["status"] = "no supergraph (HTTP %d)" % status
        return summary
    tmpdir = tempfile.mkdtemp(prefix="fuzz-audit-")
    sg = os.path.join(tmpdir, "supergraph.graphql")
    with open(sg, "w") as f:
        f.write(sdl)
    log_path = os.path.join(args.out, "router-%s.log" % name)
    open(log_path, "w").close()
    router = Router(args.binary, sg, args.base_port + index, log_path)
    try:
        if not router.start():
            summary["status"] = "router did not start: " + router.log_tail(5).strip()
            return summary
        st, text = http(router.url, {"query": INTROSPECTION})
        try:
            intro = json.loads(text)["data"]
        except (ValueError, KeyError, TypeError):
            summary["status"] = "introspection failed: HTTP %d %s" % (st, text[:200])
            return summary
        schema = Schema(intro)
        validator.set_schema(intro)
        values = Values()
        st, tests = http("%s/%s/tests" % (args.audit_url, name))
        try:
            values.from_queries([t["query"] for t in json.loads(tests)])
        except (ValueError, KeyError, TypeError):
            pass
        values.from_sources(os.path.join(args.audit_dir, "src", "test-suites", name))
        rng = random.Random("%s:%s" % (args.seed, name))
        gen = Gen(schema, values, rng, args.depth)
        suite = Suite(name, args, router, schema, validator, args.out)
        per_suite_examples = Counter()
        for i in range(args.count):
            op = gen.gen_op()
            variants = [("noop", gen.noop_spec(op)), ("shuffle", gen.shuffle_spec(op))]
            if has_shadowing_alias(op):
                variants.append(("alias", None))
            runs = [("base", op, None)] + [(k, apply_variant(op, (k, spec)), (k, spec)) for k, spec in variants]
            answers = {}
            found_all = []
            for role, o, variant in runs:
                status, text, resp, crashed = suite.run(o)
                found, validity = suite.judge(o, status, text, resp, crashed)
                query, variables = render(o)
                if validity:
                    summary["invalid"] += 1
                answers[role] = resp
                if role != "base" and name not in STATEFUL:
                    found += compare(role, answers["base"], resp)
                results_f.write(json.dumps({"suite": name, "i": i, "role": role, "query": query, "variables": variables,
                                            "status": status, "graphqlJsErrors": validity,
                                            "found": [list(f) for f in found],
                                            "response": resp if resp is not None else text[:2000]}) + "\n")
                for f in found:
                    found_all.append((role, o, variant, f))
            summary["queries"] += 1
            seen_here = set()
            for role, o, variant, (cat, sig, detail) in found_all:
                if cat in ("OTHER", "FUZZER_INVALID_QUERY"):
                    summary["other"][(cat, sig)] += 1
                    totals["other"][(cat, sig)] += 1
                    if (cat, sig) not in totals["other_example"]:
                        totals["other_example"][(cat, sig)] = (name, render(o, pretty=True)[0], render(o)[1], detail)
                    continue
                if (cat, sig) in seen_here:  # once per query (the base first, then its variants)
                    continue
                seen_here.add((cat, sig))
                summary["suspicious"][(cat, sig)] += 1
                key = (cat, sig)
                totals["classes"][key][name] += 1
                # shrink the first example of each class per suite, at most 3 per class overall
                if per_suite_examples[key] >= 1 or len(examples[key]) >= 3:
                    continue
                per_suite_examples[key] += 1
                pair = variant if cat.startswith(VARIANT_PREFIXES) else None
                base_op = op if pair else o
                reproduced = suite.failing(base_op, cat, sig, pair)
                small = suite.shrink(base_op, cat, sig, pair, args.shrink_budget) if reproduced and not args.no_shrink else base_op
                ex = {"class": list(key), "suite": name, "query_index": i, "role": role, "reproduced": reproduced,
                      "detail": detail, "original": render(base_op)[0], "minimal": render(small, pretty=True)[0],
                      "variables": render(small)[1]}
                st_small, text_small, resp_small, crashed_small = suite.run(small)
                ex["response"] = resp_small if resp_small is not None else text_small[:2000]
                if not pair:  # the detail of the minimal query, when it still fails the same way
                    again = [f for f in suite.judge(small, st_small, text_small, resp_small, crashed_small)[0] if f[0] == cat]
                    if again:
                        ex["detail"] = again[0][2]
                if pair:
                    vop = apply_variant(small, pair)
                    ex["variant"] = render(vop, pretty=True)[0]
                    ex["variant_variables"] = render(vop)[1]
                    _, _, ex["variant_response"], _ = suite.run(vop)
                    ex["variant_plan"] = fetch_plan(suite, vop)
                    if not args.no_shrink:
                        ex["detail"] = (compare(pair[0], ex["response"], ex["variant_response"]) or [("", "", detail)])[0][2]
                ex["plan"] = fetch_plan(suite, small)
                examples[key].append(ex)
                failures_f.write(json.dumps(ex) + "\n")
            if (i + 1) % 50 == 0:
                print("   %d/%d queries, %d requests, %d suspicious" % (i + 1, args.count, suite.requests,
                                                                         sum(summary["suspicious"].values())), flush=True)
            results_f.flush()
            failures_f.flush()
        summary["requests"] = suite.requests
        summary["restarts"] = router.restarts
        with open(log_path) as f:
            panics = [l for l in f if "panic" in l.lower()]
        if panics:
            summary["status"] = "router log has %d panic line(s): %s" % (len(panics), panics[0].strip()[:200])
        return summary
    finally:
        router.stop()
        shutil.rmtree(tmpdir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suites", help="comma-separated suite ids (default: all the audit serves)")
    ap.add_argument("--count", type=int, default=200, help="random queries per suite")
    ap.add_argument("--seed", default="1")
    ap.add_argument("--depth", type=int, default=4, help="deepest field nesting")
    ap.add_argument("--binary", default="/tmp/tessera-fuzz")
    ap.add_argument("--audit-url", default="http://127.0.0.1:4200")
    ap.add_argument("--audit-dir", default="/tmp/audit")
    ap.add_argument("--out", default="/tmp/fuzz-out")
    ap.add_argument("--base-port", type=int, default=4150)
    ap.add_argument("--shrink-budget", type=int, default=250, help="requests spent shrinking one example")
    ap.add_argument("--no-shrink", action="store_true")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    os.makedirs(args.out, exist_ok=True)
    if args.suites:
        suites = args.suites.split(",")
    else:
        st, text = http(args.audit_url + "/ids")
        if st != 200:
            sys.exit("cannot list the audit's suites at %s/ids (HTTP %d)" % (args.audit_url, st))
        suites = json.loads(text)
    validator = Validator(args.audit_dir)
    print("%d suites, %d queries each, seed %s, graphql-js validation %s" %
          (len(suites), args.count, args.seed, "on" if validator.proc else "off (node or graphql-js missing)"), flush=True)
    examples = defaultdict(list)
    totals = {"classes": defaultdict(Counter), "other": Counter(), "other_example": {}}
    summaries = []
    with open(os.path.join(args.out, "results.jsonl"), "w") as results_f, \
            open(os.path.join(args.out, "failures.jsonl"), "w") as failures_f, \
            open(os.path.join(args.out, "other-errors.jsonl"), "w") as others_f:
        for index, name in enumerate(suites):
            summaries.append(run_suite(name, index, args, validator, results_f, failures_f, others_f, examples, totals))
        for (cat, sig), n in totals["other"].most_common():
            ex = totals["other_example"][(cat, sig)]
            others_f.write(json.dumps({"category": cat, "signature": sig, "count": n, "suite": ex[0],
                                       "query": ex[1], "variables": ex[2], "error": ex[3]}) + "\n")
    validator.close()
    report = format_report(summaries, examples, totals, args)
    with open(os.path.join(args.out, "summary.txt"), "w") as f:
        f.write(report)
    print(report)
    return 1 if examples else 0


def format_report(summaries, examples, totals, args):
    lines = ["", "# Per suite (queries run; requests incl. variants and shrinking; suspicious; other errors; invalid per graphql-js)"]
    for s in summaries:
        susp = Counter()
        for (cat, _), n in s["suspicious"].items():
            susp[cat] += n
        lines.append("%-38s %4d q %5d req  suspicious: %-40s other: %3d  invalid: %d  %s" % (
            s["suite"], s["queries"], s.get("requests", 0),
            ", ".join("%s=%d" % kv for kv in sorted(susp.items())) or "-",
            sum(s["other"].values()), s["invalid"], "" if s["status"] == "ok" else "[" + s["status"] + "]"))
    lines.append("")
    lines.append("# Failure classes (%d)" % len(totals["classes"]))
    for key, per_suite in sorted(totals["classes"].items(), key=lambda kv: (kv[0][0], -sum(kv[1].values()))):
        lines.append("")
        lines.append("## %s | %s" % key if key[0] != key[1] else "## %s" % key[0])
        lines.append("   occurrences: %d in %s" % (sum(per_suite.values()), ", ".join("%s=%d" % kv for kv in per_suite.most_common())))
        for n, ex in enumerate(examples.get(key, [])):
            lines.append("   -- example %d (%s, query #%d, %s%s)" % (n + 1, ex["suite"], ex["query_index"], ex["role"],
                                                                  "" if ex["reproduced"] else ", NOT reproduced"))
            lines.append("   detail: %s" % ex["detail"][:400])
            lines.append(indent(ex["minimal"]) + ("\n   variables: " + json.dumps(ex["variables"]) if ex["variables"] else ""))
            if "variant" in ex:
                lines.append("   variant:")
                lines.append(indent(ex["variant"]) + ("\n   variables: " + json.dumps(ex["variant_variables"]) if ex["variant_variables"] else ""))
                lines.append("   base response:    " + json.dumps(ex["response"])[:600])
                lines.append("   variant response: " + json.dumps(ex["variant_response"])[:600])
            else:
                lines.append("   response: " + json.dumps(ex["response"])[:600])
            if n == 0:
                lines.append("   plan:")
                lines.append(indent(ex.get("plan") or "(none)", 6))
                if ex.get("variant_plan"):
                    lines.append("   variant plan:")
                    lines.append(indent(ex["variant_plan"], 6))
    lines.append("")
    lines.append("# Errors judged to come from the data (not counted as failures; judge for yourself)")
    for (cat, sig), n in totals["other"].most_common():
        ex = totals["other_example"][(cat, sig)]
        lines.append("%5d  %s  %s   (e.g. %s)" % (n, cat, sig, ex[0]))
    lines.append("")
    lines.append("details: %s/{results,failures,other-errors}.jsonl" % args.out)
    return "\n".join(lines) + "\n"


def indent(text, n=6):
    return "\n".join(" " * n + l for l in text.splitlines())


if __name__ == "__main__":
    sys.exit(main())
