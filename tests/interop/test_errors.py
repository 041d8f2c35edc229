"""Each error of the contract with its exact parameters, and bad input on the wire (malformed XML,
huge bodies, deep nesting) that must be refused without taking the server down."""

import json
import socket
import time
import uuid
import xmlrpc.client

import pytest
import XenAPI

from xapitest import (
    MiB,
    expect_failure_struct,
    expect_success,
    failure,
    failure_code,
    http_post,
    local_sr,
    new_vm,
    new_vm_with_disk,
    raw_login,
    raw_proxy,
    session,
    template,
    the_host,
    unique,
    vdi_record,
)

LIMIT = 16 * MiB


def assert_still_serving(engine):
    assert engine.alive, "drover is not running any more"
    ref = raw_login(engine.url, engine.password)
    assert expect_success(raw_proxy(engine.url).VM.get_all(ref))
    import urllib.request

    with urllib.request.urlopen(engine.url + "/health", timeout=10) as r:
        assert r.status == 200


def refused_xmlrpc(status, body):
    """A bad XML-RPC request is refused with HTTP 400, or with 200 carrying a fault or a Failure."""
    if status == 400:
        return True
    if status != 200:
        return False
    try:
        (value,), _ = xmlrpc.client.loads(body)
    except xmlrpc.client.Fault:
        return True
    except Exception:  # noqa: BLE001 - not even a methodResponse
        return False
    return isinstance(value, dict) and value.get("Status") == "Failure"


# ------------------------------------------------------------------ errors with exact parameters


def test_handle_invalid_unknown_ref(x):
    bogus = "OpaqueRef:" + str(uuid.uuid4())
    with failure("HANDLE_INVALID", "VM", bogus):
        x.VM.get_record(bogus)
    with failure("HANDLE_INVALID", "VM", bogus):
        x.VM.get_name_label(bogus)
    with failure("HANDLE_INVALID", "VM", bogus):
        x.VM.set_name_label(bogus, "n")
    with failure("HANDLE_INVALID", "VM", bogus):
        x.VM.start(bogus, False, False)
    with failure("HANDLE_INVALID", "SR", bogus):
        x.SR.get_VDIs(bogus)


def test_handle_invalid_not_a_ref(x):
    with failure("HANDLE_INVALID", "VM", "not-even-a-ref"):
        x.VM.get_record("not-even-a-ref")


def test_handle_invalid_ref_of_another_class(x):
    host = the_host(x)
    vm = x.VM.get_all()[0]
    with failure("HANDLE_INVALID", "VM", host):
        x.VM.get_record(host)
    with failure("HANDLE_INVALID", "host", vm):
        x.host.get_name_label(vm)
    with failure("HANDLE_INVALID", "VM", host):
        x.VM.clone(host, "nope")
    sr = local_sr(x)
    with failure("HANDLE_INVALID", "SR", vm):
        x.VDI.create(vdi_record(vm))
    with failure("HANDLE_INVALID", "SR", host):
        x.VM.copy(new_vm(x, unique("copy-bad-sr")), "c", host)
    assert sr  # the real SR is still there


def test_uuid_invalid(x):
    u = str(uuid.uuid4())
    with failure("UUID_INVALID", "VM", u):
        x.VM.get_by_uuid(u)
    host_uuid = x.host.get_uuid(the_host(x))
    with failure("UUID_INVALID", "VM", host_uuid):
        x.VM.get_by_uuid(host_uuid)


@pytest.mark.parametrize("method", ["VM.frobnicate", "NoSuchClass.get_all", "VM.get_no_such_field", "VM", "session.nope"])
def test_message_method_unknown(engine, xapi, method):
    r = getattr(raw_proxy(engine.url), method)(xapi._session)
    expect_failure_struct(r, "MESSAGE_METHOD_UNKNOWN", method)


def test_message_method_unknown_through_client(x):
    with failure("MESSAGE_METHOD_UNKNOWN", "VM.frobnicate"):
        x.VM.frobnicate()


@pytest.mark.parametrize(
    "method,extra,expected,received",
    [
        ("VM.get_name_label", [], "2", "1"),
        ("VM.get_name_label", ["VM", "extra"], "2", "3"),
        ("VM.get_all", ["extra"], "1", "2"),
        ("VM.start", ["VM"], "4", "2"),
        ("VM.clone", ["VM"], "3", "2"),
        ("VM.set_name_label", ["VM"], "3", "2"),
    ],
)
def test_message_parameter_count_mismatch(engine, xapi, x, method, extra, expected, received):
    """Counts include the session argument (the contract)."""
    vm = x.VM.get_all()[0]
    args = [xapi._session] + [vm if a == "VM" else a for a in extra]
    r = getattr(raw_proxy(engine.url), method)(*args)
    expect_failure_struct(r, "MESSAGE_PARAMETER_COUNT_MISMATCH", method, expected, received)


def test_vm_bad_power_state(x):
    vm = new_vm(x, unique("err-power"))
    x.VM.start(vm, False, False)
    with failure("VM_BAD_POWER_STATE", vm, "halted", "running"):
        x.VM.start(vm, False, False)
    x.VM.hard_shutdown(vm)
    with failure("VM_BAD_POWER_STATE", vm, "running", "halted"):
        x.VM.clean_shutdown(vm)


def test_vm_is_template(x):
    t = template(x)
    with failure("VM_IS_TEMPLATE", t, "start"):
        x.VM.start(t, False, False)


def test_operation_not_allowed_destroy_attached_vbd(x):
    vm, vdi, vbd = new_vm_with_disk(x, unique("err-attached"))
    x.VM.start(vm, False, False)
    assert x.VBD.get_currently_attached(vbd) is True
    with failure_code("OPERATION_NOT_ALLOWED") as ei:
        x.VBD.destroy(vbd)
    d = ei.value.details
    assert len(d) == 2 and isinstance(d[1], str) and d[1], d
    assert vbd in x.VM.get_VBDs(vm)
    x.VM.hard_shutdown(vm)
    assert x.VBD.get_currently_attached(vbd) is False
    x.VBD.destroy(vbd)
    assert x.VM.get_VBDs(vm) == []


def test_vdi_in_use(x):
    vm, vdi, vbd = new_vm_with_disk(x, unique("err-inuse"))
    x.VM.start(vm, False, False)
    with failure("VDI_IN_USE", vdi, "destroy"):
        x.VDI.destroy(vdi)
    assert vdi in x.VDI.get_all()
    assert x.VBD.get_VDI(vbd) == vdi
    x.VM.hard_shutdown(vm)


def test_vdi_larger_than_sr(x):
    """A VDI bigger than the room its SR has left: SR_FULL [requested, maximum], nothing made."""
    sr = local_sr(x)
    rec = x.SR.get_record(sr)
    phys, util = int(rec["physical_size"]), int(rec["physical_utilisation"])
    assert phys > 0
    size = phys + 1024 * MiB
    before = set(x.SR.get_VDIs(sr))
    with failure("SR_FULL", str(size), str(phys - util)):
        x.VDI.create(vdi_record(sr, unique("too-big"), size=size))
    assert set(x.SR.get_VDIs(sr)) == before
    assert x.SR.get_physical_utilisation(sr) == rec["physical_utilisation"]


def test_sr_full_on_a_small_sr(engine_factory):
    """With a 64 MiB SR, a 48 MiB disk fits and a second one does not; the first stays usable."""
    eng = engine_factory("--sim-sr-capacity-mib", "64")
    s = XenAPI.Session(eng.url)
    s.xenapi.login_with_password("admin", eng.password, "1.0", "sr-full")
    try:
        x = s.xenapi
        sr = local_sr(x)
        first = x.VDI.create(vdi_record(sr, unique("fits"), size=48 * MiB))
        free = int(x.SR.get_physical_size(sr)) - int(x.SR.get_physical_utilisation(sr))
        with failure("SR_FULL", str(48 * MiB), str(free)):
            x.VDI.create(vdi_record(sr, unique("does-not-fit"), size=48 * MiB))
        assert x.SR.get_VDIs(sr) == [first]
    finally:
        s.xenapi.session.logout()


def test_sr_accounting_follows_vdis(x):
    sr = local_sr(x)
    rec = x.SR.get_record(sr)
    util, alloc = int(rec["physical_utilisation"]), int(rec["virtual_allocation"])
    vdi = x.VDI.create(vdi_record(sr, unique("util"), size=32 * MiB))
    assert int(x.SR.get_virtual_allocation(sr)) == alloc + 32 * MiB
    assert int(x.SR.get_physical_utilisation(sr)) > util
    x.VDI.destroy(vdi)
    assert int(x.SR.get_virtual_allocation(sr)) == alloc
    assert int(x.SR.get_physical_utilisation(sr)) == util


def test_session_invalid(engine):
    p = raw_proxy(engine.url)
    expect_failure_struct(p.VM.get_all("OpaqueRef:bogus"), "SESSION_INVALID", "OpaqueRef:bogus")
    expect_failure_struct(p.VM.get_record("OpaqueRef:bogus", "OpaqueRef:x"), "SESSION_INVALID", "OpaqueRef:bogus")


def test_session_authentication_failed(engine):
    with failure_code("SESSION_AUTHENTICATION_FAILED"):
        session(engine.url, "admin", "definitely-not-the-password")


def test_field_type_error(x):
    vm = new_vm(x, unique("err-type"))
    with failure("FIELD_TYPE_ERROR", "value"):
        x.VM.set_name_label(vm, 1)
    with failure("FIELD_TYPE_ERROR", "start_paused"):
        x.VM.start(vm, "false", False)


def test_failure_structure_on_the_wire(engine):
    """Failures are a {Status: Failure, ErrorDescription: [strings]} struct, never an XML-RPC fault."""
    status, _, body = http_post(
        engine.url, "/RPC2",
        b"<?xml version='1.0'?><methodCall><methodName>VM.get_all</methodName><params>"
        b"<param><value><string>OpaqueRef:nope</string></value></param></params></methodCall>",
    )
    assert status == 200
    (value,), _ = xmlrpc.client.loads(body)
    assert value == {"Status": "Failure", "ErrorDescription": ["SESSION_INVALID", "OpaqueRef:nope"]}


# ------------------------------------------------------------------ bad input on the wire


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"hello",
        b"<methodCall><methodName>VM.get_all</methodName><params>",
        b"<?xml version='1.0'?><methodCall><methodName>VM.get_all</methodName><params><param><value><string>x</value></param></params></methodCall>",
        b"<methodCall></methodCall>",
        b"<methodCall><methodName></methodName></methodCall>",
        b"<methodCall><methodName>VM.get_all</methodName><params><param><value><i4>notanumber</i4></value></param></params></methodCall>",
        b"<methodCall><methodName>VM.get_all</methodName><params><param><value><struct><member><value>1</value></member></struct></value></param></params></methodCall>",
        b"<methodCall><methodName>VM.get_all</methodName><params><param><value><string>\xff\xfe</string></value></param></params></methodCall>",
        b"\x00\x01\x02\x03" * 100,
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;"><!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;"><!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;"><!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;"><!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;"><!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]><methodCall><methodName>&lol9;</methodName></methodCall>',
    ],
    ids=["empty", "not-xml", "truncated", "mismatched-tags", "no-name", "empty-name", "bad-int", "member-without-name",
         "invalid-utf8", "binary", "billion-laughs"],
)
def test_malformed_xml_is_refused(engine, body):
    t0 = time.monotonic()
    status, _, resp = http_post(engine.url, "/RPC2", body)
    assert refused_xmlrpc(status, resp), (status, resp[:300])
    assert time.monotonic() - t0 < 10
    assert_still_serving(engine)


def test_deeply_nested_value(engine, xapi):
    depth = 100_000
    body = (
        b"<?xml version='1.0'?><methodCall><methodName>VM.set_name_label</methodName><params>"
        + b"<param><value><string>" + xapi._session.encode() + b"</string></value></param>"
        + b"<param><value>" + b"<array><data><value>" * depth + b"x" + b"</value></data></array>" * depth
        + b"</value></param></params></methodCall>"
    )
    assert len(body) < LIMIT
    status, _, resp = http_post(engine.url, "/RPC2", body)
    assert refused_xmlrpc(status, resp), (status, resp[:300])
    assert_still_serving(engine)


def test_deeply_nested_json(engine):
    depth = 100_000
    body = b'{"jsonrpc":"2.0","id":1,"method":"VM.get_all","params":' + b"[" * depth + b"]" * depth + b"}"
    status, _, resp = http_post(engine.url, "/jsonrpc", body, content_type="application/json")
    assert status in (200, 400), status
    if status == 200:
        assert "error" in json.loads(resp), resp[:300]
    assert_still_serving(engine)


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b"null", b'{"method": 5}', b"\xff\xfe"], ids=["empty", "open", "array", "null", "bad-method", "binary"])
def test_malformed_json_is_refused(engine, body):
    status, _, resp = http_post(engine.url, "/jsonrpc", body, content_type="application/json")
    assert status in (200, 400), status
    if status == 200:
        doc = json.loads(resp)
        assert doc.get("error") not in (None, ""), doc
    assert_still_serving(engine)


def _post_streaming(url, path, total, chunked=False, chunk=1 << 20):
    """Send a POST of `total` body bytes without buffering it; returns the HTTP status the server
    answered with (it may answer before the body is complete), or None if it gave no answer."""
    host, port = url.split("//", 1)[1].rstrip("/").split(":")
    s = socket.create_connection((host, int(port)), timeout=30)
    try:
        head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: text/xml\r\n"
        head += "Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {total}\r\n"
        s.sendall((head + "\r\n").encode())
        prefix = b"<?xml version='1.0'?><methodCall><methodName>VM.get_all</methodName><params><param><value><string>"
        block = b"A" * chunk
        sent = 0
        try:
            while sent < total:
                piece = prefix if sent == 0 else block[: min(chunk, total - sent)]
                s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
                sent += len(piece)
            if chunked:
                s.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        data = b""
        try:
            while b"\r\n" not in data:
                got = s.recv(4096)
                if not got:
                    break
                data += got
        except (ConnectionResetError, socket.timeout):
            pass
        if not data.startswith(b"HTTP/1."):
            return None
        return int(data.split(b" ", 2)[1])
    finally:
        s.close()


def test_body_over_16_mib_is_413(engine):
    assert _post_streaming(engine.url, "/RPC2", LIMIT + 1024 * 1024) == 413
    assert_still_serving(engine)


def test_chunked_body_over_16_mib_is_413(engine):
    assert _post_streaming(engine.url, "/RPC2", LIMIT + 1024 * 1024, chunked=True) == 413
    assert_still_serving(engine)


def test_json_body_over_16_mib_is_413(engine):
    assert _post_streaming(engine.url, "/jsonrpc", LIMIT + 1024 * 1024) == 413
    assert_still_serving(engine)


def test_body_just_under_limit_is_processed(engine, xapi):
    """A large but legal body (a 15 MiB name) is read and answered normally."""
    vm = new_vm(xapi.xenapi, unique("big-name"))
    name = "n" * (15 * MiB)
    r = raw_proxy(engine.url, timeout=120).VM.set_name_label(xapi._session, vm, name)
    expect_success(r)
    assert len(xapi.xenapi.VM.get_name_label(vm)) == len(name)
    xapi.xenapi.VM.set_name_label(vm, "small again")


def test_unknown_path_and_method(engine):
    import requests

    r = requests.post(engine.url + "/no/such/path", data=b"<methodCall/>", timeout=10)
    assert r.status_code == 404
    r = requests.get(engine.url + "/RPC2", timeout=10)
    assert 400 <= r.status_code < 500
    assert_still_serving(engine)


def test_many_bad_requests_then_still_fine(engine):
    for i in range(200):
        http_post(engine.url, "/RPC2", b"<methodCall><methodName>" + str(i).encode())
    assert_still_serving(engine)
