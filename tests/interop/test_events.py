"""event.from (tokens, add/mod/del, coalescing, blocking and wake-up) and the older
event.register / event.next / event.unregister."""

import threading
import time

import pytest
import XenAPI

from xapitest import failure, fields, in_thread, new_vm, raw_proxy, unique

EVENT_KEYS = {"id", "timestamp", "class", "operation", "ref"}


def ev_from(x, classes, token, timeout):
    return getattr(x.event, "from")(classes, token, float(timeout))


def current_token(x, classes=("VM",)):
    return ev_from(x, list(classes), "", 0.0)["token"]


def for_ref(result, ref):
    return [e for e in result["events"] if e["ref"] == ref]


def check_event_shape(e):
    assert EVENT_KEYS <= set(e), e.keys()
    assert e["operation"] in ("add", "mod", "del"), e
    # xapi reports classes in lower case ("vm"), whatever case the subscription used
    assert e["class"] == e["class"].lower(), e["class"]
    if e["operation"] in ("add", "mod"):
        assert isinstance(e["snapshot"], dict), e


@pytest.fixture(scope="module")
def other(engine):
    """A second session, for writes made while the main one waits in event.from."""
    s = engine.session()
    yield s.xenapi
    s.xenapi.session.logout()


def test_empty_token_returns_everything_as_add(x):
    t0 = time.monotonic()
    res = ev_from(x, ["VM"], "", 5.0)
    assert time.monotonic() - t0 < 3, "an empty token must not wait: there is everything to report"
    assert set(res) >= {"events", "valid_ref_counts", "token"}
    assert isinstance(res["token"], str) and res["token"]
    assert isinstance(res["valid_ref_counts"], dict)
    vms = x.VM.get_all_records()
    assert {e["ref"] for e in res["events"]} == set(vms)
    assert len(res["events"]) == len(vms)
    for e in res["events"]:
        check_event_shape(e)
        assert e["operation"] == "add"
        assert e["class"] == "vm"
        assert e["snapshot"]["uuid"] == vms[e["ref"]]["uuid"]
        assert set(e["snapshot"]) == set(vms[e["ref"]])


def test_several_classes_and_star(x):
    res = ev_from(x, ["VM", "host", "SR"], "", 1.0)
    classes = {e["class"] for e in res["events"]}
    assert classes == {"vm", "host", "sr"}, classes
    host = x.host.get_all()[0]
    assert any(e["ref"] == host and e["class"] == "host" for e in res["events"])
    star = ev_from(x, ["*"], "", 1.0)
    star_classes = {e["class"] for e in star["events"]}
    assert {"vm", "host", "sr", "pool", "network", "pif", "pbd"} <= star_classes, star_classes


def test_lower_case_subscription(x):
    upper = {e["ref"] for e in ev_from(x, ["VM"], "", 1.0)["events"]}
    lower = {e["ref"] for e in ev_from(x, ["vm"], "", 1.0)["events"]}
    assert upper == lower


def test_add_mod_del(x):
    token = current_token(x)
    vm = new_vm(x, unique("ev-amd"))
    res = ev_from(x, ["VM"], token, 5.0)
    evs = for_ref(res, vm)
    assert [e["operation"] for e in evs] == ["add"], evs
    check_event_shape(evs[0])
    assert evs[0]["snapshot"]["name_label"] == x.VM.get_name_label(vm)
    token = res["token"]

    x.VM.set_name_label(vm, "renamed-for-events")
    res = ev_from(x, ["VM"], token, 5.0)
    evs = for_ref(res, vm)
    assert [e["operation"] for e in evs] == ["mod"], evs
    assert evs[0]["snapshot"]["name_label"] == "renamed-for-events"
    token = res["token"]

    x.VM.destroy(vm)
    res = ev_from(x, ["VM"], token, 5.0)
    evs = for_ref(res, vm)
    assert [e["operation"] for e in evs] == ["del"], evs
    check_event_shape(evs[0])


def test_token_moves_forward(x):
    token = current_token(x)
    vm = new_vm(x, unique("ev-forward"))
    res = ev_from(x, ["VM"], token, 5.0)
    assert for_ref(res, vm)
    # asking again from the new token does not repeat the event
    again = ev_from(x, ["VM"], res["token"], 0.5)
    assert for_ref(again, vm) == []


def test_two_mods_coalesce(x):
    vm = new_vm(x, unique("ev-coalesce"))
    token = current_token(x)
    x.VM.set_name_label(vm, "first")
    x.VM.set_name_label(vm, "second")
    x.VM.set_name_description(vm, "third change")
    res = ev_from(x, ["VM"], token, 5.0)
    evs = for_ref(res, vm)
    assert len(evs) == 1, evs
    assert evs[0]["operation"] == "mod"
    assert evs[0]["snapshot"]["name_label"] == "second"
    assert evs[0]["snapshot"]["name_description"] == "third change"


def test_add_then_mod_is_one_add(x):
    token = current_token(x)
    vm = new_vm(x, unique("ev-addmod"))
    x.VM.set_name_label(vm, "added-then-renamed")
    evs = for_ref(ev_from(x, ["VM"], token, 5.0), vm)
    assert len(evs) == 1, evs
    assert evs[0]["operation"] == "add"
    assert evs[0]["snapshot"]["name_label"] == "added-then-renamed"


def test_blocks_for_timeout_without_change(x):
    token = current_token(x)
    timeout = 3.0
    t0 = time.monotonic()
    res = ev_from(x, ["VM"], token, timeout)
    elapsed = time.monotonic() - t0
    assert res["events"] == []
    assert elapsed >= 0.9 * timeout, f"returned after {elapsed:.2f}s with nothing to report"
    assert elapsed < timeout + 5
    assert isinstance(res["token"], str) and res["token"]


def test_returns_promptly_on_change(x, other):
    vm = new_vm(x, unique("ev-wake"))
    token = current_token(x)
    t0 = time.monotonic()
    h = in_thread(ev_from, x, ["VM"], token, 30.0)
    time.sleep(0.5)
    other.VM.set_name_label(vm, "wake up")
    t_ack = time.monotonic()
    res, exc, t_end = h.result(15)
    assert exc is None, exc
    assert t_end - t_ack < 1.0, f"event.from returned {t_end - t_ack:.3f}s after the write was acknowledged"
    assert t_end - t0 >= 0.4, "event.from returned before the change was made"
    evs = for_ref(res, vm)
    assert [e["operation"] for e in evs] == ["mod"]
    assert evs[0]["snapshot"]["name_label"] == "wake up"


def test_unrelated_class_does_not_wake(x, other):
    token = current_token(x)
    net = other.network.get_all()[0]
    old = other.network.get_name_label(net)
    t0 = time.monotonic()
    h = in_thread(ev_from, x, ["VM"], token, 2.5)
    time.sleep(0.3)
    other.network.set_name_label(net, old + " (changed)")
    res, exc, t_end = h.result(15)
    other.network.set_name_label(net, old)
    assert exc is None, exc
    assert res["events"] == []
    assert t_end - t0 >= 0.9 * 2.5


def test_many_waiters_all_wake(engine, other):
    vm = new_vm(other, unique("ev-many"))
    sessions = [engine.session() for _ in range(8)]
    token = current_token(sessions[0].xenapi)
    handles = [in_thread(ev_from, s.xenapi, ["VM"], token, 30.0) for s in sessions]
    time.sleep(0.5)
    other.VM.set_name_label(vm, "everyone wakes")
    t_ack = time.monotonic()
    for h in handles:
        res, exc, t_end = h.result(20)
        assert exc is None, exc
        assert for_ref(res, vm), res["events"]
        assert t_end - t_ack < 2.0
    for s in sessions:
        s.xenapi.session.logout()


def test_snapshot_is_a_full_record(x):
    vm = new_vm(x, unique("ev-snapshot"))
    token = current_token(x)
    x.VM.add_tags(vm, "event-tag")
    evs = for_ref(ev_from(x, ["VM"], token, 5.0), vm)
    assert len(evs) == 1
    snap = evs[0]["snapshot"]
    assert {f["name"] for f in fields("VM")} <= set(snap)
    assert snap["tags"] == ["event-tag"]
    assert snap == x.VM.get_record(vm)


def test_related_objects_report_their_own_events(x):
    """Creating a VBD changes the VM's VBDs field: both the VBD (add) and the VM (mod) are reported."""
    from xapitest import local_sr, vbd_record, vdi_record

    vm = new_vm(x, unique("ev-related"))
    vdi = x.VDI.create(vdi_record(local_sr(x), unique("ev-related-disk")))
    token = current_token(x, ["VM", "VBD", "VDI"])
    vbd = x.VBD.create(vbd_record(vm, vdi, "0"))
    res = ev_from(x, ["VM", "VBD", "VDI"], token, 5.0)
    ops = {(e["class"], e["ref"]): e["operation"] for e in res["events"]}
    assert ops.get(("vbd", vbd)) == "add", ops
    assert ops.get(("vm", vm)) == "mod", ops
    assert ops.get(("vdi", vdi)) == "mod", ops


# ------------------------------------------------------------------ register / next / unregister


def test_next_without_register_fails(engine):
    s = engine.session()
    try:
        with failure("SESSION_NOT_REGISTERED", s._session):
            s.xenapi.event.next()
    finally:
        s.xenapi.session.logout()


def test_register_next_unregister(engine, other):
    s = engine.session(timeout=120)
    x = s.xenapi
    vm = new_vm(other, unique("ev-next"))
    x.event.register(["VM"])
    other.VM.set_name_label(vm, "seen by next")
    h = in_thread(x.event.next)
    evs, exc, _ = h.result(15)
    assert exc is None, exc
    mine = [e for e in evs if e["ref"] == vm]
    assert mine, evs
    check_event_shape(mine[-1])
    assert mine[-1]["class"] == "vm"
    assert mine[-1]["operation"] == "mod"
    assert mine[-1]["snapshot"]["name_label"] == "seen by next"
    # events are delivered once
    other.VM.set_name_label(vm, "second round")
    evs2, exc, _ = in_thread(x.event.next).result(15)
    assert exc is None, exc
    assert [e["snapshot"]["name_label"] for e in evs2 if e["ref"] == vm] == ["second round"]
    # after unregister, changes to VMs are no longer delivered
    x.event.unregister(["VM"])
    done = threading.Event()
    result = {}

    def wait_next():
        try:
            result["events"] = x.event.next()
        except XenAPI.Failure as e:
            result["failure"] = e.details
        except Exception as e:  # noqa: BLE001 - the session is logged out below to end the wait
            result["error"] = e
        done.set()

    threading.Thread(target=wait_next, daemon=True).start()
    time.sleep(0.3)
    other.VM.set_name_label(vm, "not delivered")
    done.wait(2.0)
    if "events" in result:
        assert not [e for e in result["events"] if e["ref"] == vm], result["events"]
    if "failure" in result:
        assert result["failure"][0] == "SESSION_NOT_REGISTERED", result["failure"]
    # end the session through another connection (the waiting thread owns this one)
    raw_proxy(engine.url).session.logout(s._session)


def test_register_only_reports_subscribed_classes(engine, other):
    s = engine.session(timeout=120)
    x = s.xenapi
    x.event.register(["network"])
    vm = new_vm(other, unique("ev-filter"))
    net = other.network.get_all()[0]
    old = other.network.get_name_label(net)
    other.network.set_name_label(net, old + "!")
    evs, exc, _ = in_thread(x.event.next).result(15)
    other.network.set_name_label(net, old)
    assert exc is None, exc
    assert {e["class"] for e in evs} == {"network"}, evs
    assert vm not in {e["ref"] for e in evs}
    x.event.unregister(["network"])
    s.xenapi.session.logout()
