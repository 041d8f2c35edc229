#!/usr/bin/env python3
"""Regenerate tests/interop/data/xenapi-model.json, the test oracle for the interop suite.

It is cut from the public XenAPI datamodel (the `xenapi.json` published by xapi-project) and kept
independent of the engine's own copy under crates/, so the tests check the engine against the
published model rather than against itself. Usage (from the repository root):

    python3 tests/interop/data/gen_model.py ../shared/specs/xenapi/xenapi.json
"""
import json
import pathlib
import re
import sys

CLASSES = (
    "session task event pool pool_patch VM VM_metrics VM_guest_metrics host host_crashdump host_patch "
    "host_metrics host_cpu network VIF VIF_metrics PIF PIF_metrics Bond VLAN SM SR VDI VBD VBD_metrics "
    "PBD crashdump VTPM console user"
).split()


def main() -> None:
    src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/specs/xenapi/xenapi.json")
    out = pathlib.Path(__file__).resolve().parent / "xenapi-model.json"
    model = {c["name"]: c for c in json.loads(src.read_text())}
    classes = {}
    for name in CLASSES:
        c = model[name]
        classes[name] = {
            "fields": [
                {
                    "name": f["name"],
                    "type": f["type"],
                    "qualifier": f["qualifier"],
                    "state": f["lifecycle"]["state"],
                    **({"default": f["default"]} if "default" in f else {}),
                }
                for f in c["fields"]
            ],
            "messages": {
                m["name"]: {
                    "params": [[p["name"], p["type"], p.get("required", True)] for p in m["params"]],
                    "result": m["result"][0],
                    "implicit": m["implicit"],
                    "state": m["lifecycle"]["state"],
                }
                for m in c["messages"]
            },
        }
    all_enums = {e["name"]: [v["name"] for v in e["values"]] for c in model.values() for e in c["enums"]}
    used = sorted(set(re.findall(r"enum ([A-Za-z0-9_]+)", json.dumps(classes))))
    doc = {"source": src.name, "classes": classes, "enums": {n: all_enums[n] for n in used}}
    out.write_text(json.dumps(doc, indent=0, sort_keys=True) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
