"""oVirt's search language through the real `ovirtsdk4`: twelve VMs of varied names, memory,
vCPUs and status on the simulated host, then queries with their exact expected results —
wildcards, `and`/`or` and their precedence, parentheses, comparisons, `sortby`, `page` with
`max`, cross-object conditions, free text, case sensitivity, malformed queries — and searches
of hosts, templates and events, and the autocompletion endpoint."""

from __future__ import annotations

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
import pytest

from ovirttest import (MiB, ZERO_ID, Raw, blank_vm, conn, system, wait_template_ok,  # noqa: F401
                       wait_vm_status, xml)

# name: (memory MiB, vCPUs (sockets), running, description)
VMS = {
    "vm1": (256, 1, True, ""),
    "vm10": (1024, 1, False, ""),
    "vm11": (2048, 1, True, ""),
    "VM1big": (512, 1, False, ""),
    "vm2": (512, 1, False, ""),
    "web1": (768, 2, True, "web server"),
    "web2": (256, 2, False, "web server"),
    "web3": (1024, 2, True, "web server"),
    "db1": (2048, 1, True, "database"),
    "db2": (128, 1, False, "database"),
    "app1": (1024, 1, False, "payroll backend"),
    "app2": (512, 1, False, "frontend"),
}
UP = {n for n, v in VMS.items() if v[2]}
DOWN = set(VMS) - UP
ALL = set(VMS)


@pytest.fixture(scope="module")
def vms(system):
    """The twelve VMs (name -> id), running where the table says so."""
    service = system.vms_service()
    before = service.list()
    assert before == [], f"a fresh engine has VMs already: {[v.name for v in before]}"
    ids = {}
    for name, (mem, sockets, running, description) in VMS.items():
        vm = service.add(blank_vm(name, memory=mem * MiB, sockets=sockets, description=description))
        ids[name] = vm.id
    for name, (_, _, running, _) in VMS.items():
        if running:
            service.vm_service(ids[name]).start()
    for name in UP:
        wait_vm_status(service.vm_service(ids[name]), types.VmStatus.UP)
    return ids


def names(system, search=None, **kw):
    return {v.name for v in system.vms_service().list(search=search, **kw)}


def ordered(system, search, **kw):
    return [v.name for v in system.vms_service().list(search=search, **kw)]


def test_the_universe(system, vms):
    assert names(system) == ALL
    assert {v.name: v.status for v in system.vms_service().list()} == {
        n: types.VmStatus.UP if n in UP else types.VmStatus.DOWN for n in VMS}


def test_wildcard_is_case_insensitive_by_default(system, vms):
    assert names(system, "name=vm1*") == {"vm1", "vm10", "vm11", "VM1big"}
    assert names(system, "name=VM1*") == {"vm1", "vm10", "vm11", "VM1big"}
    assert names(system, "name=WEB2") == {"web2"}


def test_case_sensitive(system, vms):
    assert names(system, "name=vm1*", case_sensitive=True) == {"vm1", "vm10", "vm11"}
    assert names(system, "name=VM1*", case_sensitive=True) == {"VM1big"}
    assert names(system, "name=WEB2", case_sensitive=True) == set()


def test_and(system, vms):
    assert names(system, "name = web* and status = up") == {"web1", "web3"}
    # juxtaposition is `and` as well
    assert names(system, "name = web* status = up") == {"web1", "web3"}


def test_or(system, vms):
    assert names(system, "status=down or name=db1") == DOWN | {"db1"}


def test_and_binds_tighter_than_or_and_parentheses_group(system, vms):
    assert names(system, "name=web* or name=db* and status=up") == {"web1", "web2", "web3", "db1"}
    assert names(system, "(name=web* or name=db*) and status=up") == {"web1", "web3", "db1"}
    assert names(system, "name=db* and status=up or name=web*") == {"db1", "web1", "web2", "web3"}


def test_not_equal(system, vms):
    assert names(system, "status != up") == DOWN
    assert names(system, "name != vm*") == ALL - {"vm1", "vm10", "vm11", "VM1big", "vm2"}


def test_memory_comparisons_in_mib(system, vms):
    assert names(system, "memory > 512") == {"vm10", "vm11", "web1", "web3", "db1", "app1"}
    assert names(system, "memory >= 1024 and memory < 2048") == {"vm10", "web3", "app1"}
    assert names(system, "memory <= 256") == {"vm1", "web2", "db2"}
    assert names(system, "memory = 512") == {"VM1big", "vm2", "app2"}


def test_vcpus(system, vms):
    assert names(system, "vcpus = 2") == {"web1", "web2", "web3"}
    assert names(system, "vcpus > 1 and status = down") == {"web2"}


def test_sortby_desc_and_asc(system, vms):
    assert ordered(system, "name=web* or name=db* sortby name desc") == ["web3", "web2", "web1", "db2", "db1"]
    assert ordered(system, "name=web* or name=db* sortby name asc") == ["db1", "db2", "web1", "web2", "web3"]
    assert ordered(system, "name=web* or name=db* sortby name") == ["db1", "db2", "web1", "web2", "web3"]
    assert ordered(system, "memory >= 1024 sortby memory desc")[:2] in (["vm11", "db1"], ["db1", "vm11"])


def test_page_with_max(system, vms):
    q = "name=web* or name=db* sortby name asc page {}"
    assert ordered(system, q.format(1), max=2) == ["db1", "db2"]
    assert ordered(system, q.format(2), max=2) == ["web1", "web2"]
    assert ordered(system, q.format(3), max=2) == ["web3"]
    assert ordered(system, q.format(4), max=2) == []


def test_max_without_search(system, vms):
    assert len(system.vms_service().list(max=3)) == 3
    assert len(system.vms_service().list(search="status=down", max=2)) == 2


def test_cluster_and_datacenter(system, vms):
    assert names(system, "cluster = Default") == ALL
    assert names(system, "cluster = Elsewhere") == set()
    assert names(system, "datacenter = Default and status = up") == UP


def test_cross_object_hosts_and_templates(system, vms):
    [host] = system.hosts_service().list()
    assert names(system, f"Hosts.name = {host.name}") == UP
    assert names(system, "Hosts.name = no-such-host") == set()
    assert names(system, "Templates.name = Blank") == ALL


def test_free_text_and_object_prefix(system, vms):
    assert names(system, "payroll") == {"app1"}
    assert names(system, "Vms: payroll") == {"app1"}
    assert names(system, "Vms: name = db*") == {"db1", "db2"}
    assert names(system, "database status = up") == {"db1"}
    assert names(system, 'description = "web server"') == {"web1", "web2", "web3"}
    assert names(system, 'name = "db1"') == {"db1"}


def test_malformed_queries_are_400(system, vms):
    for q in ("name = = x", "name =", "(name = x", "nosuchfield = 1", "name = x sortby", "name = x page zero",
              "Hosts.nosuchfield = 1", "name = x and"):
        with pytest.raises(sdk.Error) as e:
            system.vms_service().list(search=q)
        assert e.value.code == 400, (q, e.value)
        assert not isinstance(e.value, sdk.NotFoundError)


def test_raw_search_parameter_is_url_decoded(ovirt_engine, vms):
    r = Raw(ovirt_engine).get("vms?search=name%3Dvm1*+and+status%3Dup")
    assert r.status_code == 200, r.text
    assert {v.findtext("name") for v in xml(r).findall("vm")} == {"vm1", "vm11"}


def test_search_hosts(system, vms):
    [host] = system.hosts_service().list()
    hosts = system.hosts_service()
    assert [h.id for h in hosts.list(search=f"name={host.name}")] == [host.id]
    assert [h.id for h in hosts.list(search="status=up")] == [host.id]
    assert hosts.list(search="name=no-such-host*") == []
    assert [h.id for h in hosts.list(search="Vms.name = web1")] == [host.id]
    assert hosts.list(search="Vms.name = web2") == []
    with pytest.raises(sdk.Error) as e:
        hosts.list(search="name = = x")
    assert e.value.code == 400


def test_search_templates(system, vms):
    templates = system.templates_service()
    [blank] = templates.list(search="name=Blank")
    assert blank.id == ZERO_ID
    app2 = system.vms_service().list(search="name=app2")[0]
    tpl = templates.add(types.Template(name="tpl-search", vm=types.Vm(id=app2.id)))
    wait_template_ok(templates.template_service(tpl.id))
    assert [t.name for t in templates.list(search="name=tpl-*")] == ["tpl-search"]
    assert [t.name for t in templates.list(search="name=TPL-*")] == ["tpl-search"]
    assert templates.list(search="name=TPL-*", case_sensitive=True) == []
    assert "tpl-search" not in {t.name for t in templates.list(search="name != tpl-search")}
    # a VM made from it is found through the template
    made = system.vms_service().add(types.Vm(name="fromtpl", cluster=types.Cluster(name="Default"),
                                             template=types.Template(id=tpl.id)))
    wait_vm_status(system.vms_service().vm_service(made.id), types.VmStatus.DOWN)
    assert names(system, "Templates.name = tpl-search") == {"fromtpl"}
    assert "fromtpl" not in names(system, "Templates.name = Blank")
    system.vms_service().vm_service(made.id).remove()
    templates.template_service(tpl.id).remove()
    assert templates.list(search="name=tpl-*") == []


def test_search_events(system, vms):
    events = system.events_service()
    normal = events.list(search="severity = normal")
    assert normal and all(e.severity == types.LogSeverity.NORMAL for e in normal)
    about = events.list(search="event_vm = web1")
    assert about, "no events about web1"
    assert all((e.vm is not None and e.vm.id == vms["web1"]) or "web1" in (e.description or "") for e in about), \
        [(e.description, e.vm and e.vm.id) for e in about]
    assert events.list(search="event_vm = no-such-vm") == []
    ids = [int(e.id) for e in events.list(search="severity = normal", max=3)]
    assert len(ids) == 3 and ids == sorted(ids, reverse=True)


def completions(raw, kind, text):
    r = raw.get("autocomplete", params={"type": kind, "search": text})
    assert r.status_code == 200, r.text
    doc = xml(r)
    assert doc.tag == "completions", r.text
    return [c.text for c in doc.findall("completion")]


def test_autocompletion(ovirt_engine):
    raw = Raw(ovirt_engine)
    got = completions(raw, "vms", "na")
    assert "name" in got and all(c.lower().startswith("na") for c in got), got
    assert "and" in completions(raw, "vms", "name = web1 a")
    assert {"unassigned", "unknown", "up"} <= set(completions(raw, "vms", "status = u"))
    assert "status" in completions(raw, "hosts", "sta")
    assert "sortby" in completions(raw, "vms", "name = x so")
    assert completions(raw, "vms", "zzz") == []
