"""Every class of the seed: get_all, get_all_records, get_record, get_by_uuid, get_by_name_label and
every field getter, checked against the published datamodel (field set and wire types)."""

import uuid
import xmlrpc.client

import pytest
import XenAPI

from xapitest import (
    CLASSES,
    NULL,
    OBJECT_CLASSES,
    failure,
    fields,
    has_message,
    has_name_label,
    integrity_problems,
    local_sr,
    management_network,
    new_vm,
    ref_target,
    type_error,
    unique,
    vbd_record,
    vdi_record,
    vif_record,
    wait_task,
)

# session and user never had get_all / get_all_records in the API (neither in the seed nor now);
# VIF_metrics and VBD_metrics had them in the seed's revision (they are "removed" in today's xapi).
LISTABLE = [c for c in OBJECT_CLASSES if has_message(c, "get_all", include_removed=True)]
RECORD_LISTABLE = [c for c in OBJECT_CLASSES if has_message(c, "get_all_records", include_removed=True)]


@pytest.fixture(scope="module")
def populated(xapi, x):
    """Objects of as many classes as the API can make directly, on top of the first-start set."""
    sr = local_sr(x)
    net = x.network.create({"name_label": unique("net"), "name_description": "", "MTU": "1500", "other_config": {}, "tags": []})
    vm = new_vm(x, unique("classes-vm"))
    vdi = x.VDI.create(vdi_record(sr, unique("classes-vdi")))
    vbd = x.VBD.create(vbd_record(vm, vdi, "0", bootable=True))
    vif = x.VIF.create(vif_record(vm, net, "0"))
    running = new_vm(x, unique("classes-running"))
    task = x.Async.VM.start(running, False, False)
    wait_task(x, task)
    # console and VTPM too, so their getters and record types are checked on a real object; if
    # their create fails, test_create_and_destroy reports it, and the rest here still runs
    for make in (lambda: x.console.create({"other_config": {}}), lambda: x.VTPM.create(vm, False)):
        try:
            make()
        except XenAPI.Failure:
            pass
    return {"vm": vm, "vdi": vdi, "vbd": vbd, "vif": vif, "network": net, "task": task, "running": running}


def objects_of(xapi, x, cls):
    """{ref: record} of a class, also for the classes that have no get_all_records."""
    if cls == "session":
        me = xapi._session
        return {me: x.session.get_record(me)}
    if cls == "user":
        u = x.session.get_this_user(xapi._session)
        return {u: x.user.get_record(u)}
    return getattr(x, cls).get_all_records()


def stable_equal(before, value, after):
    """A runtime value read between two record reads must equal one of them or lie between them."""
    if value == before or value == after:
        return True
    if isinstance(value, xmlrpc.client.DateTime):
        return str(before) <= str(value) <= str(after)
    try:
        b, v, a = float(before), float(value), float(after)
    except (TypeError, ValueError):
        return False
    return min(a, b) <= v <= max(a, b)


# --------------------------------------------------------------------------------------------


def test_first_start_objects(x):
    """What the engine creates on first start (the contract's list)."""
    assert len(x.pool.get_all()) == 1
    hosts = x.host.get_all()
    assert len(hosts) == 1
    host = hosts[0]
    assert x.host.get_metrics(host) in x.host_metrics.get_all()
    assert x.host.get_host_CPUs(host), "host has no host_cpu records"
    assert x.pool.get_master(x.pool.get_all()[0]) == host
    assert x.SR.get_all() and x.PBD.get_all() and x.network.get_all() and x.PIF.get_all() and x.SM.get_all()
    pifs = x.PIF.get_all_records()
    assert any(p["management"] for p in pifs.values()), "no management PIF"
    assert all(p["host"] == host for p in pifs.values())
    for pbd in x.PBD.get_all_records().values():
        assert pbd["host"] == host
    templates = [r for r in x.VM.get_all_records().values() if r["is_a_template"]]
    assert any(t["name_label"] == "Other install media" for t in templates)


@pytest.mark.parametrize("cls", LISTABLE)
def test_get_all_and_get_all_records(populated, x, cls):
    refs = getattr(x, cls).get_all()
    assert isinstance(refs, list)
    assert all(isinstance(r, str) and r.startswith("OpaqueRef:") and r != NULL for r in refs), refs
    assert len(set(refs)) == len(refs), "duplicate refs"
    recs = getattr(x, cls).get_all_records()
    assert isinstance(recs, dict)
    assert set(recs) == set(refs)


@pytest.mark.parametrize("cls", OBJECT_CLASSES)
def test_record_fields_and_types(populated, xapi, x, cls):
    """get_record has exactly the datamodel's fields (removed ones tolerated), each of its type."""
    objs = objects_of(xapi, x, cls)
    expected = {f["name"] for f in fields(cls)}
    allowed = {f["name"] for f in fields(cls, include_removed=True)}
    types = {f["name"]: f["type"] for f in fields(cls, include_removed=True)}
    errors = []
    for ref, rec in objs.items():
        missing = expected - set(rec)
        extra = set(rec) - allowed
        if missing:
            errors.append(f"{ref}: missing fields {sorted(missing)}")
        if extra:
            errors.append(f"{ref}: fields not in the datamodel {sorted(extra)}")
        for name, value in rec.items():
            if name in types:
                err = type_error(value, types[name], f"{cls}.{name}")
                if err:
                    errors.append(err)
    assert not errors, "\n".join(errors[:40])


@pytest.mark.parametrize("cls", RECORD_LISTABLE)
def test_get_record_of_each_object(populated, xapi, x, cls):
    """get_record(ref) agrees with get_all_records()[ref] (runtime fields may move in between)."""
    objs = objects_of(xapi, x, cls)
    runtime = {f["name"] for f in fields(cls) if f["qualifier"] == "RO/runtime"}
    for ref, rec in objs.items():
        one = getattr(x, cls).get_record(ref)
        stable = {k: v for k, v in rec.items() if k not in runtime}
        assert {k: v for k, v in one.items() if k not in runtime} == stable, ref
        assert one["uuid"] == rec["uuid"]


@pytest.mark.parametrize("cls", [c for c in OBJECT_CLASSES if has_message(c, "get_by_uuid", include_removed=True)])
def test_get_by_uuid(populated, xapi, x, cls):
    for ref, rec in objects_of(xapi, x, cls).items():
        assert getattr(x, cls).get_by_uuid(rec["uuid"]) == ref
        assert getattr(x, cls).get_uuid(ref) == rec["uuid"]
    missing = str(uuid.uuid4())
    with failure("UUID_INVALID", cls, missing):
        getattr(x, cls).get_by_uuid(missing)


@pytest.mark.parametrize("cls", [c for c in OBJECT_CLASSES if has_name_label(c) and has_message(c, "get_by_name_label")])
def test_get_by_name_label(populated, xapi, x, cls):
    objs = objects_of(xapi, x, cls)
    for ref, rec in objs.items():
        found = getattr(x, cls).get_by_name_label(rec["name_label"])
        assert ref in found
        assert all(objs[r]["name_label"] == rec["name_label"] for r in found if r in objs)
    assert getattr(x, cls).get_by_name_label("no object is called " + unique()) == []


@pytest.mark.parametrize("cls", OBJECT_CLASSES)
def test_every_field_getter(populated, xapi, x, cls):
    """get_<field> on one object of each class that has any, against get_record."""
    objs = objects_of(xapi, x, cls)
    api = getattr(x, cls)
    getters = ["get_" + f["name"] for f in fields(cls) if has_message(cls, "get_" + f["name"])]
    if not objs:
        # no object of this class exists: every getter must still be there and say HANDLE_INVALID
        bogus = "OpaqueRef:" + str(uuid.uuid4())
        for getter in getters:
            with failure("HANDLE_INVALID", cls, bogus):
                getattr(api, getter)(bogus)
        return
    ref = sorted(objs)[0]
    before = api.get_record(ref)
    got = {}
    for f in fields(cls):
        getter = "get_" + f["name"]
        if not has_message(cls, getter):
            continue
        got[f["name"]] = getattr(api, getter)(ref)
    after = api.get_record(ref)
    bad = []
    for name, value in got.items():
        err = type_error(value, [f for f in fields(cls) if f["name"] == name][0]["type"], f"{cls}.get_{name}")
        if err:
            bad.append(err)
        elif not stable_equal(before.get(name), value, after.get(name)):
            bad.append(f"{cls}.get_{name} = {value!r:.100} but get_record has {before.get(name)!r:.100}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("cls", [c for c in OBJECT_CLASSES if has_message(c, "get_record", include_removed=True)])
def test_unknown_ref_is_handle_invalid(x, cls):
    bogus = "OpaqueRef:" + str(uuid.uuid4())
    with failure("HANDLE_INVALID", cls, bogus):
        getattr(x, cls).get_record(bogus)


@pytest.mark.parametrize("cls", [c for c in OBJECT_CLASSES if has_message(c, "get_uuid")])
def test_getter_on_unknown_ref_is_handle_invalid(x, cls):
    bogus = "OpaqueRef:" + str(uuid.uuid4())
    with failure("HANDLE_INVALID", cls, bogus):
        getattr(x, cls).get_uuid(bogus)


def test_references_resolve(populated, xapi, x):
    """Every ref field points at an existing object of its class (or is NULL), bound fields agree
    both ways, and refs to classes Drover does not model are NULL / empty."""
    recs = {cls: objects_of(xapi, x, cls) for cls in OBJECT_CLASSES if cls not in ("VIF_metrics", "VBD_metrics")}
    problems = integrity_problems(recs)
    for cls, objs in recs.items():
        for f in fields(cls):
            target = ref_target(f["type"])
            if target is None or target in CLASSES:
                continue
            for ref, rec in objs.items():
                v = rec.get(f["name"])
                if v not in (NULL, [], None):
                    problems.append(f"{cls} {ref}.{f['name']} = {v!r} refers to unmodelled class {target}")
    assert not problems, "\n".join(problems[:50])


def test_populated_objects_bound(populated, x):
    p = populated
    assert p["vbd"] in x.VM.get_VBDs(p["vm"])
    assert p["vbd"] in x.VDI.get_VBDs(p["vdi"])
    assert p["vif"] in x.VM.get_VIFs(p["vm"])
    assert p["vif"] in x.network.get_VIFs(p["network"])
    assert x.VM.get_power_state(p["running"]) == "Running"


@pytest.mark.parametrize("cls", ["network", "VM", "VDI", "VBD", "VIF", "console", "VTPM", "task"])
def test_create_and_destroy(populated, x, cls):
    api = getattr(x, cls)
    vm = populated["vm"]
    if cls == "network":
        ref = api.create({"name_label": unique("net"), "name_description": "d", "MTU": "9000", "other_config": {"k": "v"}, "tags": ["t"]})
        rec = api.get_record(ref)
        assert (rec["MTU"], rec["other_config"], rec["tags"], rec["name_description"]) == ("9000", {"k": "v"}, ["t"], "d")
    elif cls == "VM":
        ref = new_vm(x, "created-vm")
        assert api.get_record(ref)["name_label"] == "created-vm"
    elif cls == "VDI":
        ref = api.create(vdi_record(local_sr(x), "created-vdi", size=8 * 1024 * 1024))
        rec = api.get_record(ref)
        assert (rec["name_label"], rec["virtual_size"], rec["type"]) == ("created-vdi", str(8 * 1024 * 1024), "user")
    elif cls == "VBD":
        vdi = x.VDI.create(vdi_record(local_sr(x), "for-vbd"))
        ref = api.create(vbd_record(vm, vdi, "3"))
        assert api.get_userdevice(ref) == "3"
    elif cls == "VIF":
        ref = api.create(vif_record(vm, management_network(x), "3"))
        assert api.get_device(ref) == "3"
    elif cls == "console":
        ref = api.create({"other_config": {"made": "here"}})
        assert api.get_other_config(ref) == {"made": "here"}
    elif cls == "VTPM":
        ref = api.create(vm, False)
        assert api.get_VM(ref) == vm
        assert ref in x.VM.get_VTPMs(vm)
    elif cls == "task":
        ref = api.create("label-x", "description-y")
        rec = api.get_record(ref)
        assert (rec["name_label"], rec["name_description"], rec["status"]) == ("label-x", "description-y", "pending")
    assert ref in api.get_all()
    uuid_ = api.get_uuid(ref)
    api.destroy(ref)
    assert ref not in api.get_all()
    with failure("HANDLE_INVALID", cls, ref):
        api.get_record(ref)
    with failure("UUID_INVALID", cls, uuid_):
        api.get_by_uuid(uuid_)
    if cls == "VTPM":
        assert ref not in x.VM.get_VTPMs(vm)


def test_vlan_create_and_destroy(x):
    """VLAN.create(tagged_PIF, tag, network) makes the VLAN and its untagged PIF, bound both ways."""
    pif = [r for r, p in x.PIF.get_all_records().items() if p["physical"]][0]
    net = x.network.create({"name_label": unique("vlan-net"), "name_description": "", "MTU": "1500", "other_config": {}, "tags": []})
    vlan = x.VLAN.create(pif, "42", net)
    rec = x.VLAN.get_record(vlan)
    assert rec["tagged_PIF"] == pif
    assert rec["tag"] == "42"
    assert vlan in x.PIF.get_VLAN_slave_of(pif)
    untagged = rec["untagged_PIF"]
    urec = x.PIF.get_record(untagged)
    assert urec["VLAN_master_of"] == vlan
    assert urec["VLAN"] == "42"
    assert urec["network"] == net
    assert untagged in x.network.get_PIFs(net)
    x.VLAN.destroy(vlan)
    assert vlan not in x.VLAN.get_all()
    assert vlan not in x.PIF.get_VLAN_slave_of(pif)
    assert untagged not in x.PIF.get_all()


def test_user_create_and_destroy(x):
    u = x.user.create({"short_name": "interop-user", "fullname": "Interop User", "other_config": {}})
    rec = x.user.get_record(u)
    assert (rec["short_name"], rec["fullname"]) == ("interop-user", "Interop User")
    assert x.user.get_by_uuid(rec["uuid"]) == u
    x.user.set_fullname(u, "Renamed")
    assert x.user.get_fullname(u) == "Renamed"
    x.user.destroy(u)
    with failure("HANDLE_INVALID", "user", u):
        x.user.get_record(u)


def test_class_method_alias_underscore(engine, xapi):
    """`Class_method` is accepted as well as `Class.method`."""
    p = xmlrpc.client.ServerProxy(engine.url + "/RPC2", allow_none=True)
    a = p.VM_get_all(xapi._session)
    b = p.VM.get_all(xapi._session)
    assert a["Status"] == "Success" and b["Status"] == "Success"
    assert sorted(a["Value"]) == sorted(b["Value"])
