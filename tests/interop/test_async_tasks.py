"""Async.<Class>.<method>: task records, results as XML-RPC value fragments, errors, cancellation
(with a slowed-down simulated host) and OTHER_OPERATION_IN_PROGRESS."""

import time

import pytest
import XenAPI

from xapitest import (
    DATETIME_RE,
    assert_integrity,
    failure,
    failure_code,
    new_vm,
    new_vm_with_disk,
    parse_value_fragment,
    template,
    the_host,
    type_error,
    unique,
    wait_task,
    wait_until,
)

DELAY_MS = 2000


@pytest.fixture(scope="module")
def slow(delayed_engine):
    """(engine, xenapi) of a module-wide engine whose simulated host operations each take a while."""
    assert delayed_engine.delay_ms == DELAY_MS
    s = delayed_engine.session()
    yield delayed_engine, s.xenapi
    if delayed_engine.alive:
        s.xenapi.session.logout()


def check_task_record(rec):
    from xapitest import fields

    for f in fields("task"):
        assert f["name"] in rec, f["name"]
        err = type_error(rec[f["name"]], f["type"], "task." + f["name"])
        assert err is None, err


def test_async_clone_success(x):
    src, _, _ = new_vm_with_disk(x, unique("async-src"))
    task = x.Async.VM.clone(src, "async-clone")
    assert isinstance(task, str) and task.startswith("OpaqueRef:")
    assert task in x.task.get_all()
    rec = wait_task(x, task)
    check_task_record(rec)
    assert rec["status"] == "success", rec
    assert rec["progress"] == 1.0
    assert rec["error_info"] == []
    assert DATETIME_RE.match(rec["created"].value) and DATETIME_RE.match(rec["finished"].value)
    assert rec["finished"].value >= rec["created"].value
    assert rec["resident_on"] == the_host(x)
    new = parse_value_fragment(rec["result"])
    assert isinstance(new, str) and new.startswith("OpaqueRef:"), rec["result"]
    assert x.VM.get_name_label(new) == "async-clone"
    assert len(x.VM.get_VBDs(new)) == 1
    # the task stays until destroyed
    x.task.destroy(task)
    assert task not in x.task.get_all()
    with failure("HANDLE_INVALID", "task", task):
        x.task.get_record(task)


def test_async_task_name_and_result_fragment(x):
    vm = new_vm(x, unique("async-start"))
    task = x.Async.VM.start(vm, False, False)
    rec = wait_task(x, task)
    assert rec["status"] == "success", rec
    assert rec["name_label"] == "Async.VM.start"
    # a void result is empty, or an empty value fragment
    assert rec["result"] == "" or parse_value_fragment(rec["result"]) == "", rec["result"]
    assert x.VM.get_power_state(vm) == "Running"
    x.VM.hard_shutdown(vm)
    x.task.destroy(task)


def test_async_result_of_non_ref_type(x):
    vm = new_vm(x, unique("async-devices"))
    task = x.Async.VM.get_allowed_VBD_devices(vm)
    rec = wait_task(x, task)
    assert rec["status"] == "success", rec
    value = parse_value_fragment(rec["result"])
    assert isinstance(value, list) and value == x.VM.get_allowed_VBD_devices(vm), rec["result"]
    x.task.destroy(task)


def test_async_failure_goes_to_error_info(x):
    vm = new_vm(x, unique("async-fail"))
    x.VM.start(vm, False, False)
    task = x.Async.VM.start(vm, False, False)
    rec = wait_task(x, task)
    assert rec["status"] == "failure", rec
    assert rec["error_info"] == ["VM_BAD_POWER_STATE", vm, "halted", "running"]
    assert rec["finished"].value >= rec["created"].value
    x.VM.hard_shutdown(vm)
    x.task.destroy(task)


def test_async_bad_handle_fails_before_or_in_task(x):
    bogus = "OpaqueRef:no-such-vm"
    try:
        task = x.Async.VM.clone(bogus, "x")
    except XenAPI.Failure as e:  # an immediate Failure is fine (the seed allows it)
        assert e.details == ["HANDLE_INVALID", "VM", bogus], e.details
    else:
        rec = wait_task(x, task)
        assert rec["status"] == "failure"
        assert rec["error_info"] == ["HANDLE_INVALID", "VM", bogus]


def test_async_not_for_getters_and_setters(engine, xapi, x):
    vm = new_vm(x, unique("async-getter"))
    with failure("MESSAGE_METHOD_UNKNOWN", "Async.VM.get_name_label"):
        x.Async.VM.get_name_label(vm)
    with failure("MESSAGE_METHOD_UNKNOWN", "Async.VM.set_name_label"):
        x.Async.VM.set_name_label(vm, "n")
    assert x.VM.get_name_label(vm).startswith("async-getter")
    with failure("MESSAGE_METHOD_UNKNOWN", "Async.VM.frobnicate"):
        x.Async.VM.frobnicate(vm)


def test_async_parameter_count_mismatch(x):
    with failure("MESSAGE_PARAMETER_COUNT_MISMATCH", "Async.VM.clone", "3", "2"):
        x.Async.VM.clone(x.VM.get_all()[0])


def test_task_create_cancel_destroy(x):
    t = x.task.create("manual", "made by hand")
    assert x.task.get_status(t) == "pending"
    assert x.task.get_name_label(t) == "manual"
    x.task.destroy(t)
    assert t not in x.task.get_all()


# ------------------------------------------------------------------ with the slowed-down host


def test_task_is_pending_while_operation_runs(slow):
    eng, x = slow
    vm = new_vm(x, unique("slow-start"))
    t0 = time.monotonic()
    task = x.Async.VM.start(vm, False, False)
    rec = x.task.get_record(task)
    assert rec["status"] == "pending", rec
    assert 0.0 <= rec["progress"] < 1.0
    assert "cancel" in rec["allowed_operations"]
    cur = x.VM.get_current_operations(vm)
    assert cur == {task: "start"}, cur
    assert "start" not in x.VM.get_allowed_operations(vm)
    done = wait_task(x, task)
    assert done["status"] == "success"
    assert time.monotonic() - t0 >= DELAY_MS / 1000 * 0.9
    assert x.VM.get_current_operations(vm) == {}
    assert x.VM.get_power_state(vm) == "Running"
    x.VM.hard_shutdown(vm)


def test_progress_is_monotonic(slow):
    eng, x = slow
    src, _, _ = new_vm_with_disk(x, unique("slow-progress"))
    task = x.Async.VM.clone(src, "progress-clone")
    seen = []
    while True:
        rec = x.task.get_record(task)
        seen.append(rec["progress"])
        if rec["status"] != "pending":
            break
        time.sleep(0.05)
    assert rec["status"] == "success", rec
    assert seen == sorted(seen), seen
    assert seen[-1] == 1.0


def test_cancel_clone_leaves_nothing_behind(slow):
    eng, x = slow
    src, _, _ = new_vm_with_disk(x, unique("slow-cancel"))
    vms, vdis, vbds = set(x.VM.get_all()), set(x.VDI.get_all()), set(x.VBD.get_all())
    task = x.Async.VM.clone(src, "cancelled-clone")
    time.sleep(DELAY_MS / 1000 / 4)
    assert x.task.get_status(task) == "pending"
    x.task.cancel(task)
    rec = wait_task(x, task, timeout=DELAY_MS / 1000 * 5)
    assert rec["status"] == "cancelled", rec
    assert rec["error_info"] == ["TASK_CANCELLED", task], rec["error_info"]
    assert set(x.VM.get_all()) == vms
    assert set(x.VDI.get_all()) == vdis
    assert set(x.VBD.get_all()) == vbds
    assert x.VM.get_by_name_label("cancelled-clone") == []
    assert x.VM.get_current_operations(src) == {}
    assert "clone" in x.VM.get_allowed_operations(src)
    assert_integrity(x)
    # the source VM still works
    x.VM.start(src, False, False)
    x.VM.hard_shutdown(src)


def test_cancel_start_ends_consistent(slow):
    """A task may not honour cancel (the seed: "a task may fail to be cancelled and may complete or
    fail normally"); either way the VM ends in the state the task's outcome says."""
    eng, x = slow
    vm = new_vm(x, unique("slow-cancel-start"))
    task = x.Async.VM.start(vm, False, False)
    time.sleep(DELAY_MS / 1000 / 4)
    try:
        x.task.cancel(task)
    except XenAPI.Failure as e:
        assert e.details[0] == "OPERATION_NOT_ALLOWED", e.details
    rec = wait_task(x, task, timeout=DELAY_MS / 1000 * 5)
    assert rec["status"] in ("cancelled", "success"), rec
    assert x.VM.get_current_operations(vm) == {}
    if rec["status"] == "cancelled":
        assert rec["error_info"] == ["TASK_CANCELLED", task]
        assert x.VM.get_power_state(vm) == "Halted"
        assert x.VM.get_resident_on(vm) == "OpaqueRef:NULL"
    else:
        assert x.VM.get_power_state(vm) == "Running"
        x.VM.hard_shutdown(vm)


def test_other_operation_in_progress(slow):
    eng, x = slow
    src, _, _ = new_vm_with_disk(x, unique("slow-busy"))
    task = x.Async.VM.clone(src, "busy-clone")
    wait_until(lambda: x.VM.get_current_operations(src), timeout=5, what="clone to show in current_operations")
    with failure("OTHER_OPERATION_IN_PROGRESS", "VM", src, "clone", task):
        x.VM.start(src, False, False)
    with failure("OTHER_OPERATION_IN_PROGRESS", "VM", src, "clone", task):
        x.VM.destroy(src)
    assert wait_task(x, task)["status"] == "success"
    # and once it is over the VM takes operations again
    x.VM.start(src, False, False)
    x.VM.hard_shutdown(src)


def test_other_operation_in_progress_same_op(slow):
    eng, x = slow
    vm = new_vm(x, unique("slow-double"))
    task = x.Async.VM.start(vm, False, False)
    wait_until(lambda: x.VM.get_current_operations(vm), timeout=5, what="start in current_operations")
    with failure_code("OTHER_OPERATION_IN_PROGRESS") as ei:
        x.VM.start(vm, False, False)
    assert ei.value.details == ["OTHER_OPERATION_IN_PROGRESS", "VM", vm, "start", task]
    assert wait_task(x, task)["status"] == "success"
    x.VM.hard_shutdown(vm)


def test_sync_call_waits_for_the_operation(slow):
    eng, x = slow
    vm = new_vm(x, unique("slow-sync"))
    t0 = time.monotonic()
    x.VM.start(vm, False, False)
    assert time.monotonic() - t0 >= DELAY_MS / 1000 * 0.9
    assert x.VM.get_power_state(vm) == "Running"
    x.VM.hard_shutdown(vm)


def test_other_vms_not_blocked(slow):
    """An operation on one VM does not make another VM's calls wait for it."""
    eng, x = slow
    a = new_vm(x, unique("slow-a"))
    b = new_vm(x, unique("slow-b"))
    task = x.Async.VM.start(a, False, False)
    t0 = time.monotonic()
    x.VM.set_name_label(b, "renamed while a starts")
    assert x.VM.get_name_label(b) == "renamed while a starts"
    assert time.monotonic() - t0 < DELAY_MS / 1000 / 2
    wait_task(x, task)
    x.VM.hard_shutdown(a)


def test_template_clone_async(x):
    t = template(x)
    task = x.Async.VM.clone(t, "async-from-template")
    rec = wait_task(x, task)
    assert rec["status"] == "success", rec
    new = parse_value_fragment(rec["result"])
    assert x.VM.get_is_a_template(new) is True
