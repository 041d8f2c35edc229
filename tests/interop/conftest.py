"""Fixtures for the XenAPI interop suite: build/find the engine, run `drover serve` on loopback with
a fresh data dir, and log in with the real XenAPI Python client.

Environment:
  DROVER_BIN            use this binary instead of <target>/release/drover
  CARGO_TARGET_DIR      honoured when looking for the release binary
  DROVER_TEST_KEEP_LOGS keep data dirs and logs of passing tests (under the pytest tmp dir)
"""

from __future__ import annotations

import os
import pathlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import xapitest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[2]
_build_lock = threading.Lock()
_active_engines: list["Engine"] = []


def _target_dir() -> pathlib.Path:
    t = os.environ.get("CARGO_TARGET_DIR")
    return pathlib.Path(t) if t else REPO / "target"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EngineStartError(RuntimeError):
    pass


class Engine:
    """One `drover serve` process with its own data dir on a loopback port."""

    def __init__(self, binary: pathlib.Path, data_dir: pathlib.Path, extra_args=(), password=None,
                 driver="sim"):
        self.binary = pathlib.Path(binary)
        self.driver = driver
        self.data_dir = pathlib.Path(data_dir)
        self.extra_args = list(extra_args)
        self.password = password or ("pw-" + secrets.token_hex(8))
        self.port = None
        self.proc: subprocess.Popen | None = None
        self.log_path = self.data_dir.parent / (self.data_dir.name + ".log")
        self._expected_exit = False
        self.starts = 0

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=60.0):
        assert not self.alive, "engine already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        last = None
        for attempt in range(5):
            if self.port is None or attempt > 0 and self.starts == 0:
                self.port = _free_port()
            try:
                self._spawn_and_wait(timeout)
                self.starts += 1
                return self
            except EngineStartError as e:
                last = e
                # the port may have been taken between choosing and binding it; try another
                # (only before the first successful start: restarts keep the URL stable)
                if self.starts > 0 and attempt >= 2:
                    break
                time.sleep(0.2)
        raise last

    def _spawn_and_wait(self, timeout):
        env = dict(os.environ)
        env["DROVER_ADMIN_PASSWORD"] = self.password
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("NO_COLOR", "1")
        cmd = [
            str(self.binary), "serve",
            "--data-dir", str(self.data_dir),
            "--listen", f"127.0.0.1:{self.port}",
            "--host-driver", self.driver,
            *self.extra_args,
        ]
        log = open(self.log_path, "ab")
        log.write(f"\n===== start {time.strftime('%H:%M:%S')}: {' '.join(cmd)}\n".encode())
        log.flush()
        self._expected_exit = False
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise EngineStartError(f"drover exited with {self.proc.returncode} during start-up:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        self._kill(signal.SIGKILL)
        raise EngineStartError(f"/health did not answer 200 within {timeout}s:\n{self.log_tail()}")

    def _kill(self, sig):
        if self.proc is None:
            return
        self._expected_exit = True
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=15)

    def stop(self):
        """Graceful stop (SIGTERM; SIGKILL after 15 s)."""
        self._kill(signal.SIGTERM)

    def kill9(self):
        """Crash the engine: SIGKILL, no chance to flush anything."""
        self._kill(signal.SIGKILL)

    def restart(self, graceful=True):
        if self.alive:
            self.stop() if graceful else self.kill9()
        return self.start()

    def died_unexpectedly(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None and not self._expected_exit

    def log_tail(self, lines=80) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def session(self, user="admin", password=None, **kw):
        return xapitest.session(self.url, user, password or self.password, **kw)

    def __repr__(self):
        return f"<Engine {self.url} data={self.data_dir} pid={self.proc.pid if self.proc else None}>"


# ---------------------------------------------------------------------------------------------
# reporting: attach the engine log to failing tests


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for eng in list(_active_engines):
            state = "running" if eng.alive else f"exited rc={eng.proc.returncode if eng.proc else None}"
            rep.sections.append((f"drover log {eng.url} ({state}) {eng.log_path}", eng.log_tail(60)))


# ---------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="session")
def drover_bin() -> pathlib.Path:
    """Path of the release binary; built with `cargo build --release` once if missing."""
    env_bin = os.environ.get("DROVER_BIN")
    if env_bin:
        p = pathlib.Path(env_bin)
        assert p.is_file(), f"DROVER_BIN={env_bin} does not exist"
        return p
    p = _target_dir() / "release" / "drover"
    with _build_lock:
        if not p.is_file():
            subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True)
    assert p.is_file(), f"{p} missing after cargo build --release"
    return p


@pytest.fixture(scope="session")
def _engines_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("engines")
    yield root
    if not os.environ.get("DROVER_TEST_KEEP_LOGS"):
        shutil.rmtree(root, ignore_errors=True)


def _make_engine(drover_bin, root, extra_args, driver="sim"):
    data = pathlib.Path(tempfile.mkdtemp(prefix="drover-", dir=root)) / "data"
    eng = Engine(drover_bin, data, extra_args, driver=driver)
    _active_engines.append(eng)
    try:
        eng.start()
    except Exception:
        _active_engines.remove(eng)
        raise
    return eng


def _finish_engine(eng, failed: bool):
    if eng in _active_engines:
        _active_engines.remove(eng)
    died = eng.died_unexpectedly()
    rc = eng.proc.returncode if eng.proc else None
    eng.stop()
    if failed or died:
        sys.stderr.write(f"\n----- drover log {eng.log_path} -----\n{eng.log_tail(200)}\n")
    if died:
        pytest.fail(f"drover died unexpectedly (exit status {rc}); see the log above", pytrace=False)


@pytest.fixture(scope="module")
def engine(request, drover_bin, _engines_root):
    """A `drover serve --host-driver sim` on a free loopback port with a fresh data dir, shared by
    the tests of one module. Has url, data_dir, password, restart(), kill9(), stop()."""
    failed_before = request.session.testsfailed
    eng = _make_engine(drover_bin, _engines_root, [])
    yield eng
    _finish_engine(eng, request.session.testsfailed > failed_before)


@pytest.fixture
def engine_factory(request, drover_bin, _engines_root):
    """engine_factory(*extra_args) -> a new Engine (e.g. engine_factory("--sim-op-delay-ms", "1500")),
    stopped at the end of the test."""
    made = []
    failed_before = request.session.testsfailed

    def make(*extra_args):
        eng = _make_engine(drover_bin, _engines_root, extra_args)
        made.append(eng)
        return eng

    yield make
    for eng in made:
        _finish_engine(eng, request.session.testsfailed > failed_before)


def _listening_engine(request, drover_bin, root, **listeners):
    """A sim engine with further API listeners on free loopback ports: each keyword names the
    engine attribute that gets the port and the `drover serve` flag that opens it."""
    failed_before = request.session.testsfailed
    ports = {attr: _free_port() for attr in listeners}
    flags = [a for attr, flag in listeners.items() for a in (flag, f"127.0.0.1:{ports[attr]}")]
    eng = _make_engine(drover_bin, root, flags)
    for attr, port in ports.items():
        setattr(eng, attr, port)
    yield eng
    _finish_engine(eng, request.session.testsfailed > failed_before)


@pytest.fixture(scope="module")
def zvm_engine(request, drover_bin, _engines_root):
    """Like `engine`, with the z/VM Cloud Connector REST API (`zvm_port`) and socket protocol
    (`zvm_socket_port`) on free loopback ports."""
    yield from _listening_engine(request, drover_bin, _engines_root,
                                 zvm_port="--zvm-listen", zvm_socket_port="--zvm-socket-listen")


@pytest.fixture
def zvm_token_engine(engine_factory, tmp_path):
    """A z/VM engine in token mode; its admin token file (`token_file`) holds `my-admin-token`."""
    tokfile = tmp_path / "admin-token"
    tokfile.write_text("my-admin-token\n")
    rest, sock = _free_port(), _free_port()
    eng = engine_factory("--zvm-listen", f"127.0.0.1:{rest}", "--zvm-socket-listen", f"127.0.0.1:{sock}",
                         "--zvm-auth", "token", "--zvm-token-file", str(tokfile))
    eng.zvm_port, eng.zvm_socket_port, eng.token_file = rest, sock, tokfile
    return eng


@pytest.fixture(scope="module")
def ovirt_engine(request, drover_bin, _engines_root):
    """Like `engine`, with the oVirt REST API v4 (`--ovirt-listen`) on a free loopback port
    (`ovirt_port`): `http://127.0.0.1:<ovirt_port>/ovirt-engine/api`."""
    yield from _listening_engine(request, drover_bin, _engines_root, ovirt_port="--ovirt-listen")


@pytest.fixture(scope="module")
def ovirt_zvm_engine(request, drover_bin, _engines_root):
    """A sim engine with three facades over one inventory: XenAPI, the z/VM Cloud Connector
    REST API (`zvm_port`) and the oVirt REST API (`ovirt_port`)."""
    yield from _listening_engine(request, drover_bin, _engines_root,
                                 ovirt_port="--ovirt-listen", zvm_port="--zvm-listen")


TINY_GUEST = pathlib.Path(os.environ.get("DROVER_TINY_GUEST", REPO / "guest" / "out"))


@pytest.fixture(scope="module")
def ovirt_qemu_engine(request, drover_bin, _engines_root):
    """The oVirt REST API over real guests: `--host-driver qemu` with the tiny guest (`Tiny
    Linux`, from guest/out), its networks in a namespace of its own (networld.NetWorld), the
    oVirt listener on `ovirt_port`. Running guests are stopped at the end."""
    from networld import NetWorld

    assert (TINY_GUEST / "vmlinuz").is_file() and (TINY_GUEST / "initrd.img").is_file(), (
        f"the tiny guest is not built in {TINY_GUEST}: run guest/build-tiny-guest.sh {TINY_GUEST}")
    failed_before = request.session.testsfailed
    world = NetWorld(prefix="dro").create()
    port = _free_port()
    try:
        eng = _make_engine(drover_bin, _engines_root,
                           ["--tiny-guest", str(TINY_GUEST), "--shutdown-timeout-secs", "20",
                            "--netns", world.ns, "--ovirt-listen", f"127.0.0.1:{port}"],
                           driver="qemu")
    except Exception:
        world.destroy()
        raise
    eng.ovirt_port = port
    yield eng
    if eng.alive:
        x = eng.session().xenapi
        for ref, r in x.VM.get_all_records().items():
            if r["power_state"] in ("Running", "Paused"):
                try:
                    x.VM.hard_shutdown(ref)
                except Exception:  # noqa: BLE001 - best-effort clean-up
                    pass
    try:
        _finish_engine(eng, request.session.testsfailed > failed_before)
    finally:
        world.destroy()


SIM_OP_DELAY_MS = 2000


@pytest.fixture(scope="module")
def delayed_engine(request, drover_bin, _engines_root):
    """Like `engine`, but started with `--sim-op-delay-ms SIM_OP_DELAY_MS`: every simulated host
    operation (guest start/stop, disk create/clone/copy) takes that long, so tasks can be watched
    and cancelled."""
    failed_before = request.session.testsfailed
    eng = _make_engine(drover_bin, _engines_root, ["--sim-op-delay-ms", str(SIM_OP_DELAY_MS)])
    eng.delay_ms = SIM_OP_DELAY_MS
    yield eng
    _finish_engine(eng, request.session.testsfailed > failed_before)


@pytest.fixture(scope="module")
def xapi(engine):
    """A XenAPI.Session logged in as admin on the module's engine; logged out at the end."""
    s = engine.session()
    yield s
    if engine.alive:
        s.xenapi.session.logout()


@pytest.fixture(scope="module")
def x(xapi):
    """Shorthand: the `xenapi` dispatcher of the module's session (x.VM.get_all() ...)."""
    return xapi.xenapi
