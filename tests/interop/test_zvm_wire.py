"""Differential test of Drover's z/VM REST layer against the real one.

`zvm_reference.py` runs the REST layer of z/VM Cloud Connector 1.6.3 (`zvmsdk.sdkwsgi` from PyPI
`zVMCloudConnector==1.6.3`) with its backend calls going over the socket protocol to Drover's
`--zvm-socket-listen`. Drover's own REST listener (`--zvm-listen`) serves the same backend. The
same request sent to both must give the same status, the same Content-Type, `Allow`,
`Cache-Control` and `X-Auth-Token` headers, and the same body, byte for byte — backend errors
included, since the backend is the same, and the router's HTML 404/405 pages too. Other headers
are each server's own (Date, Server, Content-Length or chunking).

State: a mutating request is sent to the reference first; then a step's `undo` (backend calls
over the socket protocol) puts the inventory back, and the request goes to Drover. Reads go to
both as they are. Where bodies legitimately differ (a new FCP template's uuid, a file's name in
each server's own file repository), the differing values are named and replaced before the
comparison; everything else must match.

Token mode cannot run in the reference (it needs patches for PyJWT 2); Drover's answers there
are compared with the real layer's recorded ones (`data/zvm-wire-auth-cases.json`). The
routing, body and validation cases are also checked against their recording
(`data/zvm-wire-http-cases.json`), which guards the reference set-up itself.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import re
import subprocess
import sys
import time

import jwt
import pytest
import requests
from zvmconnector import connector, restclient

from conftest import _free_port

# The admin token of the recorded exchanges is shorter than PyJWT likes for HS256.
pytestmark = pytest.mark.filterwarnings("ignore:The HMAC key is .* bytes long")

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE / "data"
JSON_CT = {"Content-Type": "application/json"}


def recorded(name):
    return {c["label"]: c for c in json.loads((DATA / name).read_text())["cases"]}


# ---------------------------------------------------------------------------------------------
# fixtures: Drover (sim host) and the reference REST layer over Drover's socket protocol


@pytest.fixture(scope="module")
def drover(zvm_engine):
    return zvm_engine


@pytest.fixture(scope="module")
def reference(drover, tmp_path_factory):
    """The real REST layer on a free port; its backend is Drover's socket listener."""
    port = _free_port()
    files = tmp_path_factory.mktemp("reference-files")
    log = open(tmp_path_factory.mktemp("reference-log") / "reference.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "zvm_reference.py"), "--port", str(port),
         "--backend-port", str(drover.zvm_socket_port), "--file-repository", str(files)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(files))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, f"zvm_reference.py exited with {proc.returncode}; see {log.name}"
        try:
            if requests.get(base + "/", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        assert time.monotonic() < deadline, f"zvm_reference.py did not answer; see {log.name}"
        time.sleep(0.1)
    yield base
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


@pytest.fixture(scope="module")
def backend(drover):
    """The backend over the socket protocol, for set-up and for undoing a step."""
    conn = connector.ZVMConnector("127.0.0.1", drover.zvm_socket_port, connection_type="socket")

    def call(api, *args, **kwargs):
        r = conn.send_request(api, *args, **kwargs)
        assert r["overallRC"] == 0, (api, args, kwargs, r)
        return r["output"]

    call.raw = conn.send_request
    return call


class Answer:
    def __init__(self, r: requests.Response):
        self.status = r.status_code
        self.ctype = r.headers.get("Content-Type")
        self.allow = r.headers.get("Allow")
        self.body = r.content
        self.text = r.text
        self.headers = r.headers

    def key(self):
        # Headers beyond these are the servers' own (Date, Server, Content-Length, chunking).
        return (self.status, self.ctype, self.allow, self.headers.get("Cache-Control"),
                self.headers.get("X-Auth-Token"), self.body)

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        extra = {k: self.headers.get(k) for k in ("Cache-Control", "X-Auth-Token") if k in self.headers}
        return f"<{self.status} {self.ctype} allow={self.allow} {extra or ''} {self.body[:600]!r}>"


def send(base, method, path, body=None, headers=JSON_CT) -> Answer:
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    return Answer(requests.request(method, base + path, data=body, headers=headers, timeout=120))


@pytest.fixture(scope="module")
def pair(drover, reference):
    dbase = f"http://127.0.0.1:{drover.zvm_port}"

    def both(method, path, body=None, headers=JSON_CT, undo=None, norm=None, volatile=False):
        """Sends the request to the reference, runs `undo`, sends it to Drover; asserts the same
        answer (after `norm`, a function of (answer_text) -> text, where given)."""
        for attempt in range(3 if volatile else 1):
            ref = send(reference, method, path, body, headers)
            if undo:
                try:
                    undo()
                except AssertionError as e:
                    raise AssertionError(f"undoing {method} {path} failed; the reference answered {ref!r}") from e
            got = send(dbase, method, path, body, headers)
            rk, gk = ref.key(), got.key()
            if norm:
                rk = rk[:-1] + (norm(ref.text),)
                gk = gk[:-1] + (norm(got.text),)
            if rk == gk:
                return ref, got
            # a read whose answer carries a clock (elapsed times): asked again, not excused
        assert gk == rk, f"{method} {path} {body!r}\n  reference: {ref!r}\n  drover:    {got!r}"
        return ref, got

    both.drover = dbase
    both.reference = reference
    return both


# ---------------------------------------------------------------------------------------------
# routing, bodies and validation (the REST layer's own answers)

A = "/guests/USER1/action"
G = {"userid": "USER1", "vcpus": 1, "memory": 1024}
# (label of the recorded case or None, method, path, body, headers)
HTTP_CASES = [
    ("GET /notfound", "GET", "/notfound", None, JSON_CT),
    ("PATCH /guests", "PATCH", "/guests", None, JSON_CT),
    ("PUT /guests/USER1", "PUT", "/guests/USER1", None, JSON_CT),
    (None, "HEAD", "/guests", None, JSON_CT),
    (None, "DELETE", "/host", None, JSON_CT),
    (None, "GET", "/guests/USER1/bogus", None, JSON_CT),
    (None, "GET", "/notfound", None, {"Accept": "application/json"}),
    (None, "PATCH", "/guests", None, {"Accept": "application/json"}),
    ("malformed json", "POST", "/guests", "{bad json", JSON_CT),
    ("empty body POST /guests", "POST", "/guests", "", JSON_CT),
    (None, "POST", "/guests", '{"guest": 1', JSON_CT),
    (None, "POST", "/guests", "[1, 2", JSON_CT),
    (None, "POST", "/guests", '{"guest": {}} x', JSON_CT),
    (None, "POST", "/guests", "  ", JSON_CT),
    (None, "POST", "/guests", '{"a": 1,\n "b": }', JSON_CT),
    (None, "POST", "/guests", '{"a": "\\u12"}', JSON_CT),
    (None, "POST", "/guests", '{"a": "x\\qy"}', JSON_CT),
    (None, "POST", "/guests", '{"a": "\u00e9\u00e9" x}', JSON_CT),
    (None, "POST", "/guests", b'{"a": "\xe2\x82\x28"}', JSON_CT),
    (None, "POST", "/guests", b'\xef\xbb\xbf{}', JSON_CT),
    (None, "POST", "/guests", "[1,]", JSON_CT),
    (None, "POST", "/guests", '{"a": 1,}', JSON_CT),
    ("body without content-type", "POST", "/guests", "{}", {}),
    ("action missing", "POST", A, "{}", JSON_CT),
    ("unknown action", "POST", A, {"action": "fly"}, JSON_CT),
    (None, "POST", A, {"action": ""}, JSON_CT),
    (None, "POST", A, {"action": 1}, JSON_CT),
    (None, "POST", A, "[]", JSON_CT),
    (None, "POST", A, '["x"]', JSON_CT),
    (None, "POST", A, '"some text"', JSON_CT),
    (None, "POST", A, "null", JSON_CT),
    (None, "POST", A, "7", JSON_CT),
    ("userid too long", "POST", "/guests", {"guest": {**G, "userid": "TOOLONGUSERID"}}, JSON_CT),
    ("userid bad chars", "POST", "/guests", {"guest": {**G, "userid": "US-ER"}}, JSON_CT),
    ("vcpus 0", "POST", "/guests", {"guest": {**G, "vcpus": 0}}, JSON_CT),
    ("vcpus abc", "POST", "/guests", {"guest": {**G, "vcpus": "abc"}}, JSON_CT),
    ("vcpus missing", "POST", "/guests", {"guest": {"userid": "USER1", "memory": 1024}}, JSON_CT),
    ("extra property", "POST", "/guests", {"guest": {**G, "foo": 1}}, JSON_CT),
    ("max_cpu 65", "POST", "/guests", {"guest": {**G, "max_cpu": 65}}, JSON_CT),
    ("max_mem 10T", "POST", "/guests", {"guest": {**G, "max_mem": "10T"}}, JSON_CT),
    ("disk without size", "POST", "/guests", {"guest": {**G, "disk_list": [{"format": "ext4"}]}}, JSON_CT),
    ("disk_pool bad", "POST", "/guests",
     {"guest": {**G, "disk_list": [{"size": "1g", "disk_pool": "ECKD"}]}}, JSON_CT),
    ("disk format bad", "POST", "/guests",
     {"guest": {**G, "disk_list": [{"size": "1g", "format": "btrfs"}]}}, JSON_CT),
    ("nic vdev 5 hex", "POST", "/guests/USER1/nic", {"nic": {"vdev": "10000"}}, JSON_CT),
    ("nic bad mac", "POST", "/guests/USER1/nic", {"nic": {"mac_addr": "02:00:00:12:34"}}, JSON_CT),
    ("bad os_version", "POST", "/guests/USER1/interface",
     {"interface": {"os_version": "windows10", "guest_networks": []}}, JSON_CT),
    ("ip_addr without cidr", "POST", "/guests/USER1/interface",
     {"interface": {"os_version": "rhel8", "guest_networks": [{"ip_addr": "1.2.3.4"}]}}, JSON_CT),
    ("image bad url scheme", "POST", "/images",
     {"image": {"image_name": "i", "url": "ftp://x/y", "image_meta": {"os_version": "rhel8"}}}, JSON_CT),
    ("image bad md5", "POST", "/images",
     {"image": {"image_name": "i", "url": "file:///x/y", "image_meta": {"os_version": "rhel8", "md5sum": "abc"}}},
     JSON_CT),
    ("image meta no os_version", "POST", "/images",
     {"image": {"image_name": "i", "url": "file:///x/y", "image_meta": {}}}, JSON_CT),
    ("vswitch name 11 chars", "POST", "/vswitches", {"vswitch": {"name": "NAMETOOLONG"}}, JSON_CT),
    ("vswitch queue_mem 9", "POST", "/vswitches", {"vswitch": {"name": "V1", "queue_mem": 9}}, JSON_CT),
    ("vlanid 5000", "PUT", "/vswitches/V1", {"vswitch": {"user_vlan_id": {"userid": "U1", "vlanid": 5000}}}, JSON_CT),
    ("resize_cpus 65", "POST", A, {"action": "resize_cpus", "cpu_cnt": 65}, JSON_CT),
    ("deploy without image", "POST", A, {"action": "deploy"}, JSON_CT),
    ("stop timeout -1", "POST", A, {"action": "stop", "timeout": -1}, JSON_CT),
    ("GET info path userid too long", "GET", "/guests/TOOLONGUSERID/info", None, JSON_CT),
    ("stats userid too long", "GET", "/guests/stats?userid=TOOLONGUSERID", None, JSON_CT),
    ("imagename twice", "GET", "/images?imagename=a&imagename=b", None, JSON_CT),
    ("poolname without colon", "GET", "/host/diskpool?poolname=ECKD", None, JSON_CT),
    ("volumename too long", "GET", "/host/volume?volumename=TOOLONGVOL", None, JSON_CT),
    # more of the same kinds
    (None, "GET", "/guests/TOOLONGUSERID", None, JSON_CT),
    (None, "GET", "/guests/US-ER/power_state", None, JSON_CT),
    (None, "GET", "/guests/interfacestats?userid=A,TOOLONGUSERID", None, JSON_CT),
    (None, "POST", "/guests", {"guest": {**G, "vcpus": "2", "memory": "x"}}, JSON_CT),
    (None, "POST", "/guests", {"guest": {**G, "disk_list": [{"size": "1g", "is_boot_disk": "maybe"}]}}, JSON_CT),
    (None, "POST", "/guests", {"guest": {**G, "disk_list": [{"size": "1g", "bogus": 1}]}}, JSON_CT),
    (None, "POST", "/guests", {"guest": {**G, "max_cpu": 0}}, JSON_CT),
    (None, "POST", "/guests", {"nothing": 1}, JSON_CT),
    (None, "POST", "/guests/USER1/disks", {"disk_info": {"disk_list": [{"size": "1g", "disk_pool": "x"}]}}, JSON_CT),
    (None, "DELETE", "/guests/USER1/disks", {"vdev_info": {"vdev_list": ["12345"]}}, JSON_CT),
    (None, "PUT", "/guests/USER1/nic/1000", {"info": {"couple": "perhaps", "vswitch": "V1"}}, JSON_CT),
    (None, "POST", A, {"action": "live_resize_mem", "size": "10T"}, JSON_CT),
    (None, "POST", A, {"action": "capture", "image": "i", "capture_type": "somedisks"}, JSON_CT),
    (None, "POST", A, {"action": "register_vm", "meta": "m"}, JSON_CT),
    (None, "POST", "/vswitches", {"vswitch": {"name": "V1", "vid": 5000}}, JSON_CT),
    (None, "POST", "/vswitches", {"vswitch": {"name": "V1", "port_type": "HYBRID"}}, JSON_CT),
    (None, "PUT", "/images/i", {"location": {"dest_url": "ftp://x"}}, JSON_CT),
    (None, "PUT", "/volumes/fcp/1a00", {"info": {"userid": "U1", "reserved": 2, "connections": 0,
                                                 "fcp_template_id": ""}}, JSON_CT),
    (None, "POST", "/volumes/fcptemplates", {"description": "no name"}, JSON_CT),
    # odd values: Python's reprs, Unicode, types
    (None, "POST", "/guests", {"guest": {**G, "vcpus": 1.5}}, JSON_CT),
    (None, "POST", "/guests", {"guest": {**G, "vcpus": True}}, JSON_CT),
    (None, "POST", "/guests", {"guest": {**G, "memory": -1}}, JSON_CT),
    (None, "POST", "/guests", {"guest": {**G, "memory": 1e20}}, JSON_CT),
    (None, "POST", "/guests", {"guest": {**G, "userid": 123}}, JSON_CT),
    (None, "POST", "/guests", {"guest": {**G, "userid": None}}, JSON_CT),
    (None, "POST", "/guests", {"guest": {**G, "userid": "\u00dcSER-1"}}, JSON_CT),
    (None, "POST", "/guests", {"guest": {**G, "userid": "US\"ER'1"}}, JSON_CT),
    (None, "POST", "/guests", {"guest": [1, "a", None, True, 1.0]}, JSON_CT),
    (None, "POST", "/guests", {"guest": {**G, "disk_list": {"size": "1g"}}}, JSON_CT),
    (None, "POST", "/guests", {"guest": {**G, "disk_list": [{"size": 5}]}}, JSON_CT),
    (None, "POST", "/guests", [], JSON_CT),
    (None, "POST", "/guests", "null", JSON_CT),
    (None, "POST", "/guests", '"text"', JSON_CT),
    # routes and methods
    (None, "GET", "/guests/", None, JSON_CT),
    (None, "GET", "//guests", None, JSON_CT),
    (None, "GET", "/guests/WOFF/info/", None, JSON_CT),
    (None, "GET", "/guests/WOFF/nic", None, JSON_CT),
    (None, "OPTIONS", "/guests", None, JSON_CT),
    (None, "HEAD", "/", None, JSON_CT),
    (None, "GET", "/token", None, JSON_CT),
    (None, "PUT", "/", None, JSON_CT),
    (None, "GET", "/volumes", None, JSON_CT),
    (None, "GET", "/volumes/fcp", None, JSON_CT),
    (None, "POST", "/volumes/fcptemplates/detail", None, JSON_CT),
    (None, "GET", "/images/i/root_disk_size/x", None, JSON_CT),
    (None, "GET", "/guests/W%4FFF/info", None, JSON_CT),
    (None, "GET", "/guests/US%20R1/info", None, JSON_CT),
    (None, "GET", "/guests/%55SER9/power_state", None, JSON_CT),
    (None, "GET", "/vswitches/VSW%58", None, JSON_CT),
    (None, "GET", "/images/no%2Fpe/root_disk_size", None, JSON_CT),
    (None, "GET", "/gu%65sts", None, JSON_CT),
    (None, "GET", "/guests/%C3%9CSER/info", None, JSON_CT),
    (None, "POST", "/guests/W%4FFF/action", {"action": "pause"}, JSON_CT),
    # query strings
    (None, "GET", "/guests/stats", None, JSON_CT),
    (None, "GET", "/guests/stats?userid=", None, JSON_CT),
    (None, "GET", "/guests/stats?userid=A,%20B", None, JSON_CT),
    (None, "GET", "/guests/stats?userid=A&userid=B", None, JSON_CT),
    (None, "GET", "/guests/interfacestats", None, JSON_CT),
    (None, "GET", "/guests/nics?userid=TOOLONGUSERID", None, JSON_CT),
    (None, "GET", "/guests/nics?nic_id=x&vswitch=y", None, JSON_CT),
    (None, "GET", "/images?imagename=", None, JSON_CT),
    (None, "GET", "/images?other=1", None, JSON_CT),
    (None, "GET", "/images?imagename=no%20pe+x", None, JSON_CT),
    (None, "GET", "/guests/stats?userid=%55SER9", None, JSON_CT),
    (None, "GET", "/guests/stats?userid=%C3%9CSER", None, JSON_CT),
    (None, "GET", "/guests/stats?userid=%FF", None, JSON_CT),
    (None, "GET", "/guests/WOFF/info?x=%FF", None, JSON_CT),
    (None, "GET", "/guests/TOOLONGUSERID/info?x=%FF", None, JSON_CT),
    (None, "GET", "/guests/nics?x=%FF", None, JSON_CT),
    (None, "GET", "/guests?x=%FF", None, JSON_CT),
    (None, "GET", "/volumes/fcp/1a00?x=%FF", None, JSON_CT),
    (None, "POST", "/guests?x=%FF", {"guest": {}}, JSON_CT),
    (None, "GET", "/host/diskpool?poolname=ECKD:%C3%A9", None, JSON_CT),
    (None, "GET", "/guests/WOFF/info?unexpected=1&userid=x", None, JSON_CT),
    (None, "GET", "/host/diskpool?poolname=ECKD:a&poolname=FBA:b", None, JSON_CT),
    (None, "GET", "/host/diskpool_volumes?poolname=ECKD", None, JSON_CT),
    (None, "GET", "/host/volume?volumename=", None, JSON_CT),
    (None, "GET", "/volumes/fcptemplates?template_id_list=a,b", None, JSON_CT),
    (None, "GET", "/volumes/fcptemplates?host_default=maybe", None, JSON_CT),
    (None, "GET", "/volumes/fcptemplates/detail", None, JSON_CT),
    (None, "GET", "/volumes/fcptemplates/detail?raw=maybe", None, JSON_CT),
    # bodies of DELETE and GET routes that read one
    (None, "DELETE", "/guests/WOFF/nic/1000", None, JSON_CT),
    (None, "DELETE", "/guests/WOFF/interface", "", JSON_CT),
    (None, "DELETE", "/guests/volumes", "{", JSON_CT),
    (None, "GET", "/volumes/conn/WOFF", None, JSON_CT),
    (None, "GET", "/volumes/conn/TOOLONGUSERID", "{}", JSON_CT),
    (None, "GET", "/volumes/conn/WOFF", {"info": []}, JSON_CT),
    (None, "GET", "/volumes/conn/WOFF", [], JSON_CT),
    (None, "GET", "/volumes/conn/TOOLONGUSERID", {"info": {"reserve": False}}, JSON_CT),
    (None, "PUT", "/guests/WOFF/nic/1000", {"info": {"couple": "yes", "active": "no", "vswitch": "NOPE"}}, JSON_CT),
    (None, "PUT", "/guests/WOFF/nic/1000", {"info": {"couple": True}}, JSON_CT),
    (None, "PUT", "/guests/WOFF/nic/1000", {"info": {}}, JSON_CT),
    (None, "POST", "/guests/WOFF/nic", {"nic": {"vdev": "1000", "active": "maybe"}}, JSON_CT),
    (None, "POST", "/files", {"nothing": 1}, JSON_CT),
    (None, "POST", "/files", {"source_file": None}, JSON_CT),
    (None, "POST", "/files", [], JSON_CT),
    (None, "POST", "/images", {"image": {"image_name": "i", "url": "file:///x/y",
                                         "image_meta": {"os_version": "rhel8", "disk_type": "TAPE"}}}, JSON_CT),
    (None, "PUT", "/vswitches/V1", {"vswitch": {"grant_userid": "TOOLONGUSERID"}}, JSON_CT),
    (None, "PUT", "/vswitches/V1", {"vswitch": {"revoke_userid": 5}}, JSON_CT),
]


@pytest.mark.parametrize("label,method,path,body,headers", HTTP_CASES,
                         ids=[f"{c[1]} {c[2]} {c[0] or ''}".strip() for c in HTTP_CASES])
def test_rest_layer_answers(pair, label, method, path, body, headers):
    ref, got = pair(method, path, body, headers)
    if label is not None:
        rec = recorded("zvm-wire-http-cases.json")[label]
        assert (ref.status, ref.ctype, ref.allow, ref.text) == (
            rec["status"], rec["ctype"], rec["allow"], rec["resp_body"]), "the reference is not the recorded one"


# ---------------------------------------------------------------------------------------------
# backend errors and their statuses


@pytest.fixture(scope="module")
def world(backend):
    """An off guest, a vswitch."""
    backend("guest_create", "WOFF", 1, 256, disk_list=[{"size": "100m", "is_boot_disk": True}])
    backend("vswitch_create", "VSWX")
    return None


BACKEND_CASES = [
    # (expected status, (overallRC, modID, rc, rs) or None, method, path, body)
    (404, (404, 10, 404, 1), "GET", "/guests/USER9/info", None),
    (404, (404, 10, 404, 1), "GET", "/guests/USER9", None),
    (404, (404, 10, 404, 1), "GET", "/guests/USER9/power_state", None),
    (404, (404, 10, 404, 1), "GET", "/guests/USER9/user_direct", None),
    (404, (404, 10, 404, 1), "POST", "/guests/USER9/action", {"action": "start"}),
    (404, (404, 10, 404, 1), "POST", "/guests/USER9/action", {"action": "stop"}),
    (404, (404, 10, 404, 1), "POST", "/guests/USER9/action", {"action": "get_console_output"}),
    (404, (404, 10, 404, 1), "POST", "/guests/USER9/nic", {"nic": {}}),
    (404, (404, 10, 404, 1), "POST", "/guests/USER9/disks", {"disk_info": {"disk_list": [{"size": "1g"}]}}),
    (409, (409, 10, 409, 1), "POST", "/guests/WOFF/action", {"action": "live_resize_cpus", "cpu_cnt": 1}),
    (409, (409, 10, 409, 1), "POST", "/guests/WOFF/action", {"action": "live_resize_mem", "size": "256m"}),
    (409, (409, 10, 409, 1), "POST", "/guests/WOFF/action",
     {"action": "live_migrate_vm", "destination": "SYS2", "parms": {}, "operation": "move"}),
    (409, (300, 10, 300, 5), "POST", "/guests/WOFF/action", {"action": "pause"}),
    (409, (8, 1, 400, 8), "POST", "/guests", {"guest": {"userid": "WOFF", "vcpus": 1, "memory": 256}}),
    (404, (404, 40, 404, 1), "GET", "/images?imagename=nope", None),
    (404, (300, 40, 300, 20), "POST", "/guests/WOFF/action", {"action": "deploy", "image": "nope"}),
    (404, (300, 40, 300, 20), "PUT", "/images/nope", {"location": {"dest_url": "file:///tmp/nope"}}),
    (200, (0, None, 0, 0), "GET", "/guests", None),
    (409, (8, 1, 212, 36), "POST", "/vswitches", {"vswitch": {"name": "VSWX"}}),
    (404, (404, 20, 404, 1), "GET", "/vswitches/NOPE", None),
    (404, (404, 10, 404, 1), "PUT", "/vswitches/VSWX", {"vswitch": {"grant_userid": "USER9"}}),
    (404, (8, 1, 400, 4), "GET", "/host/diskpool?poolname=ECKD:nopool", None),
    (404, (404, 30, 404, 1), "GET", "/volumes/fcp/5d71", None),
    (200, (404, 30, 404, 1), "PUT", "/volumes/fcp/5d71",
     {"info": {"userid": "WOFF", "reserved": 0, "connections": 0, "fcp_template_id": ""}}),
    (200, (0, None, 0, 0), "DELETE", "/guests/USER9", None),
    (200, (0, None, 0, 0), "DELETE", "/images/nope", None),
    (200, (0, None, 0, 0), "GET", "/guests/stats?userid=USER9", None),
    (400, (100, 400, 100, 3), "GET", "/host/volume", None),
    (500, (300, 60, 300, 2), "POST", "/files", {"source_file": "/nonexistent/file"}),
]


@pytest.mark.parametrize("status,rcs,method,path,body", BACKEND_CASES,
                         ids=[f"{c[2]} {c[3]} {c[4] and json.dumps(c[4])[:40] or ''}".strip() for c in BACKEND_CASES])
def test_backend_errors_and_statuses(pair, world, status, rcs, method, path, body):
    ref, got = pair(method, path, body)
    assert ref.status == status, ref
    env = got.json()
    assert (env["overallRC"], env["modID"], env["rc"], env["rs"]) == rcs, env


# ---------------------------------------------------------------------------------------------
# a realistic flow of successful calls


def test_a_flow_of_successful_calls(pair, backend, drover, tmp_path):
    x = drover.session().xenapi
    sr = x.pool.get_default_SR(x.pool.get_all()[0])
    pool = "".join(c if c.isalnum() else "_" for c in x.SR.get_name_label(sr).upper())
    label = "".join(c for c in pool if c.isalnum())[:6]

    pair("GET", "/")
    pair("GET", "/guests")
    pair("POST", "/guests", {"guest": {"userid": "WFLOW1", "vcpus": 1, "memory": 256, "max_cpu": 2,
                                       "max_mem": "1G", "user_profile": "osdflt",
                                       "disk_list": [{"size": "100m", "is_boot_disk": True},
                                                     {"size": "200", "format": "ext4"}]}},
         undo=lambda: backend("guest_delete", "WFLOW1"))
    for what in ("", "/info", "/power_state", "/power_state_real", "/user_direct", "/adapters"):
        pair("GET", "/guests/WFLOW1" + what)
    pair("POST", "/guests/WFLOW1/nic", {"nic": {"vdev": "1000", "mac_addr": "02:00:00:00:10:00"}},
         undo=lambda: backend("guest_delete_nic", "WFLOW1", "1000"))
    pair("POST", "/guests/WFLOW1/nic", {"nic": {}}, undo=lambda: backend("guest_delete_nic", "WFLOW1", "1003"))
    pair("POST", "/vswitches", {"vswitch": {"name": "VSWF"}}, undo=lambda: backend("vswitch_delete", "VSWF"))
    pair("POST", "/vswitches", {"vswitch": {"name": "VSWV", "vid": 100, "port_type": "TRUNK", "queue_mem": 4}},
         undo=lambda: backend("vswitch_delete", "VSWV"))
    pair("PUT", "/guests/WFLOW1/nic/1000", {"info": {"couple": True, "vswitch": "VSWF"}},
         undo=lambda: backend("guest_nic_uncouple_from_vswitch", "WFLOW1", "1000"))
    pair("PUT", "/vswitches/VSWF", {"vswitch": {"grant_userid": "WFLOW1"}},
         undo=lambda: backend("vswitch_revoke_user", "VSWF", "WFLOW1"))
    pair("PUT", "/vswitches/VSWV", {"vswitch": {"grant_userid": "WFLOW1"}},
         undo=lambda: backend("vswitch_revoke_user", "VSWV", "WFLOW1"))
    pair("PUT", "/vswitches/VSWV", {"vswitch": {"user_vlan_id": {"userid": "WFLOW1", "vlanid": 200}}})
    pair("PUT", "/vswitches/VSWF", {"vswitch": {"user_vlan_id": {"userid": "WFLOW1", "vlanid": 200}}})
    pair("PUT", "/vswitches/VSWF", {"vswitch": {}})
    for path in ("/vswitches", "/vswitches/VSWF", "/vswitches/VSWV", "/guests/nics",
                 "/guests/nics?userid=WFLOW1", "/guests/nics?vswitch=VSWF", "/guests/WFLOW1/adapters"):
        pair("GET", path)

    pair("POST", "/guests/WFLOW1/action", {"action": "start"}, undo=lambda: backend("guest_stop", "WFLOW1"))
    for path in ("/guests/stats?userid=WFLOW1", "/guests/stats?userid=WFLOW1,WOFF",
                 "/guests/interfacestats?userid=WFLOW1", "/host", "/host/guests", "/guests/WFLOW1/info"):
        pair("GET", path, volatile=True)
    pair("POST", "/guests/WFLOW1/action", {"action": "pause"}, undo=lambda: backend("guest_unpause", "WFLOW1"))
    for action in ({"action": "unpause"}, {"action": "reboot"}, {"action": "reset"},
                   {"action": "live_resize_cpus", "cpu_cnt": 2}, {"action": "resize_cpus", "cpu_cnt": 2},
                   {"action": "live_resize_mem", "size": "512m"}, {"action": "resize_mem", "size": "512m"},
                   {"action": "get_console_output"},
                   {"action": "register_vm", "meta": "{\"os_version\": \"rhel8\"}", "net_set": "1"},
                   {"action": "deregister_vm"},
                   {"action": "live_migrate_vm", "dest_zcc_userid": "ZCCUSER", "destination": "SYS2",
                    "parms": {"maxtotal": 300}, "operation": "move"},
                   {"action": "grow_root_volume", "os_version": "rhel8"},
                   {"action": "live_resize_cpus", "cpu_cnt": 1}):
        pair("POST", "/guests/WFLOW1/action", action)

    iface = {"os_version": "rhel8", "guest_networks": [
        {"ip_addr": "192.168.95.10", "cidr": "192.168.95.0/24", "gateway_addr": "192.168.95.1",
         "dns_addr": ["9.0.2.1"], "nic_vdev": "1006", "mac_addr": "02:00:00:12:34:56"}]}
    pair("POST", "/guests/WFLOW1/interface", {"interface": iface},
         undo=lambda: backend("guest_delete_network_interface", "WFLOW1", "rhel8", "1006"))
    pair("DELETE", "/guests/WFLOW1/interface", {"interface": {"os_version": "rhel8", "vdev": "1006"}},
         undo=lambda: backend("guest_create_network_interface", "WFLOW1", "rhel8", iface["guest_networks"]))
    backend("guest_delete_network_interface", "WFLOW1", "rhel8", "1006")
    pair("PUT", "/guests/WFLOW1/nic/1000", {"info": {"couple": False}},
         undo=lambda: backend("guest_nic_couple_to_vswitch", "WFLOW1", "1000", "VSWF"))
    pair("PUT", "/vswitches/VSWF", {"vswitch": {"revoke_userid": "WFLOW1"}},
         undo=lambda: backend("vswitch_grant_user", "VSWF", "WFLOW1"))
    pair("DELETE", "/guests/WFLOW1/nic/1003", {}, undo=lambda: backend("guest_create_nic", "WFLOW1", vdev="1003"))

    disks = [{"size": "50m", "format": "ext4"}]
    pair("POST", "/guests/WFLOW1/disks", {"disk_info": {"disk_list": disks}},
         undo=lambda: backend("guest_delete_disks", "WFLOW1", ["0102"]))
    pair("PUT", "/guests/WFLOW1/disks",
         {"disk_info": {"disk_list": [{"vdev": "0102", "format": "ext3", "mntdir": "/mnt/0102"}]}})
    pair("DELETE", "/guests/WFLOW1/disks", {"vdev_info": {"vdev_list": ["0102"]}},
         undo=lambda: backend("guest_create_disks", "WFLOW1", disks))
    pair("GET", "/guests/WFLOW1")

    # images
    data = bytes(range(256)) * 2048
    src = tmp_path / "wimg1.raw"
    src.write_bytes(data)
    md5 = hashlib.md5(data).hexdigest()
    image = {"image_name": "wimg1", "url": f"file://{src}",
             "image_meta": {"os_version": "rhel8", "md5sum": md5}}
    pair("POST", "/images", {"image": image}, undo=lambda: backend("image_delete", "wimg1"))
    pair("POST", "/images", {"image": {**image, "image_meta": {"os_version": "rhel8", "md5sum": "f" * 32},
                                       "image_name": "wbad"}})
    for path in ("/images", "/images?imagename=wimg1", "/images?imagename=WIMG1", "/images/wimg1/root_disk_size"):
        pair("GET", path)
    out = tmp_path / "exported.img"
    pair("PUT", "/images/wimg1", {"location": {"dest_url": f"file://{out}"}}, undo=lambda: out.unlink())
    assert out.stat().st_size == len(data)
    pair("POST", "/guests/WFLOW1/action", {"action": "deploy", "image": "wimg1"})
    pair("POST", "/guests/WFLOW1/action", {"action": "capture", "image": "wcap1"},
         undo=lambda: backend("image_delete", "wcap1"))
    pair("DELETE", "/images/wcap1", undo=lambda: backend("guest_capture", "WFLOW1", "wcap1"))
    pair("POST", "/guests/WFLOW1/action", {"action": "capture", "image": "wcap2", "capture_type": "alldisks"},
         undo=lambda: backend("image_delete", "wcap2"))
    pair("DELETE", "/images/wcap2")

    # host
    for path in ("/host/diskpool", f"/host/diskpool?poolname=ECKD:{pool}", f"/host/diskpool?poolname=FBA:{pool}",
                 "/host/diskpool_volumes", f"/host/diskpool_volumes?poolname=ECKD:{pool}",
                 f"/host/volume?volumename={label}", "/host/ssi", "/smapi-healthy"):
        pair("GET", path, volatile=True)

    # FCP templates, devices and volumes
    new_id = {}

    def template_id(text):
        """A new template's uuid differs between the two creations; compared as `<id>`."""
        try:
            t = json.loads(text)["output"]["fcp_template"]
        except (ValueError, KeyError, TypeError):
            return text
        new_id.setdefault("ids", []).append(t["id"])
        return text.replace(t["id"], "<id>")

    body = {"name": "wt", "description": "d", "fcp_devices": "1a00-1a01;1b00-1b01", "host_default": True}
    ref, got = pair("POST", "/volumes/fcptemplates", body,
                    undo=lambda: backend("delete_fcp_template", pending_template(pair)), norm=template_id)
    tid = got.json()["output"]["fcp_template"]["id"]
    for path in ("/volumes/fcptemplates", f"/volumes/fcptemplates?template_id_list={tid}",
                 "/volumes/fcptemplates?assigner_id=WFLOW1", "/volumes/fcptemplates?host_default=True",
                 "/volumes/fcptemplates/detail?raw=True&statistics=True&sync_with_zvm=False",
                 f"/volumes/fcptemplates/detail?template_id_list={tid}&raw=False&statistics=True&sync_with_zvm=False",
                 "/volumes/fcp/1a00"):
        pair("GET", path)
    pair("PUT", f"/volumes/fcptemplates/{tid}", {"name": "wt2", "description": "d2"})
    pair("PUT", "/volumes/fcp/1a01", {"info": {"userid": "WFLOW1", "reserved": 1, "connections": 0,
                                               "fcp_template_id": tid}})
    pair("GET", "/volumes/fcp/1a01")
    pair("PUT", "/volumes/fcp/1a01", {"info": {"userid": "WFLOW1", "reserved": 0, "connections": 0,
                                               "fcp_template_id": ""}})
    pair("GET", "/volumes/conn/WFLOW1", {"info": {"reserve": True, "fcp_template_id": tid, "storage_provider": None}})
    pair("GET", "/volumes/conn/WFLOW1", "")   # empty body: Malformed JSON
    vdi = x.VDI.create({"name_label": "LUN 4020400100000000", "name_description": "", "SR": sr,
                        "virtual_size": str(1 << 30), "type": "user", "sharable": False, "read_only": False,
                        "other_config": {"zvm_lun": "4020400100000000"}, "xenstore_data": {}, "sm_config": {},
                        "tags": []})
    conn = {"assigner_id": "WFLOW1", "zvm_fcp": ["1a00", "1b00"], "target_wwpn": ["0x50050763050b073d"],
            "target_lun": "0x4020400100000000", "os_version": "rhel7", "multipath": True, "mount_point": "/dev/sdz"}
    pair("POST", "/guests/volumes", {"info": {"connection": conn}}, undo=lambda: backend("volume_detach", conn))
    pair("PUT", "/volumes/volume_refresh_bootmap",
         {"info": {"fcpchannel": ["1a00", "1b00"], "wwpn": ["50050763050b073d"], "lun": "4020400100000000",
                   "wwid": "", "transportfiles": "", "guest_networks": [], "fcp_template_id": None}})
    pair("GET", "/volumes/fcp/1a00")
    pair("DELETE", "/guests/volumes", {"info": {"connection": conn}}, undo=lambda: backend("volume_attach", conn))
    pair("GET", "/volumes/conn/WFLOW1", {"info": {"reserve": False, "fcp_template_id": tid}},
         undo=lambda: backend("get_volume_connector", "WFLOW1", True, tid))
    # Deleting: two templates, one for each server.
    t1 = backend("create_fcp_template", "wdel1", fcp_devices="1c00")["fcp_template"]["id"]
    t2 = backend("create_fcp_template", "wdel2", fcp_devices="1c01")["fcp_template"]["id"]
    ref = send(pair.reference, "DELETE", f"/volumes/fcptemplates/{t1}")
    got = send(pair.drover, "DELETE", f"/volumes/fcptemplates/{t2}")
    assert ref.key() == got.key(), (ref, got)
    pair("DELETE", f"/volumes/fcptemplates/{t1}")   # gone: 404 from both
    x.VDI.destroy(vdi)

    # files: each server keeps uploads in its own repository
    payload = b"hello file import\n" * 100

    def file_url(text):
        try:
            env = json.loads(text)
            env["output"]["dest_url"] = "<repository>/" + ("x" if env["output"]["dest_url"] else "")
            return json.dumps(env)
        except (ValueError, KeyError, TypeError):
            return text

    ref, got = pair("PUT", "/files", payload, headers={"Content-Type": "application/octet-stream"}, norm=file_url)
    for answer, base in ((ref, pair.reference), (got, pair.drover)):
        out = answer.json()["output"]
        assert out["filesize_in_bytes"] == len(payload) and out["md5sum"] == hashlib.md5(payload).hexdigest()
        exported = send(base, "POST", "/files", {"source_file": out["dest_url"][len("file://"):]})
        assert (exported.status, exported.ctype, exported.body) == (200, "application/octet-stream", payload)
    pair("POST", "/files", {"source_file": str(tmp_path / "missing")})

    # stopping, deleting
    pair("POST", "/guests/WFLOW1/action", {"action": "softstop", "timeout": 10, "poll_interval": 1},
         undo=lambda: backend("guest_start", "WFLOW1"))
    pair("POST", "/guests/WFLOW1/action", {"action": "stop"})
    pair("POST", "/guests/WFLOW1/action", {"action": "start", "timeout": 0},
         undo=lambda: backend("guest_stop", "WFLOW1"))
    pair("DELETE", "/vswitches/VSWV", undo=lambda: backend("vswitch_create", "VSWV"))
    pair("DELETE", "/vswitches/VSWF")
    pair("DELETE", "/guests/WFLOW1/nic/1000", {}, undo=lambda: backend("guest_create_nic", "WFLOW1", vdev="1000"))
    pair("DELETE", "/images/wimg1", undo=lambda: backend("image_import", "wimg1", f"file://{src}",
                                                         {"os_version": "rhel8"}))
    pair("DELETE", "/guests/WFLOW1")
    pair("GET", "/guests")


def test_the_recorded_request_shapes_of_the_client(pair, backend, tmp_path):
    """The requests the real client makes (`wire-client-cases.json` of the shared specs: every
    call, with and without its optional arguments), on a guest `USER1` that exists. An undo
    that finds nothing to undo (the reference's call failed) is no error: both then answer
    from the same state."""
    quiet = backend.raw
    img = tmp_path / "img1.img"
    img.write_bytes(b"\x00" * 4096)
    backend("guest_create", "USER1", 1, 1024, max_cpu=4, max_mem="8G",
            disk_list=[{"size": "1g", "is_boot_disk": True}, {"size": "100m"}])
    backend("vswitch_create", "VSW1")
    backend("image_import", "img1", f"file://{img}", {"os_version": "rhel8"})
    U = "/guests/USER1"

    pair("POST", "/guests", {"guest": {"userid": "user1", "vcpus": 1, "memory": 1024}})
    pair("POST", "/guests", {"guest": {"userid": "USER2", "vcpus": 2, "memory": 2048, "disk_list": [
        {"size": "3g", "is_boot_disk": True, "disk_pool": "ECKD:pool1"}, {"size": "1g", "format": "ext4"}],
        "user_profile": "OSDFLT", "max_cpu": 8, "max_mem": "16G"}}, undo=lambda: quiet("guest_delete", "USER2"))
    pair("POST", U + "/nic", {"nic": {"vdev": "1000", "nic_id": "port-1", "mac_addr": "02:00:00:12:34:56",
                                      "active": False}},
         undo=lambda: backend("guest_delete_nic", "USER1", "1000"))
    pair("POST", U + "/action", {"action": "register_vm", "meta": "{\"os_version\": \"rhel8\"}", "net_set": "1",
                                 "port_macs": {"123456": "port-1"}})
    pair("GET", "/guests/nics?userid=USER1&nic_id=port-1&vswitch=VSW1")
    pair("PUT", U + "/nic/1000", {"info": {"couple": True, "vswitch": "VSW1", "active": True, "vlan_id": 100}},
         undo=lambda: quiet("guest_nic_uncouple_from_vswitch", "USER1", "1000"))
    pair("PUT", U + "/nic/1000", {"info": {"couple": True, "vswitch": "VSW1"}},
         undo=lambda: quiet("guest_nic_uncouple_from_vswitch", "USER1", "1000"))
    pair("PUT", "/vswitches/VSW1", {"vswitch": {"grant_userid": "USER1"}})
    pair("PUT", "/vswitches/VSW1", {"vswitch": {"user_vlan_id": {"userid": "USER1", "vlanid": 100}}})
    pair("GET", "/guests/nics?userid=USER1&nic_id=port-1&vswitch=VSW1")
    pair("GET", "/guests/interfacestats?userid=USER1,USER2")
    pair("GET", "/guests/stats?userid=USER1,USER2")
    pair("PUT", U + "/nic/1000", {"info": {"couple": False, "active": True}},
         undo=lambda: quiet("guest_nic_couple_to_vswitch", "USER1", "1000", "VSW1"))
    pair("PUT", U + "/nic/1000", {"info": {"couple": False}},
         undo=lambda: quiet("guest_nic_couple_to_vswitch", "USER1", "1000", "VSW1"))
    pair("PUT", "/vswitches/VSW1", {"vswitch": {"revoke_userid": "USER1"}})
    pair("DELETE", U + "/nic/1000", {"active": True},
         undo=lambda: quiet("guest_create_nic", "USER1", vdev="1000", mac_addr="02:00:00:12:34:56"))
    pair("DELETE", U + "/nic/1000", {})
    nets = [{"ip_addr": "192.168.95.10", "dns_addr": ["9.0.2.1"], "gateway_addr": "192.168.95.1",
             "cidr": "192.168.95.0/24", "nic_vdev": "1000", "mac_addr": "02:00:00:12:34:56"}]
    pair("POST", U + "/interface", {"interface": {"os_version": "rhel8", "guest_networks": nets, "active": True}},
         undo=lambda: quiet("guest_delete_network_interface", "USER1", "rhel8", "1000"))
    pair("POST", U + "/interface", {"interface": {"os_version": "rhel8", "guest_networks": nets}},
         undo=lambda: quiet("guest_delete_network_interface", "USER1", "rhel8", "1000"))
    pair("DELETE", U + "/interface", {"interface": {"os_version": "rhel8", "vdev": "1000", "active": True}},
         undo=lambda: quiet("guest_create_network_interface", "USER1", "rhel8", nets))
    pair("DELETE", U + "/interface", {"interface": {"os_version": "rhel8", "vdev": "1000"}})

    pair("POST", U + "/disks", {"disk_info": {"disk_list": [{"size": "1g", "format": "ext4", "disk_pool": "FBA:pool2"}]}})
    pair("PUT", U + "/disks", {"disk_info": {"disk_list": [{"vdev": "0101", "format": "ext3", "mntdir": "/mnt/0101"}]}})
    pair("DELETE", U + "/disks", {"vdev_info": {"vdev_list": ["0101", "0102"]}},
         undo=lambda: quiet("guest_create_disks", "USER1", [{"size": "100m"}]))

    for action in ({"action": "stop", "timeout": 300, "poll_interval": 10},
                   {"action": "softstop", "timeout": 300, "poll_interval": 10},
                   {"action": "resize_cpus", "cpu_cnt": 4}, {"action": "resize_mem", "size": "8g"},
                   {"action": "live_resize_cpus", "cpu_cnt": 4}, {"action": "live_resize_mem", "size": "4096m"},
                   {"action": "grow_root_volume", "os_version": "rhel8.4"},
                   {"action": "deploy", "image": "img1"},
                   {"action": "deploy", "image": "img1", "transportfiles": str(img), "vdev": "0100",
                    "hostname": "vm1", "skipdiskcopy": False},
                   {"action": "deploy", "image": "img1", "vdev": "0100", "skipdiskcopy": True}):
        pair("POST", U + "/action", action)
    pair("POST", U + "/action", {"action": "capture", "image": "img2", "capture_type": "rootonly", "compress_level": 6},
         undo=lambda: quiet("image_delete", "img2"))
    pair("POST", U + "/action", {"action": "start"}, undo=lambda: backend("guest_stop", "USER1"))
    pair("POST", U + "/action", {"action": "stop"}, undo=lambda: backend("guest_start", "USER1"))
    pair("POST", U + "/action", {"action": "live_resize_cpus", "cpu_cnt": 4})
    pair("POST", U + "/action", {"action": "live_resize_mem", "size": "4096m"})
    pair("GET", "/guests/stats?userid=USER1,USER2", volatile=True)
    pair("POST", U + "/action", {"action": "softstop", "timeout": 300, "poll_interval": 10},
         undo=lambda: backend("guest_start", "USER1"))
    pair("POST", U + "/action", {"action": "stop", "timeout": 300, "poll_interval": 10})

    pair("POST", "/vswitches", {"vswitch": {"name": "VSW2", "rdev": "1000", "vid": 100, "port_type": "TRUNK",
                                            "native_vid": 1, "queue_mem": 4, "persist": True}},
         undo=lambda: quiet("vswitch_delete", "VSW2"))
    pair("GET", "/vswitches/VSW2")
    pair("DELETE", "/vswitches/VSW2", undo=lambda: quiet("vswitch_create", "VSW2"))
    pair("POST", "/images", {"image": {"image_name": "img3", "url": f"file://{img}",
                                       "image_meta": {"os_version": "rhel8.4", "md5sum": "0" * 32}}})
    pair("POST", "/images", {"image": {"image_name": "img3", "url": f"file://{img}",
                                       "image_meta": {"os_version": "ubuntu20"}, "remote_host": "nova@10.0.0.2"}},
         undo=lambda: quiet("image_delete", "img3"))
    out = tmp_path / "export" / "img1"
    out.parent.mkdir()
    pair("PUT", "/images/img1", {"location": {"dest_url": f"file://{out}", "remote_host": "nova@10.0.0.2"}},
         undo=lambda: out.unlink(missing_ok=True))
    pair("GET", "/host/diskpool_volumes?poolname=ECKD:pool1")
    pair("GET", "/host/diskpool?poolname=ECKD:pool1")
    pair("GET", "/host/volume?volumename=IAS100")
    pair("GET", "/volumes/conn/USER1", {"info": {"reserve": True, "fcp_template_id": "tmpl-1", "storage_provider": "sp1"}})
    pair("PUT", "/volumes/volume_refresh_bootmap",
         {"info": {"fcpchannel": ["5d71"], "wwpn": ["5005076802100c1a"], "lun": "0000000000000000", "wwid": "",
                   "transportfiles": "", "guest_networks": [], "fcp_template_id": None, "fcpchannels": ["5d71"]}})
    pair("DELETE", "/volumes/fcptemplates/tmpl-1")
    pair("PUT", "/volumes/fcptemplates/tmpl-1", {"name": "n2"})
    pair("PUT", "/volumes/fcp/1fc5", {"info": {"userid": "USER1", "reserved": 1, "connections": 2,
                                               "fcp_template_id": "tmpl-1"}})
    pair("GET", "/volumes/fcp/1fc5")
    conn = {"assigner_id": "USER1", "zvm_fcp": ["1fc5"], "target_wwpn": ["0x50050763050b073d"],
            "target_lun": "0x4020400100000000", "os_version": "rhel7", "multipath": True, "mount_point": "/dev/sdz"}
    pair("POST", "/guests/volumes", {"info": {"connection": conn}})
    pair("DELETE", "/guests/volumes", {"info": {"connection": conn}})
    pair("GET", "/volumes/fcptemplates?assigner_id=USER1")
    pair("POST", "/volumes/fcptemplates", {"name": "tmpl", "description": "d", "fcp_devices": "1a00-1a0f",
                                           "host_default": False, "storage_providers": ["sp1"],
                                           "min_fcp_paths_count": 1},
         undo=lambda: backend("delete_fcp_template", pending_template(pair, "tmpl")),
         norm=lambda text: re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", text))
    pair("GET", "/volumes/fcptemplates?storage_providers=sp1", norm=lambda text: re.sub(
        r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<id>", text))
    pair("POST", U + "/action", {"action": "deregister_vm"})
    pair("DELETE", "/images/img1", undo=lambda: backend("image_import", "img1", f"file://{img}", {"os_version": "rhel8"}))
    pair("DELETE", U, undo=lambda: backend("guest_create", "USER1", 1, 1024))
    backend("guest_delete", "USER1")
    backend("vswitch_delete", "VSW1")


def pending_template(pair, name="wt"):
    """The id of the template the reference just made (the only one named `name`)."""
    ans = send(pair.drover, "GET", "/volumes/fcptemplates")
    ids = [t["id"] for t in ans.json()["output"]["fcp_templates"] if t["name"] == name]
    assert len(ids) == 1, ans
    return ids[0]


# ---------------------------------------------------------------------------------------------
# token mode against the recorded answers of the real layer


@pytest.fixture
def token_drover(zvm_token_engine):
    return zvm_token_engine


def test_token_mode_answers_as_recorded(token_drover):
    rec = recorded("zvm-wire-auth-cases.json")
    base = f"http://127.0.0.1:{token_drover.zvm_port}"

    def same(label, method, path, headers):
        got = send(base, method, path, None, headers)
        want = rec[label]
        assert (got.status, got.ctype, got.text) == (want["status"], want["ctype"], want["resp_body"]), (label, got)
        assert got.allow == want["allow"] and "X-Auth-Token" not in got.headers
        return got

    same("token mode, no X-Auth-Token", "GET", "/guests", JSON_CT)
    same("token mode, garbage token", "GET", "/guests", {**JSON_CT, "X-Auth-Token": "garbage"})
    same("POST /token no admin token", "POST", "/token", JSON_CT)
    same("POST /token wrong admin token", "POST", "/token", {**JSON_CT, "X-Admin-Token": "wrong"})
    # The recorded token was signed with the same admin token and has expired since.
    old = rec["POST /token correct admin token (PyJWT1 semantics emulated)"]["x_auth_token"]
    assert jwt.decode(old, "my-admin-token", algorithms=["HS256"], options={"verify_exp": False})
    if jwt.decode(old, options={"verify_signature": False})["exp"] < time.time():
        same("token mode, expired token", "GET", "/guests", {**JSON_CT, "X-Auth-Token": old})
    expired = jwt.encode({"exp": int(time.time()) - 5}, "my-admin-token", algorithm="HS256")
    same("token mode, expired token", "GET", "/guests", {**JSON_CT, "X-Auth-Token": expired})

    want = rec["POST /token correct admin token (PyJWT1 semantics emulated)"]
    r = requests.post(base + "/token", headers={**JSON_CT, "X-Admin-Token": "my-admin-token"})
    assert (r.status_code, r.headers["Content-Type"], r.text) == (want["status"], want["ctype"], want["resp_body"])
    tok = r.headers["X-Auth-Token"]
    shape = rec["decoded token payload/header"]
    assert jwt.get_unverified_header(tok) == shape["header"]
    payload = jwt.decode(tok, "my-admin-token", algorithms=["HS256"])
    assert set(payload) == set(shape["payload"]) and abs(payload["exp"] - (time.time() + 3600)) < 10
    # With it: the call passes (its output is Drover's, the recording's backend was a stand-in).
    want = rec["token mode, valid token"]
    got = send(base, "GET", "/guests", None, {**JSON_CT, "X-Auth-Token": tok})
    assert (got.status, got.ctype) == (want["status"], want["ctype"])
    assert set(got.json()) == set(json.loads(want["resp_body"]))

    # The clients: ZVMConnector sends no token (token_path or not); RESTClient(auth='token') does.
    for label, kw in (("ZVMConnector(token_path=None) against auth=token server", {}),
                      ("ZVMConnector(token_path=file) against auth=token server",
                       {"token_path": str(token_drover.token_file)})):
        c = connector.ZVMConnector("127.0.0.1", token_drover.zvm_port, **kw)
        assert c.send_request("guest_list") == rec[label]["client_return"], label
    rc = restclient.RESTClient("127.0.0.1", token_drover.zvm_port, token_path=str(token_drover.token_file),
                               auth="token")
    ret = rc.call("guest_list")
    want = rec["RESTClient(auth='token', token_path=file) (direct, not via ZVMConnector)"]["client_return"]
    assert {k: v for k, v in ret.items() if k != "output"} == {k: v for k, v in want.items() if k != "output"}
