"""Helpers shared by the interop tests: the datamodel oracle, raw wire clients, record builders,
type checks against the published datamodel, and the referential-integrity checker."""

from __future__ import annotations

import contextlib
import http.client
import json
import pathlib
import re
import threading
import time
import uuid
import xmlrpc.client

import pytest
import XenAPI

DATA = pathlib.Path(__file__).resolve().parent / "data"
MODEL = json.loads((DATA / "xenapi-model.json").read_text())
CLASSES = MODEL["classes"]
ENUMS = MODEL["enums"]

NULL = "OpaqueRef:NULL"
MiB = 1024 * 1024
GiB = 1024 * MiB
# Default timeout for any single call made by the tests: a hung server must fail a test, not the run.
CALL_TIMEOUT = 60.0

# Classes served by Drover (the seed's list). `event` has no objects.
OBJECT_CLASSES = [c for c in CLASSES if c != "event"]

# Bound fields: (class, field holding one ref) <-> (class, field holding the set of back-refs).
# From the seed's table "Relationships Between Classes" plus xapi's snapshot/task relations.
RELATIONS = [
    (("PIF", "bond_slave_of"), ("Bond", "slaves")),
    (("Bond", "master"), ("PIF", "bond_master_of")),
    (("VLAN", "tagged_PIF"), ("PIF", "VLAN_slave_of")),
    (("PBD", "host"), ("host", "PBDs")),
    (("PBD", "SR"), ("SR", "PBDs")),
    (("VBD", "VDI"), ("VDI", "VBDs")),
    (("crashdump", "VDI"), ("VDI", "crash_dumps")),
    (("VBD", "VM"), ("VM", "VBDs")),
    (("crashdump", "VM"), ("VM", "crash_dumps")),
    (("VIF", "VM"), ("VM", "VIFs")),
    (("VIF", "network"), ("network", "VIFs")),
    (("PIF", "host"), ("host", "PIFs")),
    (("PIF", "network"), ("network", "PIFs")),
    (("VDI", "SR"), ("SR", "VDIs")),
    (("VTPM", "VM"), ("VM", "VTPMs")),
    (("console", "VM"), ("VM", "consoles")),
    (("VM", "resident_on"), ("host", "resident_VMs")),
    (("host_cpu", "host"), ("host", "host_CPUs")),
    (("host_crashdump", "host"), ("host", "crashdumps")),
    (("host_patch", "host"), ("host", "patches")),
    (("host_patch", "pool_patch"), ("pool_patch", "host_patches")),
    (("VM", "snapshot_of"), ("VM", "snapshots")),
    (("VDI", "snapshot_of"), ("VDI", "snapshots")),
    (("task", "subtask_of"), ("task", "subtasks")),
]


# --------------------------------------------------------------------------------------------
# datamodel queries


def fields(cls, include_removed=False):
    return [f for f in CLASSES[cls]["fields"] if include_removed or f["state"] != "Removed_s"]


def field(cls, name):
    for f in CLASSES[cls]["fields"]:
        if f["name"] == name:
            return f
    raise KeyError(f"{cls}.{name}")


def messages(cls, include_removed=False):
    return {n: m for n, m in CLASSES[cls]["messages"].items() if include_removed or m["state"] != "Removed_s"}


def has_message(cls, name, include_removed=False):
    return name in messages(cls, include_removed)


def has_name_label(cls):
    return any(f["name"] == "name_label" for f in fields(cls))


# --------------------------------------------------------------------------------------------
# transports and raw clients


class TimeoutTransport(xmlrpc.client.Transport):
    """xmlrpc Transport whose HTTP connections time out instead of hanging the test run."""

    def __init__(self, timeout=CALL_TIMEOUT):
        super().__init__()
        self.timeout = timeout

    def make_connection(self, host):
        conn = super().make_connection(host)
        conn.timeout = self.timeout
        if conn.sock is not None:
            conn.sock.settimeout(self.timeout)
        return conn


def session(url, user="admin", password=None, originator="drover-interop-tests", timeout=CALL_TIMEOUT):
    """A logged-in XenAPI.Session (the real client)."""
    s = XenAPI.Session(url, transport=TimeoutTransport(timeout))
    s.xenapi.login_with_password(user, password, "2.0", originator)
    return s


def raw_proxy(url, path="/RPC2", timeout=CALL_TIMEOUT):
    """A plain ServerProxy: returns the {Status, Value | ErrorDescription} structs unparsed, so
    nothing (such as the XenAPI client's automatic re-login) hides what the server said."""
    return xmlrpc.client.ServerProxy(url + path, allow_none=True, transport=TimeoutTransport(timeout))


def raw_login(url, password, user="admin", path="/RPC2"):
    r = raw_proxy(url, path).session.login_with_password(user, password, "2.0", "drover-interop-raw")
    assert r.get("Status") == "Success", r
    return r["Value"]


def expect_success(result):
    assert isinstance(result, dict), result
    assert result.get("Status") == "Success", result
    assert "Value" in result, result
    return result["Value"]


def expect_failure_struct(result, *details):
    """A raw struct must be a Failure with exactly these ErrorDescription items."""
    assert isinstance(result, dict), result
    assert result.get("Status") == "Failure", result
    assert result.get("ErrorDescription") == list(details), result


@contextlib.contextmanager
def failure(code, *params):
    """`with failure("HANDLE_INVALID", "VM", ref): ...` -- the block must raise XenAPI.Failure whose
    ErrorDescription is exactly [code, *params]."""
    with pytest.raises(XenAPI.Failure) as ei:
        yield ei
    assert ei.value.details == [code, *params], f"expected {[code, *params]!r}, got {ei.value.details!r}"


@contextlib.contextmanager
def failure_code(code):
    """Like failure() but only the code is fixed; the test inspects ei.value.details itself."""
    with pytest.raises(XenAPI.Failure) as ei:
        yield ei
    assert ei.value.details and ei.value.details[0] == code, f"expected {code}, got {ei.value.details!r}"


def http_post(url, path, body, content_type="text/xml", headers=None, timeout=CALL_TIMEOUT):
    """POST raw bytes; returns (status, headers dict, body bytes)."""
    host = url.split("//", 1)[1].rstrip("/")
    conn = http.client.HTTPConnection(host, timeout=timeout)
    try:
        h = {"Content-Type": content_type}
        h.update(headers or {})
        conn.request("POST", path, body=body, headers=h)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def jsonrpc(url, method, params, version="2.0", req_id=1, timeout=CALL_TIMEOUT):
    """One JSON-RPC call; returns the decoded response object (v1 when version is None)."""
    import requests

    body = {"method": method, "params": params, "id": req_id}
    if version is not None:
        body["jsonrpc"] = version
    r = requests.post(url + "/jsonrpc", data=json.dumps(body), headers={"Content-Type": "application/json"}, timeout=timeout)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    return r.json()


# --------------------------------------------------------------------------------------------
# values


def parse_value_fragment(fragment):
    """Decode a task result: an XML-RPC `<value>` fragment."""
    doc = f"<?xml version='1.0'?><methodResponse><params><param>{fragment}</param></params></methodResponse>"
    (value,), _ = xmlrpc.client.loads(doc)
    return value


DATETIME_RE = re.compile(r"^\d{8}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:?\d{2})?$")
INT_RE = re.compile(r"^-?\d+$")


def type_error(value, typ, where=""):
    """None when `value` (as decoded by Python's xmlrpc client) has datamodel type `typ`, else a
    description of the mismatch. Ints travel as decimal strings, datetimes as dateTime.iso8601."""
    t = typ.strip()
    m = re.fullmatch(r"\((.+?) -> (.+)\) map", t)
    if m:
        kt, vt = m.group(1), m.group(2)
        if not isinstance(value, dict):
            return f"{where}: expected map {t}, got {type(value).__name__} {value!r:.80}"
        for k, v in value.items():
            if not isinstance(k, str):
                return f"{where}: map key {k!r} is not a string"
            if kt == "int" and not INT_RE.match(k):
                return f"{where}: int map key {k!r}"
            if kt.endswith(" ref") and not k.startswith("OpaqueRef:"):
                return f"{where}: ref map key {k!r}"
            if kt.startswith("enum ") and k not in ENUMS[kt[5:]]:
                return f"{where}: enum map key {k!r} not in {kt}"
            err = type_error(v, vt, f"{where}[{k}]")
            if err:
                return err
        return None
    if t.endswith(" set"):
        if not isinstance(value, list):
            return f"{where}: expected {t}, got {type(value).__name__} {value!r:.80}"
        for i, v in enumerate(value):
            err = type_error(v, t[: -len(" set")], f"{where}[{i}]")
            if err:
                return err
        hashable = [json.dumps(v, sort_keys=True, default=str) for v in value]
        if len(set(hashable)) != len(hashable):
            return f"{where}: set has duplicates: {value!r:.200}"
        return None
    if t.endswith(" record"):
        return None if isinstance(value, dict) else f"{where}: expected record, got {value!r:.80}"
    if t.endswith(" ref"):
        ok = isinstance(value, str) and value.startswith("OpaqueRef:")
        return None if ok else f"{where}: expected {t}, got {value!r:.80}"
    if t.startswith("enum "):
        ok = isinstance(value, str) and value in ENUMS[t[5:]]
        return None if ok else f"{where}: {value!r:.80} is not a value of {t}"
    if t == "string":
        return None if isinstance(value, str) else f"{where}: expected string, got {type(value).__name__} {value!r:.80}"
    if t == "int":
        ok = isinstance(value, str) and INT_RE.match(value)
        return None if ok else f"{where}: expected int as decimal string, got {type(value).__name__} {value!r:.80}"
    if t == "float":
        ok = isinstance(value, float)
        return None if ok else f"{where}: expected float (double), got {type(value).__name__} {value!r:.80}"
    if t == "bool":
        return None if isinstance(value, bool) else f"{where}: expected bool, got {type(value).__name__} {value!r:.80}"
    if t == "datetime":
        ok = isinstance(value, xmlrpc.client.DateTime) and DATETIME_RE.match(value.value)
        return None if ok else f"{where}: expected dateTime.iso8601, got {type(value).__name__} {value!r:.80}"
    return f"{where}: unknown type {t}"


def ref_target(typ):
    """'VM ref' -> 'VM', 'VBD ref set' -> 'VBD', '(VIF ref -> string) map' -> None."""
    m = re.fullmatch(r"(\w+) ref( set)?", typ)
    return m.group(1) if m else None


# --------------------------------------------------------------------------------------------
# record builders (ints as decimal strings, as on the wire)


def vm_record(name, memory=256 * MiB, vcpus=1, template=False, **over):
    mem = str(memory)
    rec = {
        "name_label": name,
        "name_description": "created by the interop tests",
        "user_version": "1",
        "is_a_template": template,
        "affinity": NULL,
        "memory_static_max": mem,
        "memory_dynamic_max": mem,
        "memory_dynamic_min": mem,
        "memory_static_min": mem,
        "VCPUs_params": {},
        "VCPUs_max": str(vcpus),
        "VCPUs_at_startup": str(vcpus),
        "actions_after_softreboot": "soft_reboot",
        "actions_after_shutdown": "destroy",
        "actions_after_reboot": "restart",
        "actions_after_crash": "restart",
        "PV_bootloader": "",
        "PV_kernel": "",
        "PV_ramdisk": "",
        "PV_args": "",
        "PV_bootloader_args": "",
        "PV_legacy_args": "",
        "HVM_boot_policy": "BIOS order",
        "HVM_boot_params": {"order": "cd"},
        "HVM_shadow_multiplier": 1.0,
        "platform": {},
        "PCI_bus": "",
        "other_config": {},
        "recommendations": "",
        "xenstore_data": {},
        "tags": [],
        "suspend_SR": NULL,
        "hardware_platform_version": "0",
        "has_vendor_device": False,
        "domain_type": "hvm",
    }
    rec.update(over)
    return rec


def vdi_record(sr, name="interop-disk", size=64 * MiB, **over):
    rec = {
        "name_label": name,
        "name_description": "",
        "SR": sr,
        "virtual_size": str(size),
        "type": "user",
        "sharable": False,
        "read_only": False,
        "other_config": {},
        "xenstore_data": {},
        "sm_config": {},
        "tags": [],
    }
    rec.update(over)
    return rec


def vbd_record(vm, vdi, userdevice="0", **over):
    rec = {
        "VM": vm,
        "VDI": vdi,
        "userdevice": userdevice,
        "bootable": False,
        "mode": "RW",
        "type": "Disk",
        "unpluggable": True,
        "empty": False,
        "other_config": {},
        "qos_algorithm_type": "",
        "qos_algorithm_params": {},
    }
    rec.update(over)
    return rec


def vif_record(vm, network, device="0", **over):
    rec = {
        "device": device,
        "network": network,
        "VM": vm,
        "MAC": "",
        "MTU": "1500",
        "other_config": {},
        "qos_algorithm_type": "",
        "qos_algorithm_params": {},
    }
    rec.update(over)
    return rec


def unique(prefix="interop"):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------------------------
# common object lookups


def the_host(x):
    hosts = x.host.get_all()
    assert len(hosts) == 1, hosts
    return hosts[0]


def the_pool(x):
    pools = x.pool.get_all()
    assert len(pools) == 1, pools
    return pools[0]


def local_sr(x):
    """The pool's default SR if set, else the one SR that has a PBD to the host."""
    pool = the_pool(x)
    sr = x.pool.get_default_SR(pool)
    if sr != NULL:
        return sr
    srs = [r["SR"] for r in x.PBD.get_all_records().values()]
    assert srs, "no SR with a PBD"
    return srs[0]


def management_network(x):
    pifs = x.PIF.get_all_records()
    for r in pifs.values():
        if r.get("management"):
            return r["network"]
    nets = x.network.get_all()
    assert nets
    return nets[0]


def template(x, name="Other install media"):
    refs = x.VM.get_by_name_label(name)
    assert len(refs) == 1, f"template {name!r}: {refs}"
    return refs[0]


def new_vm(x, name=None, **kw):
    return x.VM.create(vm_record(name or unique("vm"), **kw))


def new_vm_with_disk(x, name=None, size=64 * MiB, **kw):
    vm = new_vm(x, name, **kw)
    vdi = x.VDI.create(vdi_record(local_sr(x), name=(name or "disk") + "-disk", size=size))
    vbd = x.VBD.create(vbd_record(vm, vdi, "0", bootable=True))
    return vm, vdi, vbd


def wait_task(x, task, timeout=60.0, poll=0.05):
    """Poll a task until it leaves `pending`; returns its record."""
    deadline = time.monotonic() + timeout
    while True:
        rec = x.task.get_record(task)
        if rec["status"] not in ("pending", "cancelling"):
            return rec
        if time.monotonic() > deadline:
            raise AssertionError(f"task {task} still {rec['status']} after {timeout}s: {rec}")
        time.sleep(poll)


def wait_until(pred, timeout=30.0, poll=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)


def all_records(x, classes=None):
    """{class: {ref: record}} for every class that has get_all_records."""
    out = {}
    for cls in classes or OBJECT_CLASSES:
        if has_message(cls, "get_all_records", include_removed=True) and cls not in ("VBD_metrics", "VIF_metrics"):
            out[cls] = getattr(x, cls).get_all_records()
    return out


def integrity_problems(recs):
    """Dangling references and half-bound relations in a {class: {ref: record}} snapshot."""
    problems = []
    # 1. every ref field to a class we have records of points to an existing object (or NULL)
    for cls, objs in recs.items():
        ref_fields = [(f["name"], ref_target(f["type"])) for f in fields(cls) if ref_target(f["type"])]
        for ref, rec in objs.items():
            for fname, target in ref_fields:
                if target not in recs or fname not in rec:
                    continue
                vals = rec[fname] if isinstance(rec[fname], list) else [rec[fname]]
                for v in vals:
                    if v != NULL and v not in recs[target]:
                        problems.append(f"{cls} {ref}.{fname} -> {v}: no such {target}")
    # 2. bound fields agree both ways
    for (a_cls, a_f), (b_cls, b_f) in RELATIONS:
        if a_cls not in recs or b_cls not in recs:
            continue
        for a_ref, a in recs[a_cls].items():
            target = a.get(a_f, NULL)
            if target != NULL and target in recs[b_cls] and a_ref not in recs[b_cls][target].get(b_f, []):
                problems.append(f"{a_cls} {a_ref}.{a_f} = {target} but {b_cls}.{b_f} of it lacks {a_ref}")
        for b_ref, b in recs[b_cls].items():
            for a_ref in b.get(b_f, []):
                if a_ref in recs[a_cls] and recs[a_cls][a_ref].get(a_f) != b_ref:
                    problems.append(
                        f"{b_cls} {b_ref}.{b_f} holds {a_ref} but its {a_f} is {recs[a_cls][a_ref].get(a_f)}"
                    )
    return problems


def assert_integrity(x, classes=None, only=None):
    """No dangling refs / half-bound relations; with `only` (refs), just the problems that name one
    of them (so a test checks what it made, and a global check elsewhere catches the rest)."""
    problems = integrity_problems(all_records(x, classes))
    if only is not None:
        problems = [p for p in problems if any(r in p for r in only)]
    assert not problems, "referential integrity broken:\n  " + "\n  ".join(problems[:50])


def in_thread(fn, *args):
    """Start fn(*args) in a thread; returns a handle whose .result(timeout) gives (value, exc, t_end)."""

    class Handle:
        def __init__(self):
            self.value = self.exc = self.t_end = None
            self.done = threading.Event()

        def result(self, timeout):
            assert self.done.wait(timeout), f"call did not return within {timeout}s"
            return self.value, self.exc, self.t_end

    h = Handle()

    def run():
        try:
            h.value = fn(*args)
        except BaseException as e:  # noqa: BLE001 - reported to the caller
            h.exc = e
        h.t_end = time.monotonic()
        h.done.set()

    threading.Thread(target=run, daemon=True).start()
    return h
