"""session class: login variants, failures, logout, change_password, this_host / this_user."""

import XenAPI

from xapitest import (
    expect_failure_struct,
    expect_success,
    failure,
    failure_code,
    raw_login,
    raw_proxy,
    session,
    the_host,
)


def test_login_two_args_raw(engine):
    r = raw_proxy(engine.url).session.login_with_password("admin", engine.password)
    ref = expect_success(r)
    assert isinstance(ref, str) and ref.startswith("OpaqueRef:"), ref


def test_login_three_args_raw(engine):
    r = raw_proxy(engine.url).session.login_with_password("admin", engine.password, "1.0")
    ref = expect_success(r)
    assert ref.startswith("OpaqueRef:")


def test_login_four_args_keeps_originator(engine):
    s = XenAPI.Session(engine.url)
    s.xenapi.login_with_password("admin", engine.password, "2.0", "interop-originator-42")
    try:
        me = s._session
        assert me.startswith("OpaqueRef:")
        assert s.xenapi.session.get_originator(me) == "interop-originator-42"
        rec = s.xenapi.session.get_record(me)
        assert rec["originator"] == "interop-originator-42"
    finally:
        s.xenapi.session.logout()


def test_login_via_root_path_and_rpc2(engine):
    for path in ("/", "/RPC2"):
        ref = raw_login(engine.url, engine.password, path=path)
        vms = expect_success(raw_proxy(engine.url, path).VM.get_all(ref))
        assert isinstance(vms, list) and vms


def test_each_login_is_a_new_session(engine):
    a = raw_login(engine.url, engine.password)
    b = raw_login(engine.url, engine.password)
    assert a != b
    p = raw_proxy(engine.url)
    expect_success(p.session.logout(a))
    # logging out one session leaves the other valid
    expect_success(p.VM.get_all(b))
    expect_failure_struct(p.VM.get_all(a), "SESSION_INVALID", a)


def test_root_is_an_alias_of_admin(engine):
    admin = session(engine.url, "admin", engine.password)
    root = session(engine.url, "root", engine.password)
    try:
        ua = admin.xenapi.session.get_this_user(admin._session)
        ur = root.xenapi.session.get_this_user(root._session)
        assert ua == ur
        assert ua.startswith("OpaqueRef:") and ua != "OpaqueRef:NULL"
        assert root.xenapi.user.get_short_name(ur) == "admin"
        assert root.xenapi.session.get_is_local_superuser(root._session) is True
        assert root.xenapi.VM.get_all() == admin.xenapi.VM.get_all()
    finally:
        admin.xenapi.session.logout()
        root.xenapi.session.logout()


def test_bad_password_fails_authentication(engine):
    s = XenAPI.Session(engine.url)
    with failure_code("SESSION_AUTHENTICATION_FAILED") as ei:
        s.xenapi.login_with_password("admin", engine.password + "-wrong", "2.0", "t")
    # whatever the parameters are, they never echo the password
    assert all(engine.password not in str(p) for p in ei.value.details[1:]), ei.value.details
    assert s._session is None


def test_unknown_user_fails_authentication(engine):
    s = XenAPI.Session(engine.url)
    with failure_code("SESSION_AUTHENTICATION_FAILED"):
        s.xenapi.login_with_password("nosuchuser", engine.password, "2.0", "t")


def test_bad_password_raw_struct(engine):
    r = raw_proxy(engine.url).session.login_with_password("admin", "", "2.0", "t")
    assert r["Status"] == "Failure", r
    assert r["ErrorDescription"][0] == "SESSION_AUTHENTICATION_FAILED", r


def test_logout_then_use_is_session_invalid(engine):
    p = raw_proxy(engine.url)
    ref = raw_login(engine.url, engine.password)
    expect_success(p.VM.get_all(ref))
    expect_success(p.session.logout(ref))
    expect_failure_struct(p.VM.get_all(ref), "SESSION_INVALID", ref)
    expect_failure_struct(p.session.get_this_host(ref, ref), "SESSION_INVALID", ref)


def test_garbage_session_is_session_invalid(engine):
    p = raw_proxy(engine.url)
    expect_failure_struct(p.VM.get_all("OpaqueRef:not-a-session"), "SESSION_INVALID", "OpaqueRef:not-a-session")
    expect_failure_struct(p.host.get_all("garbage"), "SESSION_INVALID", "garbage")


def test_get_this_host(xapi, x):
    assert x.session.get_this_host(xapi._session) == the_host(x)


def test_get_this_user(xapi, x):
    user = x.session.get_this_user(xapi._session)
    rec = x.user.get_record(user)
    assert rec["short_name"] == "admin"
    assert x.user.get_by_uuid(rec["uuid"]) == user


def test_session_record(xapi, x):
    me = xapi._session
    rec = x.session.get_record(me)
    assert rec["this_host"] == the_host(x)
    assert rec["is_local_superuser"] is True
    assert rec["originator"] == "drover-interop-tests"
    assert rec["pool"] is False
    assert x.session.get_by_uuid(rec["uuid"]) == me
    assert x.session.get_uuid(me) == rec["uuid"]


def test_session_other_config_round_trip(xapi, x):
    me = xapi._session
    x.session.add_to_other_config(me, "interop", "yes")
    assert x.session.get_other_config(me)["interop"] == "yes"
    x.session.remove_from_other_config(me, "interop")
    assert "interop" not in x.session.get_other_config(me)


def test_change_password(engine_factory):
    eng = engine_factory()
    s = eng.session()
    new_pw = "new-" + eng.password[::-1]
    s.xenapi.session.change_password(eng.password, new_pw)
    # the new password works, the old one does not
    s2 = session(eng.url, "admin", new_pw)
    assert s2.xenapi.VM.get_all()
    s2.xenapi.session.logout()
    with failure_code("SESSION_AUTHENTICATION_FAILED"):
        session(eng.url, "admin", eng.password)
    # and so does root, the alias
    s3 = session(eng.url, "root", new_pw)
    s3.xenapi.session.logout()
    # the change survives a restart
    eng.restart()
    s4 = session(eng.url, "admin", new_pw)
    s4.xenapi.session.logout()


def test_login_wrong_type_is_field_type_error(engine):
    """A non-string password is a type error (FIELD_TYPE_ERROR naming the parameter), not a login."""
    r = raw_proxy(engine.url).session.login_with_password("admin", 12345, "2.0", "t")
    expect_failure_struct(r, "FIELD_TYPE_ERROR", "pwd")


def test_logout_via_client_invalidates(engine):
    s = session(engine.url, "admin", engine.password)
    ref = s._session
    s.xenapi.session.logout()
    expect_failure_struct(raw_proxy(engine.url).VM.get_all(ref), "SESSION_INVALID", ref)


def test_failure_is_client_exception(engine, x):
    """The client raises XenAPI.Failure with the ErrorDescription list for errors."""
    with failure("HANDLE_INVALID", "VM", "OpaqueRef:nope"):
        x.VM.get_record("OpaqueRef:nope")
