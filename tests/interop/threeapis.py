"""Fixtures of the suites that drive one engine through all three APIs (`ovirt_zvm_engine`):
`x` (the real `XenAPI` client), `system` (the real `ovirtsdk4` system service) and `zvm` (the
real `zvmconnector`, calls that must succeed; `zvm.raw` sends any request). Import them into a
test module to use them."""

from __future__ import annotations

import pytest
from zvmconnector import connector

from ovirttest import connect


@pytest.fixture(scope="module")
def system(ovirt_zvm_engine):
    c = connect(ovirt_zvm_engine)
    yield c.system_service()
    if ovirt_zvm_engine.alive:
        c.close()


@pytest.fixture(scope="module")
def x(ovirt_zvm_engine):
    s = ovirt_zvm_engine.session()
    yield s.xenapi
    if ovirt_zvm_engine.alive:
        s.xenapi.session.logout()


@pytest.fixture(scope="module")
def zvm(ovirt_zvm_engine):
    c = connector.ZVMConnector("127.0.0.1", ovirt_zvm_engine.zvm_port)

    def call(api, *args, **kwargs):
        r = c.send_request(api, *args, **kwargs)
        assert r["overallRC"] == 0, (api, r)
        return r["output"]

    call.raw = c.send_request
    return call
