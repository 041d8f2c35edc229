"""JSON-RPC v1 and v2 on POST /jsonrpc, by raw HTTP: results are the values themselves, errors in
each version's shape."""

import json

import pytest
import requests

from xapitest import jsonrpc, new_vm, unique


@pytest.fixture(scope="module")
def jsession(engine):
    r = jsonrpc(engine.url, "session.login_with_password", ["admin", engine.password, "2.0", "jsonrpc-test"])
    yield r["result"]
    jsonrpc(engine.url, "session.logout", [r["result"]])


def test_v2_login(engine):
    r = jsonrpc(engine.url, "session.login_with_password", ["admin", engine.password, "2.0", "t"], req_id=7)
    assert set(r) == {"jsonrpc", "result", "id"}, r
    assert r["jsonrpc"] == "2.0" and r["id"] == 7
    assert isinstance(r["result"], str) and r["result"].startswith("OpaqueRef:")


def test_v1_login(engine):
    r = jsonrpc(engine.url, "session.login_with_password", ["admin", engine.password], version=None, req_id=8)
    assert r["error"] is None
    assert r["id"] == 8
    assert r["result"].startswith("OpaqueRef:")
    assert "jsonrpc" not in r


def test_v2_get_all_records_matches_xmlrpc(engine, jsession, x):
    vm = new_vm(x, unique("json-vm"))
    x.VM.add_tags(vm, "json")
    r = jsonrpc(engine.url, "VM.get_all_records", [jsession])
    recs = r["result"]
    assert isinstance(recs, dict)
    assert set(recs) == set(x.VM.get_all())
    j, xr = recs[vm], x.VM.get_record(vm)
    assert set(j) == set(xr)
    for k in ("uuid", "name_label", "power_state", "is_a_template", "other_config", "VBDs", "resident_on", "tags"):
        assert j[k] == xr[k], k
    # ints are numbers in JSON (strings on XML-RPC); compare by value
    assert str(j["memory_static_max"]) == xr["memory_static_max"]
    assert str(j["VCPUs_max"]) == xr["VCPUs_max"]


def test_v1_get_all_records(engine, jsession, x):
    r = jsonrpc(engine.url, "VM.get_all_records", [jsession], version=None, req_id="abc")
    assert r["error"] is None and r["id"] == "abc"
    assert set(r["result"]) == set(x.VM.get_all())


def test_v2_void_result_and_setter(engine, jsession, x):
    vm = new_vm(x, unique("json-set"))
    r = jsonrpc(engine.url, "VM.set_name_label", [jsession, vm, "set over json"])
    assert "error" not in r, r
    assert r["result"] in ("", None), r
    assert x.VM.get_name_label(vm) == "set over json"


def test_v2_error_shape(engine, jsession):
    r = jsonrpc(engine.url, "VM.get_record", [jsession, "OpaqueRef:nope"], req_id=11)
    assert r == {"jsonrpc": "2.0", "error": {"code": 1, "message": "HANDLE_INVALID", "data": ["VM", "OpaqueRef:nope"]}, "id": 11}


def test_v1_error_shape(engine, jsession):
    r = jsonrpc(engine.url, "VM.get_record", [jsession, "OpaqueRef:nope"], version=None, req_id=12)
    assert r == {"result": None, "error": ["HANDLE_INVALID", "VM", "OpaqueRef:nope"], "id": 12}


def test_v2_session_invalid(engine):
    r = jsonrpc(engine.url, "VM.get_all", ["OpaqueRef:bogus"], req_id=13)
    assert r == {"jsonrpc": "2.0", "error": {"code": 1, "message": "SESSION_INVALID", "data": ["OpaqueRef:bogus"]}, "id": 13}


def test_v2_auth_failure(engine):
    r = jsonrpc(engine.url, "session.login_with_password", ["admin", "wrong", "2.0", "t"])
    assert r["error"]["message"] == "SESSION_AUTHENTICATION_FAILED"
    assert r["error"]["code"] == 1
    assert "result" not in r


def test_v2_method_unknown(engine, jsession):
    r = jsonrpc(engine.url, "VM.frobnicate", [jsession], req_id=14)
    assert r["error"] == {"code": 1, "message": "MESSAGE_METHOD_UNKNOWN", "data": ["VM.frobnicate"]}, r


def test_v2_parameter_count(engine, jsession):
    r = jsonrpc(engine.url, "VM.get_name_label", [jsession], req_id=15)
    assert r["error"] == {"code": 1, "message": "MESSAGE_PARAMETER_COUNT_MISMATCH", "data": ["VM.get_name_label", "2", "1"]}, r


def test_v2_async_and_task(engine, jsession, x):
    vm = new_vm(x, unique("json-async"))
    r = jsonrpc(engine.url, "Async.VM.clone", [jsession, vm, "json-clone"])
    task = r["result"]
    assert task.startswith("OpaqueRef:")
    from xapitest import parse_value_fragment, wait_task

    rec = wait_task(x, task)
    assert rec["status"] == "success"
    assert x.VM.get_name_label(parse_value_fragment(rec["result"])) == "json-clone"


def test_v2_event_from(engine, jsession):
    r = jsonrpc(engine.url, "event.from", [jsession, ["VM"], "", 1.0])
    res = r["result"]
    assert isinstance(res["events"], list) and res["events"]
    assert isinstance(res["token"], str)
    assert all(e["operation"] == "add" for e in res["events"])


def test_v2_datetime_is_a_string(engine, jsession, x):
    from xapitest import wait_task

    task = x.Async.VM.get_allowed_VBD_devices(new_vm(x, unique("json-dates")))
    wait_task(x, task)
    r = jsonrpc(engine.url, "task.get_created", [jsession, task])
    created = r["result"]
    assert isinstance(created, str)
    from xapitest import DATETIME_RE

    assert DATETIME_RE.match(created), created
    x.task.destroy(task)


def test_v2_create_with_record(engine, jsession, x):
    from xapitest import vm_record

    rec = vm_record(unique("json-create"))
    # ints may be JSON numbers
    rec["memory_static_max"] = rec["memory_dynamic_max"] = rec["memory_dynamic_min"] = rec["memory_static_min"] = 268435456
    r = jsonrpc(engine.url, "VM.create", [jsession, rec])
    vm = r["result"]
    assert x.VM.get_memory_static_max(vm) == "268435456"


def test_xmlrpc_and_jsonrpc_share_sessions(engine, jsession, xapi, x):
    """A session made over JSON-RPC works over XML-RPC and the other way round."""
    from xapitest import expect_success, raw_proxy

    assert sorted(expect_success(raw_proxy(engine.url).VM.get_all(jsession))) == sorted(x.VM.get_all())
    r = jsonrpc(engine.url, "VM.get_all", [xapi._session])
    assert sorted(r["result"]) == sorted(x.VM.get_all())


def test_content_type_is_json(engine, jsession):
    body = json.dumps({"jsonrpc": "2.0", "method": "VM.get_all", "params": [jsession], "id": 1})
    r = requests.post(engine.url + "/jsonrpc", data=body, headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 200
    assert r.headers["Content-Type"].split(";")[0].strip() == "application/json"
