#!/usr/bin/env python3
"""Regenerate crates/drover-model/data/xenapi-model.json from the public XenAPI datamodel.

Keeps only the classes Drover models and only what the engine needs of each: field names, types,
qualifiers and defaults, and message signatures with their roles. Usage:

    tools/gen-xenapi-model.py ../shared/specs/xenapi/xenapi.json
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
    src = pathlib.Path(sys.argv[1])
    out = pathlib.Path(__file__).resolve().parent.parent / "crates/drover-model/data/xenapi-model.json"
    model = {c["name"]: c for c in json.loads(src.read_text())}
    classes = []
    for name in CLASSES:
        c = model[name]
        classes.append(
            {
                "name": name,
                "fields": [
                    {k: f[k] for k in ("name", "type", "qualifier", "default") if k in f}
                    for f in c["fields"]
                ],
                "messages": [
                    {
                        "name": m["name"],
                        "params": [[p["name"], p["type"], p["required"]] for p in m["params"]],
                        "result": m["result"][0],
                        "roles": m["roles"],
                        "implicit": m["implicit"],
                    }
                    for m in c["messages"]
                ],
            }
        )
    all_enums = {e["name"]: [v["name"] for v in e["values"]] for c in model.values() for e in c["enums"]}
    text = json.dumps(classes)
    used = sorted(set(re.findall(r"enum ([A-Za-z0-9_]+)", text)))
    enums = {name: all_enums[name] for name in used}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"classes": classes, "enums": enums}, separators=(",", ":"), sort_keys=False) + "\n")
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
