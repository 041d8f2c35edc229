"""Field RPCs: set/get round trips (strings, ints, bools, enums, maps, sets), missing setters for
RO fields, and wrongly typed values."""

import pytest
import XenAPI

from xapitest import (
    expect_failure_struct,
    failure,
    failure_code,
    local_sr,
    new_vm,
    raw_proxy,
    the_pool,
    unique,
    vbd_record,
    vdi_record,
)


@pytest.fixture
def vm(x):
    return new_vm(x, unique("fields"))


@pytest.mark.parametrize(
    "value",
    ["plain", "", "with spaces and\ttab", "<xml> & 'quotes' \"double\"", "ünïcødé ✓ 中文", "x" * 4000, "]]>"],
    ids=["plain", "empty", "whitespace", "xml-special", "unicode", "long", "cdata-end"],
)
def test_string_round_trip(x, vm, value):
    x.VM.set_name_label(vm, value)
    assert x.VM.get_name_label(vm) == value
    assert x.VM.get_record(vm)["name_label"] == value


def test_name_description_round_trip(x, vm):
    x.VM.set_name_description(vm, "a description")
    assert x.VM.get_name_description(vm) == "a description"


def test_int_round_trip_as_decimal_string(x, vm):
    x.VM.set_user_version(vm, "7")
    assert x.VM.get_user_version(vm) == "7"
    big = str(2**40 + 3)  # beyond XML-RPC's i4: ints are 64-bit, carried as strings
    x.VM.set_user_version(vm, big)
    assert x.VM.get_user_version(vm) == big
    assert x.VM.get_record(vm)["user_version"] == big


def test_int_accepts_native_xmlrpc_int(x, vm):
    x.VM.set_user_version(vm, 5)
    assert x.VM.get_user_version(vm) == "5"


def test_bool_round_trip(x):
    pool = the_pool(x)
    old = x.pool.get_ha_allow_overcommit(pool)
    try:
        x.pool.set_ha_allow_overcommit(pool, True)
        assert x.pool.get_ha_allow_overcommit(pool) is True
        x.pool.set_ha_allow_overcommit(pool, False)
        assert x.pool.get_ha_allow_overcommit(pool) is False
    finally:
        x.pool.set_ha_allow_overcommit(pool, old)


def test_bool_round_trip_on_vbd(x, vm):
    vdi = x.VDI.create(vdi_record(local_sr(x), unique("fields-vdi")))
    vbd = x.VBD.create(vbd_record(vm, vdi, "1", bootable=False))
    x.VBD.set_bootable(vbd, True)
    assert x.VBD.get_bootable(vbd) is True
    x.VBD.set_bootable(vbd, False)
    assert x.VBD.get_bootable(vbd) is False


def test_enum_round_trip(x, vm):
    x.VM.set_actions_after_shutdown(vm, "restart")
    assert x.VM.get_actions_after_shutdown(vm) == "restart"
    x.VM.set_actions_after_shutdown(vm, "destroy")
    assert x.VM.get_actions_after_shutdown(vm) == "destroy"


def test_enum_rejects_unknown_value(x, vm):
    x.VM.set_actions_after_reboot(vm, "restart")
    with pytest.raises(XenAPI.Failure):
        x.VM.set_actions_after_reboot(vm, "explode")
    assert x.VM.get_actions_after_reboot(vm) == "restart"


def test_ref_round_trip(x, vm):
    sr = local_sr(x)
    x.VM.set_suspend_SR(vm, sr)
    assert x.VM.get_suspend_SR(vm) == sr
    x.VM.set_suspend_SR(vm, "OpaqueRef:NULL")
    assert x.VM.get_suspend_SR(vm) == "OpaqueRef:NULL"


def test_map_set_add_remove(x, vm):
    x.VM.set_other_config(vm, {"a": "1", "b": "2"})
    assert x.VM.get_other_config(vm) == {"a": "1", "b": "2"}
    x.VM.add_to_other_config(vm, "c", "3")
    assert x.VM.get_other_config(vm) == {"a": "1", "b": "2", "c": "3"}
    x.VM.remove_from_other_config(vm, "b")
    assert x.VM.get_other_config(vm) == {"a": "1", "c": "3"}
    # removing a key that is not there is a no-op
    x.VM.remove_from_other_config(vm, "never-there")
    assert x.VM.get_other_config(vm) == {"a": "1", "c": "3"}
    x.VM.set_other_config(vm, {})
    assert x.VM.get_other_config(vm) == {}


def test_map_keys_with_special_characters(x, vm):
    cfg = {"key with space": "v", "k<&>": "<&>", "ключ": "значение", "dotted.key/slash": ""}
    x.VM.set_other_config(vm, cfg)
    assert x.VM.get_other_config(vm) == cfg


def test_map_add_existing_key(x, vm):
    """The seed: adding a pair for a duplicate key overwrites it; today's xapi refuses with
    MAP_DUPLICATE_KEY [class, field, uuid, key]. Either, precisely."""
    x.VM.set_other_config(vm, {"a": "1"})
    try:
        x.VM.add_to_other_config(vm, "a", "2")
    except XenAPI.Failure as e:
        assert e.details == ["MAP_DUPLICATE_KEY", "VM", "other_config", x.VM.get_uuid(vm), "a"], e.details
        assert x.VM.get_other_config(vm) == {"a": "1"}
    else:
        assert x.VM.get_other_config(vm) == {"a": "2"}


def test_set_add_remove_tags(x, vm):
    x.VM.add_tags(vm, "red")
    x.VM.add_tags(vm, "green")
    x.VM.add_tags(vm, "red")  # sets hold each value once
    assert sorted(x.VM.get_tags(vm)) == ["green", "red"]
    x.VM.remove_tags(vm, "red")
    assert x.VM.get_tags(vm) == ["green"]
    x.VM.remove_tags(vm, "not-a-tag")
    assert x.VM.get_tags(vm) == ["green"]
    x.VM.set_tags(vm, ["a", "b"])
    assert sorted(x.VM.get_tags(vm)) == ["a", "b"]
    x.VM.set_tags(vm, [])
    assert x.VM.get_tags(vm) == []


def test_map_on_other_classes(x):
    sr = local_sr(x)
    x.SR.add_to_other_config(sr, "interop", "1")
    assert x.SR.get_other_config(sr)["interop"] == "1"
    x.SR.remove_from_other_config(sr, "interop")
    assert "interop" not in x.SR.get_other_config(sr)
    net = x.network.get_all()[0]
    x.network.add_tags(net, "interop")
    assert "interop" in x.network.get_tags(net)
    x.network.remove_tags(net, "interop")
    assert "interop" not in x.network.get_tags(net)


@pytest.mark.parametrize(
    "method",
    ["VM.set_power_state", "VM.set_uuid", "VM.set_resident_on", "VM.add_to_VBDs", "VM.remove_from_VBDs",
     "VM.set_allowed_operations", "host.set_metrics", "VDI.set_virtual_size", "SR.set_VDIs", "VM.set_domid"],
)
def test_setter_for_ro_field_does_not_exist(engine, xapi, x, method):
    vm = x.VM.get_all()[0]
    p = raw_proxy(engine.url)
    r = getattr(p, method)(xapi._session, vm, "Running")
    expect_failure_struct(r, "MESSAGE_METHOD_UNKNOWN", method)


def test_read_only_value_unchanged_after_refused_setter(engine, xapi, x, vm):
    raw_proxy(engine.url).VM.set_power_state(xapi._session, vm, "Running")
    assert x.VM.get_power_state(vm) == "Halted"


@pytest.mark.parametrize(
    "method,args,param",
    [
        ("set_name_label", (42,), "value"),
        ("set_name_label", (["a"],), "value"),
        ("set_name_description", ({"k": "v"},), "value"),
        ("set_user_version", ("seven",), "value"),
        ("set_user_version", (True,), "value"),
        ("set_is_a_template", ("yes",), "value"),
        ("set_other_config", ("not-a-map",), "value"),
        ("set_other_config", ({"k": 1},), "value"),
        ("set_tags", ("not-a-list",), "value"),
        ("add_to_other_config", (1, "v"), "key"),
        ("add_tags", (["nested"],), "value"),
        ("set_suspend_SR", (17,), "value"),
    ],
    ids=lambda v: str(v) if not isinstance(v, tuple) else "-".join(type(a).__name__ for a in v),
)
def test_wrong_type_is_field_type_error(x, vm, method, args, param):
    before = x.VM.get_record(vm)
    with failure("FIELD_TYPE_ERROR", param):
        getattr(x.VM, method)(vm, *args)
    after = x.VM.get_record(vm)
    for k in ("name_label", "name_description", "user_version", "is_a_template", "other_config", "tags", "suspend_SR"):
        assert after[k] == before[k], k


def test_wrong_type_in_lifecycle_call(x, vm):
    with failure("FIELD_TYPE_ERROR", "start_paused"):
        x.VM.start(vm, "no", False)
    with failure("FIELD_TYPE_ERROR", "force"):
        x.VM.start(vm, False, 0.5)
    assert x.VM.get_power_state(vm) == "Halted"


def test_wrong_type_in_create_record(x):
    from xapitest import vm_record

    rec = vm_record(unique("badtype"))
    rec["memory_static_max"] = True
    with failure("FIELD_TYPE_ERROR", "memory_static_max"):
        x.VM.create(rec)
    rec = vm_record(unique("badtype"))
    rec["is_a_template"] = "false"
    with failure("FIELD_TYPE_ERROR", "is_a_template"):
        x.VM.create(rec)


def test_wrong_type_for_ref_parameter(x):
    with failure_code("FIELD_TYPE_ERROR") as ei:
        x.VM.get_name_label(12)
    assert ei.value.details == ["FIELD_TYPE_ERROR", "self"]


def test_setter_on_ref_of_other_class_is_handle_invalid(x):
    host = x.host.get_all()[0]
    with failure("HANDLE_INVALID", "VM", host):
        x.VM.set_name_label(host, "nope")
    assert x.host.get_name_label(host) != "nope"
