"""Helpers of the oVirt REST API tests: connecting the real `ovirtsdk4` SDK to an engine's
`--ovirt-listen` address, raw HTTP with `requests`, and waiting for oVirt states."""

from __future__ import annotations

import secrets
import time
import xml.etree.ElementTree as ET

import ovirtsdk4 as sdk
import pytest
import ovirtsdk4.types as types
import requests

MiB = 1 << 20
GiB = 1 << 30
ZERO_ID = "00000000-0000-0000-0000-000000000000"
PREFIX = "/ovirt-engine/api"


def base_url(eng) -> str:
    """`http://127.0.0.1:PORT` of the engine's oVirt listener."""
    return f"http://127.0.0.1:{eng.ovirt_port}"


def api_url(eng) -> str:
    return base_url(eng) + PREFIX


def connect(eng, user="admin@internal", password=None, **kw) -> sdk.Connection:
    """An SDK connection (token flow: the SDK asks the SSO endpoint for a token first)."""
    return sdk.Connection(url=api_url(eng), username=user, password=password or eng.password,
                          insecure=True, timeout=120, **kw)


@pytest.fixture(scope="module")
def conn(ovirt_engine):
    """An SDK connection to the module's `ovirt_engine` (a fixture: import it into a test module)."""
    c = connect(ovirt_engine)
    yield c
    if ovirt_engine.alive:
        c.close()


@pytest.fixture(scope="module")
def system(conn):
    """The connection's system service (a fixture: import it into a test module)."""
    return conn.system_service()


def unique(prefix="ov") -> str:
    return f"{prefix}-{secrets.token_hex(3)}"


class Raw:
    """Raw HTTP to the oVirt API with HTTP Basic credentials over one keep-alive session."""

    def __init__(self, eng, user="admin@internal", password=None):
        self.root = api_url(eng)
        self.base = base_url(eng)
        self.s = requests.Session()
        self.s.auth = (user, password or eng.password)
        self.s.headers.update({"Version": "4", "Accept": "application/xml"})

    def url(self, path: str) -> str:
        if path.startswith("http"):
            return path
        if path.startswith("/"):
            return self.base + path
        return f"{self.root}/{path}" if path else self.root

    def request(self, method, path, xml=None, **kw) -> requests.Response:
        headers = dict(kw.pop("headers", {}) or {})
        if xml is not None:
            headers.setdefault("Content-Type", "application/xml")
            kw["data"] = xml.encode() if isinstance(xml, str) else xml
        return self.s.request(method, self.url(path), headers=headers, timeout=120, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, xml, **kw):
        return self.request("POST", path, xml, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


def xml(resp: requests.Response) -> ET.Element:
    assert "xml" in resp.headers.get("Content-Type", ""), (resp.status_code, resp.headers, resp.text[:500])
    return ET.fromstring(resp.content)


def wait_for(fn, pred, timeout=60.0, poll=0.2, what="condition"):
    """Calls `fn` until `pred(result)`; returns the last result; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if pred(last):
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s; last value: {last!r}")
        time.sleep(poll)


def wait_vm_status(vm_service, status, timeout=90.0):
    """Waits until the VM has `status` (a types.VmStatus); returns the VM."""
    return wait_for(vm_service.get, lambda v: v.status == status, timeout,
                    what=f"VM status {status.value}")


def wait_template_ok(template_service, timeout=90.0):
    return wait_for(template_service.get, lambda t: t.status == types.TemplateStatus.OK, timeout,
                    what="template status ok")


def wait_disk_ok(disk_service, timeout=60.0):
    return wait_for(disk_service.get, lambda d: d.status == types.DiskStatus.OK, timeout,
                    what="disk status ok")


def wait_job(job_service, timeout=90.0):
    """Waits until a job has ended (finished, failed or aborted); returns it."""
    ended = (types.JobStatus.FINISHED, types.JobStatus.FAILED, types.JobStatus.ABORTED)
    return wait_for(job_service.get, lambda j: j.status in ended, timeout, what="job end")


def blank_vm(name, memory=256 * MiB, sockets=1, cores=1, **kw) -> types.Vm:
    """A `types.Vm` to add from `Blank` in the `Default` cluster."""
    return types.Vm(
        name=name,
        cluster=types.Cluster(name="Default"),
        template=types.Template(name="Blank"),
        memory=memory,
        memory_policy=types.MemoryPolicy(guaranteed=memory, max=memory),
        cpu=types.Cpu(topology=types.CpuTopology(sockets=sockets, cores=cores, threads=1)),
        **kw,
    )


def data_domain(system) -> types.StorageDomain:
    """The engine's data storage domain."""
    sds = [sd for sd in system.storage_domains_service().list() if sd.type == types.StorageDomainType.DATA]
    assert sds, "no data storage domain"
    return sds[0]


def management_profile(system) -> types.VnicProfile:
    """The vNIC profile of the `ovirtmgmt` network."""
    [net] = [n for n in system.networks_service().list() if n.name == "ovirtmgmt"]
    profiles = [p for p in system.vnic_profiles_service().list() if p.network and p.network.id == net.id]
    assert profiles, f"no vNIC profile of ovirtmgmt ({net.id})"
    return profiles[0]


def fault_of(e: sdk.Error) -> str:
    return f"code={e.code} fault={(e.fault.reason, e.fault.detail) if e.fault else None} {e}"
