#!/usr/bin/env python3
"""Reads config/workers.json (the fleet) and turns it into what wrangler and the router need.

  fleet.py validate     [--file F]                  check the file; errors name the field
  fleet.py router-fleet [--file F]                  print the router's FLEET variable (JSON)
  fleet.py gen-local    [--file F] --out DIR [--var KEY=VALUE ...] [--downstream-var KEY=VALUE ...]
                                                    write one wrangler config per downstream and
                                                    one for the router (local URLs), and print a
                                                    manifest (JSON) of what to start on which port

The local stack (scripts/stack.sh) and the end-to-end tests (e2e/) both use gen-local, so the
fleet is described in exactly one place.
"""

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_FILE = os.path.join(ROOT, "config", "workers.json")
COMPATIBILITY_DATE = "2025-09-01"
MODES = {"all_success", "all_fail", "percentage_fail", "rate_limited", "cyclic_outage"}
INSPECTOR_OFFSET = 10000
# Router variables taken from the "router" section of the file (key -> wrangler var).
ROUTER_KEYS = {
    "default_algo": "DEFAULT_ALGO",
    "max_attempts": "MAX_ATTEMPTS",
    "attempt_timeout_ms": "ATTEMPT_TIMEOUT_MS",
    "request_deadline_ms": "REQUEST_DEADLINE_MS",
    "distinct_downstreams": "DISTINCT_DOWNSTREAMS",
}
# Downstream behaviour fields (key -> wrangler var of downstream-worker).
DOWNSTREAM_KEYS = {
    "mode": "MODE",
    "percentage_fail": "PERCENTAGE_FAIL",
    "delay_ms": "PROCESSING_DELAY_MS",
    "latency_jitter_ms": "LATENCY_JITTER_MS",
    "rate_limit_rps": "RATE_LIMIT_RPS",
    "outage_up_secs": "OUTAGE_UP_SECS",
    "outage_down_secs": "OUTAGE_DOWN_SECS",
    "fail_status": "FAIL_STATUS",
    "outage_offset_secs": "OUTAGE_OFFSET_SECS",
}


class FleetFileError(Exception):
    pass


def fail(path, problem):
    raise FleetFileError(f"{path}: {problem}")


def check_port(path, value):
    if not isinstance(value, int) or not 1024 <= value <= 65535 - INSPECTOR_OFFSET:
        fail(path, f"must be a port from 1024 to {65535 - INSPECTOR_OFFSET}, got {value!r}")


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise FleetFileError(f"{path}: {e.strerror}") from e
    except json.JSONDecodeError as e:
        raise FleetFileError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(doc, dict):
        fail("(top level)", "must be an object")
    downstreams = doc.get("downstreams")
    if not isinstance(downstreams, list) or not downstreams:
        fail("downstreams", "must be a non-empty list")
    seen_names, seen_ports = set(), set()
    for i, d in enumerate(downstreams):
        where = f"downstreams[{i}]"
        if not isinstance(d, dict):
            fail(where, "must be an object")
        name = d.get("name")
        if not isinstance(name, str) or not name.strip():
            fail(f"{where}.name", "missing")
        if name in seen_names:
            fail(f"{where}.name", f"{name!r} is listed twice")
        seen_names.add(name)
        if "port" in d:
            check_port(f"{where}.port", d["port"])
            if d["port"] in seen_ports:
                fail(f"{where}.port", f"{d['port']} is used twice")
            seen_ports.add(d["port"])
        elif "url" not in d and "service" not in d:
            fail(where, "give a local port, a url or a service binding")
        mode = d.get("mode", "All_Success")
        if not isinstance(mode, str) or mode.lower() not in MODES:
            fail(f"{where}.mode", f"must be one of All_Success, All_fail, percentage_fail, rate_limited, cyclic_outage, got {mode!r}")
        pct = d.get("percentage_fail", 0)
        if not isinstance(pct, (int, float)) or not 0 <= pct <= 100:
            fail(f"{where}.percentage_fail", f"must be a number from 0 to 100, got {pct!r}")
        delay = d.get("delay_ms", 0)
        if not isinstance(delay, (int, float)) or delay < 0:
            fail(f"{where}.delay_ms", f"must be a non-negative number, got {delay!r}")
        weight = d.get("weight", 1)
        if not isinstance(weight, (int, float)) or weight <= 0:
            fail(f"{where}.weight", f"must be a positive number, got {weight!r}")
    router = doc.get("router", {})
    if not isinstance(router, dict):
        fail("router", "must be an object")
    if "port" in router:
        check_port("router.port", router["port"])
    return doc


def router_fleet(doc, local):
    """The router's FLEET value: local ports become loopback URLs when `local` is true."""
    fleet = []
    for d in doc["downstreams"]:
        entry = {"name": d["name"]}
        if local and "port" in d:
            entry["url"] = f"http://127.0.0.1:{d['port']}"
        elif "service" in d:
            entry["service"] = d["service"]
        elif "url" in d:
            entry["url"] = d["url"]
        else:
            raise FleetFileError(f"downstream {d['name']}: needs a url or service to deploy")
        if "weight" in d:
            entry["weight"] = d["weight"]
        if "tags" in d:
            entry["tags"] = d["tags"]
        fleet.append(entry)
    return json.dumps(fleet, separators=(",", ":"))


def toml_string(value):
    # A JSON string is a valid TOML basic string for everything json.dumps emits.
    return json.dumps(str(value))


def write_config(path, name, main, variables):
    lines = [
        "# Generated by scripts/fleet.py from config/workers.json; edit that file instead.",
        f"name = {toml_string(name)}",
        f"main = {toml_string(main)}",
        f'compatibility_date = "{COMPATIBILITY_DATE}"',
        "",
        "[vars]",
    ]
    lines += [f"{key} = {toml_string(value)}" for key, value in variables.items()]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def parse_pairs(pairs, flag):
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise FleetFileError(f"{flag} {pair!r}: expected KEY=VALUE")
        key, value = pair.split("=", 1)
        out[key] = value
    return out


def gen_local(doc, out_dir, router_vars, downstream_vars):
    os.makedirs(out_dir, exist_ok=True)
    manifest = {"downstreams": [], "router": None}
    for d in doc["downstreams"]:
        if "port" not in d:
            continue
        variables = {"WORKER_NAME": d["name"], "ALLOW_OVERRIDES": "true"}
        for key, var in DOWNSTREAM_KEYS.items():
            if key in d:
                variables[var] = d[key]
        variables.update(downstream_vars)
        path = os.path.join(out_dir, f"{d['name']}.toml")
        write_config(path, d["name"], os.path.join(ROOT, "downstream-worker", "build", "index.js"), variables)
        manifest["downstreams"].append(
            {"name": d["name"], "port": d["port"], "inspector_port": d["port"] + INSPECTOR_OFFSET, "config": path}
        )
    router = doc.get("router", {})
    port = router.get("port", 8787)
    variables = {"FLEET": router_fleet(doc, local=True), "CORS_ALLOW_ORIGIN": "*"}
    for key, var in ROUTER_KEYS.items():
        if key in router:
            variables[var] = router[key]
    variables.update(router_vars)
    variables = {k: v for k, v in variables.items() if v != ""}
    path = os.path.join(out_dir, "router.toml")
    write_config(path, "magnetar-router", os.path.join(ROOT, "router", "build", "index.js"), variables)
    manifest["router"] = {"name": "magnetar-router", "port": port, "inspector_port": port + INSPECTOR_OFFSET, "config": path}
    return manifest


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["validate", "router-fleet", "gen-local"])
    parser.add_argument("--file", default=DEFAULT_FILE)
    parser.add_argument("--out")
    parser.add_argument("--var", action="append", help="router variable KEY=VALUE (gen-local)")
    parser.add_argument("--downstream-var", action="append", help="variable for every downstream (gen-local)")
    parser.add_argument("--local", action="store_true", help="router-fleet: use loopback URLs for local ports")
    args = parser.parse_args(argv)
    try:
        doc = load(args.file)
        if args.command == "validate":
            print(f"{args.file}: {len(doc['downstreams'])} downstreams, ok")
        elif args.command == "router-fleet":
            print(router_fleet(doc, local=args.local))
        else:
            if not args.out:
                raise FleetFileError("gen-local needs --out DIR")
            manifest = gen_local(doc, args.out, parse_pairs(args.var, "--var"), parse_pairs(args.downstream_var, "--downstream-var"))
            print(json.dumps(manifest, indent=2))
    except FleetFileError as e:
        print(f"fleet config error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
