#!/usr/bin/env python3
"""Guest start latency, memory overhead and density of Drover's QEMU host driver
(`bench/vmstart.sh` is the entry point; it needs the XenAPI module of /work/main/.venv).

Measures, in one run, with its own `drover serve --host-driver qemu --accel tcg` on 127.0.0.1:
  1. Drover: VM.start of a fresh clone of `Tiny Linux` -> time to the QEMU process running
     (DIR/guests/<uuid>/qemu.pid present and /proc/<pid> existing, 1 ms polling), to the guest's
     init running (`DROVER-GUEST cmdline=` in console.log) and to VM.start returning.
  2. Hand-run QEMU: the exact command line of a Drover-started guest (/proc/<pid>/cmdline), with
     its socket/pidfile/log paths moved into a temp dir, started with subprocess; same two times.
     Runs of 1 and 2 alternate (D, H, D, H, ...) so that background load hits both alike.
  3. libvirt (virsh create of a transient domain with the same kernel, initrd, cmdline, memory,
     vcpus under TCG, serial console to a file); skipped with the reason if libvirt cannot run.
  4. RSS of the drover process with 0 and with K running guests, and each QEMU's RSS.
  5. Density: guests started in batches (each batch waited for until booted) up to DENSITY_MAX or
     until MemAvailable < 1 GiB; MemAvailable drop per guest, host CPU idle, extrapolation.
Every section starts with one untimed warm-up start. Prints figures only: nothing is asserted.
Everything it starts (drover, QEMU, libvirt domains and daemons, temp dirs) is stopped/removed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid as uuidlib

import XenAPI

GiB = 1 << 30
MiB = 1 << 20
INIT_MARK = b"DROVER-GUEST cmdline="
POLL = 0.001
BOOT_TIMEOUT = float(os.environ.get("BOOT_TIMEOUT", 300))  # per guest, seconds
T_START = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T_START:7.1f}s] {msg}", file=sys.stderr, flush=True)


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


def meminfo():
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            out[k] = int(v.split()[0]) * 1024
    return out


def cpu_times():
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait
    return idle, sum(vals[:8])  # guest time is already counted in user


def cpu_idle_pct(seconds=5.0):
    i0, t0 = cpu_times()
    time.sleep(seconds)
    i1, t1 = cpu_times()
    return 100.0 * (i1 - i0) / max(1, t1 - t0)


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks (None if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            st = f.read().rsplit(")", 1)[1].split()
        return int(st[11]) + int(st[12])
    except (OSError, IndexError, ValueError):
        return None


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def proc_cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


def proc_alive(pid):
    """Exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[:1]
    return bool(state) and state[0] not in ("Z", "X")


def pids_with_cmdline(needle: bytes):
    out = []
    for e in os.scandir("/proc"):
        if e.name.isdigit() and needle in proc_cmdline(e.name):
            out.append(int(e.name))
    return out


def kill_pid(pid, grace=5.0):
    """SIGTERM, then SIGKILL, one process by id."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.monotonic() + grace
    while time.monotonic() < end:
        if not proc_alive(pid):
            return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_ms(x):
    return "-" if x is None else f"{x * 1000:.1f} ms"


def fmt_s(x):
    return "-" if x is None else f"{x:.3f} s"


def fmt_mib(x):
    return "-" if x is None else f"{x / MiB:.1f} MiB"


# ---------------------------------------------------------------------------------------- watcher


class LogTail:
    """Incremental search for INIT_MARK in a file that may not exist yet."""

    def __init__(self, path):
        self.path = path
        self.f = None
        self.tail = b""

    def found(self):
        if self.f is None:
            try:
                self.f = open(self.path, "rb")
            except OSError:
                return False
        data = self.f.read()
        if not data:
            return False
        buf = self.tail + data
        if INIT_MARK in buf:
            return True
        self.tail = buf[-len(INIT_MARK):]
        return False

    def close(self):
        if self.f:
            self.f.close()
            self.f = None


def pid_from_file(path):
    try:
        with open(path) as f:
            s = f.read().strip()
        return int(s) if s else None
    except (OSError, ValueError):
        return None


def watch(t0, find_pid, log_path, done=None, timeout=BOOT_TIMEOUT):
    """Polls every POLL seconds: time from t0 to the process running (find_pid() -> pid whose
    /proc entry exists) and to the init line in log_path. done(): optional early abort (returns an
    error text). Returns (t_proc, t_init, pid, error)."""
    tail = LogTail(log_path)
    t_proc = t_init = pid = None
    try:
        while True:
            now = time.perf_counter()
            if t_proc is None:
                p = find_pid()
                if p is not None and os.path.exists(f"/proc/{p}"):
                    t_proc, pid = now - t0, p
            if t_init is None and tail.found():
                t_init = now - t0
            if t_proc is not None and t_init is not None:
                return t_proc, t_init, pid, None
            if done is not None:
                err = done()
                if err:
                    return t_proc, t_init, pid, err
            if now - t0 > timeout:
                return t_proc, t_init, pid, f"timeout after {timeout:.0f}s"
            time.sleep(POLL)
    finally:
        tail.close()


class Call(threading.Thread):
    """Runs fn() in a thread and records when it returned (perf_counter) or what it raised."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.ret_at, self.error, self.value = fn, None, None, None

    def run(self):
        try:
            self.value = self.fn()
        except BaseException as e:  # noqa: BLE001 - reported
            self.error = e
        self.ret_at = time.perf_counter()


# ---------------------------------------------------------------------------------------- drover


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Drover:
    """`drover serve --host-driver qemu` of the benchmarks, its networks and guests in `netns` (an
    existing namespace), or in a namespace of its own that `start` makes."""

    def __init__(self, binary, tiny_guest, work, netns=None, extra_args=()):
        self.owns_netns = netns is None
        self.extra_args = list(extra_args)
        self.netns = netns or f"drb-{os.getpid()}"
        self.binary = binary
        self.tiny = tiny_guest
        self.data = os.path.join(work, "data")
        self.log = os.path.join(work, "drover.log")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.password = "pw"
        self.proc = None
        self.run_dirs = set()  # socket dirs of guests (under /run/drover/<hash>/)
        self.vms = {}  # vm ref -> uuid, every VM we cloned and have not destroyed

    def start(self):
        env = dict(os.environ, DROVER_ADMIN_PASSWORD=self.password)
        cmd = [self.binary, "serve", "--data-dir", self.data, "--listen", f"127.0.0.1:{self.port}",
               "--host-driver", "qemu", "--accel", "tcg", "--tiny-guest", self.tiny, "--netns", self.netns,
               *self.extra_args]
        if self.owns_netns:
            subprocess.run(["ip", "netns", "add", self.netns], check=True)
        log("starting " + " ".join(cmd))
        with open(self.log, "ab") as lf:
            self.proc = subprocess.Popen(cmd, stdout=lf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"drover exited ({self.proc.returncode}) during start-up:\n{self.tail()}")
            try:
                with urllib.request.urlopen(self.url + "health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise SystemExit("drover did not become healthy within 60s\n" + self.tail())

    def session(self):
        s = XenAPI.Session(self.url)
        s.xenapi.login_with_password("admin", self.password, "1", "vmstart-bench")
        return s

    def tail(self, n=30):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    def guest_dir(self, uuid):
        return os.path.join(self.data, "guests", uuid)

    def rss(self):
        return rss_bytes(self.proc.pid)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)


class DroverGuests:
    """Clone/provision/start/stop of Tiny Linux guests through one XenAPI session (one thread)."""

    def __init__(self, drover: Drover):
        self.d = drover
        self.s = drover.session()
        self.x = self.s.xenapi
        tpls = [t for t in self.x.VM.get_by_name_label("Tiny Linux") if self.x.VM.get_is_a_template(t)]
        if not tpls:
            names = sorted(self.x.VM.get_name_label(v) for v in self.x.VM.get_all()
                           if self.x.VM.get_is_a_template(v))
            raise SystemExit(f"no template 'Tiny Linux' (templates: {names}); is --tiny-guest honoured?")
        self.tpl = tpls[0]
        self.seq = 0

    def new_vm(self):
        self.seq += 1
        vm = self.x.VM.clone(self.tpl, f"vmstart-{self.seq}")
        self.d.vms[vm] = None
        self.x.VM.provision(vm)
        self.x.VM.set_is_a_template(vm, False)
        uuid = self.x.VM.get_uuid(vm)
        self.d.vms[vm] = uuid
        return vm, uuid

    def start_call(self, vm):
        return Call(lambda: self.x.VM.start(vm, False, False))

    def remove(self, vm):
        """Hard shutdown (if running) and destroy, with the VM's disks."""
        try:
            if self.x.VM.get_power_state(vm) != "Halted":
                self.x.VM.hard_shutdown(vm)
        except XenAPI.Failure as e:
            log(f"  hard_shutdown: {e}")
        vdis = []
        try:
            for vbd in self.x.VM.get_VBDs(vm):
                vdi = self.x.VBD.get_VDI(vbd)
                if vdi and vdi != "OpaqueRef:NULL":
                    vdis.append(vdi)
        except XenAPI.Failure:
            pass
        try:
            self.x.VM.destroy(vm)
        except XenAPI.Failure as e:
            log(f"  destroy: {e}")
        for vdi in vdis:
            try:
                self.x.VDI.destroy(vdi)
            except XenAPI.Failure:
                pass
        self.d.vms.pop(vm, None)

    def qemu_pid(self, uuid):
        return pid_from_file(os.path.join(self.d.guest_dir(uuid), "qemu.pid"))

    def timed_start(self):
        """One measured VM.start of a fresh clone. Returns a dict; the guest is left running."""
        vm, uuid = self.new_vm()
        gdir = self.d.guest_dir(uuid)
        pidfile = os.path.join(gdir, "qemu.pid")
        call = self.start_call(vm)

        def failed():
            if call.error is not None:
                return f"VM.start failed: {call.error}"
            if not self.d.alive():
                return "drover exited"
            return None

        t0 = time.perf_counter()
        call.start()
        t_proc, t_init, pid, err = watch(t0, lambda: pid_from_file(pidfile), os.path.join(gdir, "console.log"), failed)
        call.join(60)
        ret = None if call.ret_at is None else call.ret_at - t0
        if err is None and call.error is not None:
            err = f"VM.start failed: {call.error}"
        return {"vm": vm, "uuid": uuid, "pid": pid, "proc": t_proc, "init": t_init, "ret": ret, "error": err}


# ---------------------------------------------------------------------------------------- hand-run QEMU


def split_cmdline(raw: bytes):
    return [a.decode() for a in raw.split(b"\0") if a]


def find_opt(args, opt):
    return [args[i + 1] for i, a in enumerate(args[:-1]) if a == opt]


def chardev_value(args, chardev_id, key):
    for v in find_opt(args, "-chardev"):
        parts = v.split(",")
        if f"id={chardev_id}" in parts:
            for p in parts:
                if p.startswith(key + "="):
                    return p[len(key) + 1:]
    return None


class HandQemu:
    """Drover's QEMU command line with its paths moved to a temp dir, run with subprocess."""

    def __init__(self, args, guest_dir, work):
        self.orig = args
        qmp = chardev_value(args, "qmp", "path")
        run_dir = os.path.dirname(qmp) if qmp else None
        self.dir = tempfile.mkdtemp(prefix="hand-", dir=work)
        self.d = os.path.join(self.dir, "d")
        self.r = os.path.join(self.dir, "r")
        subst = [(guest_dir.rstrip("/"), self.d)]
        if run_dir:
            subst.append((run_dir.rstrip("/"), self.r))
        subst.sort(key=lambda p: -len(p[0]))
        self.args = []
        for a in args:
            for old, new in subst:
                a = a.replace(old, new)
            self.args.append(a)
        leftovers = [a for a in self.args if guest_dir in a or (run_dir and run_dir in a)]
        if leftovers:
            raise RuntimeError(f"paths not rewritten: {leftovers}")
        self.changed = [(o, n) for o, n in zip(args, self.args) if o != n]
        self.pidfile = (find_opt(self.args, "-pidfile") or [None])[0]
        self.console_log = chardev_value(self.args, "serial0", "logfile")
        if not self.pidfile or not self.console_log:
            raise RuntimeError("no -pidfile or serial0 logfile= in the command line")
        self.paused = "-S" in self.args[1:]
        self.qmp = chardev_value(self.args, "qmp", "path")
        self.proc = None

    def _fresh(self):
        for d in (self.d, self.r):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)

    def timed_start(self):
        self._fresh()
        out = open(os.path.join(self.dir, "qemu.log"), "wb")
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        out.close()
        if self.paused:  # drop nothing: a paused command line is resumed over QMP
            threading.Thread(target=qmp_cont, args=(self.qmp,), daemon=True).start()

        def failed():
            if self.proc.poll() is not None:
                with open(os.path.join(self.dir, "qemu.log"), errors="replace") as f:
                    return f"qemu exited ({self.proc.returncode}): {f.read().strip()[-400:]}"
            return None

        t_proc, t_init, pid, err = watch(t0, lambda: pid_from_file(self.pidfile), self.console_log, failed)
        return {"pid": pid, "proc": t_proc, "init": t_init, "error": err}

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(15)
        self.proc = None


def qmp_cont(path, timeout=20):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            break
        except OSError:
            time.sleep(0.005)
    else:
        return
    f = s.makefile("rwb")
    f.readline()
    for cmd in ("qmp_capabilities", "cont"):
        f.write(json.dumps({"execute": cmd}).encode() + b"\n")
        f.flush()
        while True:
            line = json.loads(f.readline() or b"{}")
            if "return" in line or "error" in line or not line:
                break
    s.close()


# ---------------------------------------------------------------------------------------- libvirt

VIRSH = ["virsh", "-q", "-c", "qemu:///system"]


class Libvirt:
    def __init__(self, work):
        self.work = work
        self.dir = os.path.join(work, "libvirt")
        self.daemons = []  # Popen of daemons we started
        self.domains = set()  # names of domains we created and have not destroyed
        self.prefix = f"vmstart-{os.getpid()}-"
        self.note = None

    def virsh(self, *args, timeout=60):
        return subprocess.run(VIRSH + list(args), capture_output=True, text=True, timeout=timeout)

    def _ready(self):
        try:
            return self.virsh("uri", timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def _spawn(self, argv, name):
        logf = open(os.path.join(self.work, f"{name}.log"), "ab")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                             start_new_session=True)
        logf.close()
        self.daemons.append(p)
        with open(os.path.join(self.work, "daemons.pids"), "a") as f:
            f.write(f"{p.pid} {name}\n")
        return p

    def setup(self):
        """Returns None when libvirt can be used, else why not."""
        for tool in ("virsh", "libvirtd", "virtlogd"):
            if not shutil.which(tool) and not os.path.exists(f"/usr/sbin/{tool}"):
                return f"{tool} is not installed"
        try:
            import pwd
            pwd.getpwnam("libvirt-qemu")
        except KeyError:
            return "there is no libvirt-qemu user"
        if self._ready():
            log("libvirt: using the libvirtd that already runs")
            return None
        sbin = lambda t: shutil.which(t) or f"/usr/sbin/{t}"  # noqa: E731
        if not os.path.exists("/run/libvirt/virtlogd-sock"):
            log("libvirt: starting virtlogd")
            self._spawn([sbin("virtlogd")], "virtlogd")
            end = time.monotonic() + 10
            while not os.path.exists("/run/libvirt/virtlogd-sock") and time.monotonic() < end:
                time.sleep(0.05)
        libvirtd = sbin("libvirtd")
        if self._kvm_closed_to_qemu_user() and shutil.which("unshare"):
            # libvirt 9.0 probes QEMU's capabilities as root (KVM found) but checks /dev/kvm as
            # libvirt-qemu (no access when /dev/kvm is root-only, as here): the cached capabilities
            # are then "outdated" at every look-up and each `virsh create` re-probes QEMU ~20 times
            # (~45 s). A stock Debian host has /dev/kvm 0660 root:kvm with libvirt-qemu in kvm;
            # this libvirtd gets that view of /dev/kvm in a private mount namespace of its own
            # (a device node in the scratch dir bind-mounted on /dev/kvm); the host is unchanged.
            st = os.stat("/dev/kvm")
            node = os.path.join(self.work, "kvm-node")
            script = ('mknod "$1" c "$2" "$3" && chgrp libvirt-qemu "$1" && chmod 660 "$1" '
                      '&& mount --bind "$1" /dev/kvm && exec "$4"')
            argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", node,
                    str(os.major(st.st_rdev)), str(os.minor(st.st_rdev)), libvirtd]
            log("libvirt: starting libvirtd in a mount namespace where libvirt-qemu may open /dev/kvm")
            why = self._start_libvirtd(argv)
            if why is None:
                self.note = ("libvirtd ran in a private mount namespace with /dev/kvm 0660 root:libvirt-qemu "
                             "(stock Debian permissions); domains use TCG")
                return None
            log(f"libvirt: that failed ({why}); starting a plain libvirtd")
        else:
            log("libvirt: starting libvirtd")
        why = self._start_libvirtd([libvirtd])
        if why is None and self._kvm_closed_to_qemu_user():
            self.note = ("/dev/kvm is closed to libvirt-qemu: libvirt re-probes QEMU's capabilities at each "
                         "start (tens of seconds); the libvirt times include that")
        return why

    def _kvm_closed_to_qemu_user(self):
        if not os.path.exists("/dev/kvm"):
            return False
        try:
            r = subprocess.run(["runuser", "-u", "libvirt-qemu", "--", "test", "-r", "/dev/kvm", "-a", "-w", "/dev/kvm"],
                               capture_output=True, timeout=10)
            return r.returncode != 0
        except (OSError, subprocess.TimeoutExpired):
            return False

    def _start_libvirtd(self, argv):
        p = self._spawn(argv, "libvirtd")
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if p.poll() is not None:
                self.daemons.remove(p)
                return f"libvirtd exited ({p.returncode}): {self._log_tail('libvirtd')}"
            if self._ready():
                return None
            time.sleep(0.2)
        p.terminate()
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
        self.daemons.remove(p)
        return f"libvirtd did not answer within 60 s: {self._log_tail('libvirtd')}"

    def _log_tail(self, name):
        try:
            with open(os.path.join(self.work, f"{name}.log"), errors="replace") as f:
                return f.read().strip()[-600:]
        except OSError:
            return ""

    def prepare(self, kernel, initrd, append, mem_mib, vcpus, qemu):
        """libvirt's QEMU runs as libvirt-qemu and relabels the files it is given: it gets its own
        copies of the kernel and initrd in a directory it can read."""
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.work, 0o755)
        os.chmod(self.dir, 0o777)
        self.kernel = os.path.join(self.dir, "vmlinuz")
        self.initrd = os.path.join(self.dir, "initrd.img")
        shutil.copyfile(kernel, self.kernel)
        shutil.copyfile(initrd, self.initrd)
        for f in (self.kernel, self.initrd):
            os.chmod(f, 0o644)
        self.append, self.mem_mib, self.vcpus, self.qemu = append, mem_mib, vcpus, qemu
        self.seq = 0

    def xml(self, name, logfile):
        from xml.sax.saxutils import escape as e
        return f"""<domain type='qemu'>
  <name>{e(name)}</name>
  <uuid>{uuidlib.uuid4()}</uuid>
  <memory unit='MiB'>{self.mem_mib}</memory>
  <vcpu>{self.vcpus}</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{e(self.kernel)}</kernel>
    <initrd>{e(self.initrd)}</initrd>
    <cmdline>{e(self.append)}</cmdline>
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>{e(self.qemu)}</emulator>
    <controller type='usb' model='none'/>
    <serial type='file'>
      <source path='{e(logfile)}'/>
      <target port='0'/>
    </serial>
    <console type='file'>
      <source path='{e(logfile)}'/>
      <target type='serial' port='0'/>
    </console>
    <video><model type='vga'/></video>
    <memballoon model='virtio'/>
  </devices>
</domain>
"""

    def timed_start(self):
        self.seq += 1
        name = f"{self.prefix}{self.seq}"
        logfile = os.path.join(self.dir, f"{name}.console.log")
        xmlfile = os.path.join(self.dir, f"{name}.xml")
        with open(xmlfile, "w") as f:
            f.write(self.xml(name, logfile))
        needle = f"guest={name},".encode()
        before = {e.name for e in os.scandir("/proc") if e.name.isdigit()}

        def find():  # pgrep -f 'guest=NAME,' among processes that appeared since the start
            for e in os.scandir("/proc"):
                if e.name.isdigit() and e.name not in before and needle in proc_cmdline(e.name):
                    return int(e.name)
            return None

        call = Call(lambda: self.virsh("create", xmlfile, timeout=BOOT_TIMEOUT))
        self.domains.add(name)

        def failed():
            if call.error is not None:
                return f"virsh create: {call.error}"
            if call.value is not None and call.value.returncode != 0:
                return f"virsh create failed: {call.value.stderr.strip()}"
            return None

        t0 = time.perf_counter()
        call.start()
        t_proc, t_init, pid, err = watch(t0, find, logfile, failed)
        call.join(BOOT_TIMEOUT)
        ret = None if call.ret_at is None else call.ret_at - t0
        if err is None:
            err = failed()
        return {"name": name, "pid": pid, "proc": t_proc, "init": t_init, "ret": ret, "error": err,
                "cmdline": split_cmdline(proc_cmdline(pid)) if pid else None}

    def destroy(self, name):
        try:
            r = self.virsh("destroy", name, timeout=60)
            if r.returncode != 0 and "not found" not in r.stderr.lower() and "no domain" not in r.stderr.lower():
                log(f"  virsh destroy {name}: {r.stderr.strip()}")
        except (OSError, subprocess.TimeoutExpired) as e:
            log(f"  virsh destroy {name}: {e}")
        self.domains.discard(name)
        try:
            os.unlink(f"/var/log/libvirt/qemu/{name}.log")
        except OSError:
            pass

    def cleanup(self):
        for name in list(self.domains):
            self.destroy(name)
        for p in reversed(self.daemons):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)


# ---------------------------------------------------------------------------------------- sections


def section_start_latency(dg: DroverGuests, drover: Drover, work, n, res):
    log(f"[1+2] warm-up Drover start (untimed; its command line is the hand-run's)  load {loadavg()}")
    w = dg.timed_start()
    if w["error"]:
        raise SystemExit(f"the warm-up guest did not boot: {w['error']}\n{drover.tail()}")
    log(f"  warm-up: process {fmt_ms(w['proc'])}, init {fmt_s(w['init'])}, VM.start returned {fmt_ms(w['ret'])}")
    args = split_cmdline(proc_cmdline(w["pid"]))
    qmp = chardev_value(args, "qmp", "path")
    if qmp:
        drover.run_dirs.add(os.path.dirname(os.path.dirname(qmp)))
    res["drover_cmdline"] = args
    hand = HandQemu(args, drover.guest_dir(w["uuid"]), work)
    res["hand_cmdline"] = hand.args
    dg.remove(w["vm"])
    log("  Drover's QEMU command line: " + " ".join(args))
    log(f"  rewritten for the hand run ({len(hand.changed)} arguments changed):")
    for o, nw in hand.changed:
        log(f"    {o}\n      -> {nw}")
    if hand.paused:
        log("  NOTE: the command line has -S; the hand run resumes it with QMP 'cont'")

    log("  warm-up hand run (untimed)")
    hw = hand.timed_start()
    hand.stop()
    if hw["error"]:
        log(f"  hand-run warm-up failed: {hw['error']}")
    res["drover"], res["hand"] = [], []
    for i in range(n):
        r = dg.timed_start()
        res["drover"].append(r)
        log(f"  Drover {i + 1}/{n}: process {fmt_ms(r['proc'])}, init {fmt_s(r['init'])}, "
            f"VM.start returned {fmt_ms(r['ret'])}{'  ERROR ' + r['error'] if r['error'] else ''}  load {loadavg()}")
        dg.remove(r["vm"])
        h = hand.timed_start()
        hand.stop()
        res["hand"].append(h)
        log(f"  hand   {i + 1}/{n}: process {fmt_ms(h['proc'])}, init {fmt_s(h['init'])}"
            f"{'  ERROR ' + h['error'] if h['error'] else ''}  load {loadavg()}")
    shutil.rmtree(hand.dir, ignore_errors=True)


def section_libvirt(lv: Libvirt, drover_args, n, res):
    log(f"[3] libvirt  load {loadavg()}")
    why = lv.setup()
    res["libvirt_note"] = lv.note
    if why:
        res["libvirt_skipped"] = why
        log(f"  libvirt skipped: {why}")
        return
    mem = find_opt(drover_args, "-m")[0]
    mem_mib = int(re.match(r"(\d+)", mem).group(1)) * (1024 if mem.upper().endswith("G") else 1)
    vcpus = int(re.match(r"(?:cpus=)?(\d+)", find_opt(drover_args, "-smp")[0]).group(1))
    lv.prepare(find_opt(drover_args, "-kernel")[0], find_opt(drover_args, "-initrd")[0],
               find_opt(drover_args, "-append")[0], mem_mib, vcpus, drover_args[0])
    res["libvirt"] = []
    log("  warm-up virsh create (untimed)")
    w = lv.timed_start()
    lv.destroy(w["name"])
    if w["error"]:
        res["libvirt_skipped"] = w["error"]
        log(f"  libvirt does not start the domain: {w['error']}")
        return
    res["libvirt_cmdline"] = w["cmdline"]
    log("  libvirt's QEMU command line: " + " ".join(w["cmdline"] or []))
    for i in range(n):
        r = lv.timed_start()
        lv.destroy(r["name"])
        res["libvirt"].append(r)
        log(f"  libvirt {i + 1}/{n}: process {fmt_ms(r['proc'])}, init {fmt_s(r['init'])}, "
            f"virsh create returned {fmt_ms(r['ret'])}{'  ERROR ' + r['error'] if r['error'] else ''}  load {loadavg()}")


def start_batch(dg: DroverGuests, count, running):
    """Starts `count` guests (VM.start one after the other), then waits until each has booted.
    Appends (vm, uuid) of the booted ones to `running`; returns the number that failed."""
    started = []
    for _ in range(count):
        vm, uuid = dg.new_vm()
        try:
            dg.x.VM.start(vm, False, False)
        except XenAPI.Failure as e:
            log(f"  VM.start failed: {e}")
            dg.remove(vm)
            return count - len(started)
        started.append((vm, uuid, time.perf_counter()))
    failed = 0
    for vm, uuid, t0 in started:
        log_path = os.path.join(dg.d.guest_dir(uuid), "console.log")
        _, t_init, _, err = watch(t0, lambda: dg.qemu_pid(uuid), log_path, timeout=BOOT_TIMEOUT)
        if err:
            log(f"  guest {uuid} did not boot: {err}")
            failed += 1
        running.append((vm, uuid))
    return failed


def section_memory(dg: DroverGuests, drover: Drover, k, density_max, batch, res):
    log(f"[4] drover RSS with 0 guests  load {loadavg()}")
    time.sleep(2)
    res["rss0"] = drover.rss()
    res["mem0"] = meminfo()
    log(f"  drover RSS {fmt_mib(res['rss0'])} (at start-up {fmt_mib(res['rss_startup'])}), "
        f"MemAvailable {fmt_mib(res['mem0']['MemAvailable'])}; host CPU idle over 5 s with 0 guests ...")
    res["idle0"] = cpu_idle_pct(5)
    log(f"  host CPU idle with 0 guests: {res['idle0']:.1f} %")
    running = []
    res["running"] = running
    while len(running) < k:
        nb = min(batch, k - len(running))
        log(f"  starting {nb} guests ({len(running)} running)")
        if start_batch(dg, nb, running):
            break
    time.sleep(3)
    res["k"] = len(running)
    res["rssK"] = drover.rss()
    q = [rss_bytes(dg.qemu_pid(u)) for _, u in running]
    res["qemu_rss_k"] = [x for x in q if x]
    per = (res["rssK"] - res["rss0"]) / res["k"] if res["k"] else None
    res["rss_per_guest"] = per
    log(f"  {res['k']} guests: drover RSS {fmt_mib(res['rssK'])} -> {fmt_mib(per)} per guest; "
        f"QEMU RSS average {fmt_mib(statistics.mean(res['qemu_rss_k']) if res['qemu_rss_k'] else None)}")

    log(f"[5] density: up to {density_max} guests or MemAvailable < 1 GiB, batches of {batch}  load {loadavg()}")
    stop_reason = f"cap DENSITY_MAX={density_max} reached"
    while len(running) < density_max:
        avail = meminfo()["MemAvailable"]
        per_guest = (res["mem0"]["MemAvailable"] - avail) / len(running) if running else 256 * MiB
        per_guest = max(per_guest, 64 * MiB)
        room = int((avail - GiB) // per_guest)
        if avail < GiB or room <= 0:
            stop_reason = f"MemAvailable {fmt_mib(avail)} (next guest would take it below 1 GiB)"
            break
        nb = min(batch, density_max - len(running), room)
        log(f"  starting {nb} guests ({len(running)} running, MemAvailable {fmt_mib(avail)})")
        if start_batch(dg, nb, running):
            stop_reason = "a guest failed to start or boot"
            break
    res["density_stop"] = stop_reason
    log(f"  {len(running)} guests running ({stop_reason}); settling 10 s")
    time.sleep(10)
    alive = [(vm, u) for vm, u in running if (p := dg.qemu_pid(u)) and proc_alive(p)]
    res["density_n"] = len(alive)
    res["density_started"] = len(running)
    m = meminfo()
    res["memN"] = m
    res["drop_per_guest"] = (res["mem0"]["MemAvailable"] - m["MemAvailable"]) / len(alive) if alive else None
    res["qemu_rss_n"] = [x for x in (rss_bytes(dg.qemu_pid(u)) for _, u in alive) if x]
    res["rssN"] = drover.rss()
    log("  host CPU idle over 5 s with all guests idle ...")
    qpids = [p for p in (dg.qemu_pid(u) for _, u in alive) if p]
    q0 = {p: cpu_ticks(p) for p in qpids}
    t0 = time.monotonic()
    res["idleN"] = cpu_idle_pct(5)
    dt = time.monotonic() - t0
    used = [cpu_ticks(p) - q0[p] for p in qpids if q0[p] is not None and cpu_ticks(p) is not None]
    if used:  # % of one core per guest, from the QEMU processes' own CPU time
        res["qemu_cpu_pct"] = 100.0 * statistics.mean(used) / os.sysconf("SC_CLK_TCK") / dt
    if res["drop_per_guest"]:
        res["fit"] = int((m["MemTotal"] - GiB) // res["drop_per_guest"])
    log(f"  {len(alive)} alive; MemAvailable drop {fmt_mib(res['drop_per_guest'])} per guest; CPU idle "
        f"{res['idleN']:.1f} %; QEMU CPU {res.get('qemu_cpu_pct', float('nan')):.1f} % of a core per guest; "
        f"extrapolation {res.get('fit', '-')} guests in MemTotal - 1 GiB  load {loadavg()}")
    log(f"  shutting down {len(running)} guests")
    t = time.monotonic()
    for vm, _ in running:
        dg.remove(vm)
    res["shutdown_all_s"] = time.monotonic() - t
    running.clear()


# ---------------------------------------------------------------------------------------- report


def report(res, args):
    ncpu = os.cpu_count()
    mt = meminfo()["MemTotal"]
    print()
    print(f"Drover guest start / density benchmark  ({time.strftime('%Y-%m-%d %H:%M')}, {ncpu} CPUs, "
          f"MemTotal {mt / GiB:.1f} GiB, TCG, Tiny Linux guest, N={args.n}, K={args.k}, DENSITY_MAX={args.density_max})")
    print(f"load average at start {res.get('load_start')}, at end {loadavg()}")
    print()

    def row(label, runs, key, fmt):
        vals = [r[key] for r in runs if r.get(key) is not None]
        if not vals:
            return f"  {label:<34} {'-':>12}"
        return (f"  {label:<34} {fmt(med(vals)):>12}   (min {fmt(min(vals))}, max {fmt(max(vals))}, "
                f"{len(vals)}/{len(runs)} runs)")

    d, h, lvr = res.get("drover", []), res.get("hand", []), res.get("libvirt", [])
    print("Start latency, medians over N runs (each section after one untimed warm-up start)")
    print(row("Drover  VM.start -> QEMU running", d, "proc", fmt_ms))
    print(row("Drover  VM.start -> guest init", d, "init", fmt_s))
    print(row("Drover  VM.start returned", d, "ret", fmt_ms))
    print(row("hand    exec -> QEMU running", h, "proc", fmt_ms))
    print(row("hand    exec -> guest init", h, "init", fmt_s))
    if lvr:
        print(row("libvirt virsh create -> QEMU running", lvr, "proc", fmt_ms))
        print(row("libvirt virsh create -> guest init", lvr, "init", fmt_s))
        print(row("libvirt virsh create returned", lvr, "ret", fmt_ms))
        if res.get("libvirt_note"):
            print(f"  (libvirt: {res['libvirt_note']})")
    else:
        print(f"  libvirt: not measured: {res.get('libvirt_skipped', 'not reached')}")
    for key, what in (("proc", "QEMU running"), ("init", "guest init")):
        dm, hm = med([r[key] for r in d]), med([r[key] for r in h])
        if dm and hm:
            pairs = [r1[key] / r2[key] for r1, r2 in zip(d, h) if r1[key] and r2[key]]
            extra = ""
            if key == "init":
                extra = "   (aim <= 1.05)"
            print(f"  overhead Drover/hand, {what:<13} {dm / hm:8.3f}   (ratio of medians; median of paired "
                  f"ratios {med(pairs):.3f}; difference {(dm - hm) * 1000:+.1f} ms){extra}")
        lm = med([r[key] for r in lvr]) if lvr else None
        if lm and hm:
            print(f"  overhead libvirt/hand, {what:<12} {lm / hm:8.3f}")
    print()
    print("Memory")
    if "rss0" in res:
        print(f"  drover RSS at start-up / with 0 guests      {fmt_mib(res.get('rss_startup'))} / {fmt_mib(res['rss0'])}")
    if "rssK" in res:
        print(f"  drover RSS with {res['k']} guests                 {fmt_mib(res['rssK'])}")
        print(f"  drover RSS per guest (RSS_K - RSS_0)/K     {fmt_mib(res['rss_per_guest'])}")
        q = res.get("qemu_rss_k") or []
        if q:
            print(f"  QEMU RSS per guest, average of {len(q)}          {fmt_mib(statistics.mean(q))}"
                  f"   (min {fmt_mib(min(q))}, max {fmt_mib(max(q))})")
    print()
    print("Density")
    if "density_n" in res:
        q = res.get("qemu_rss_n") or []
        print(f"  guests started and booted                  {res['density_n']}   (stopped: {res['density_stop']})")
        print(f"  MemAvailable before / after                {fmt_mib(res['mem0']['MemAvailable'])} / "
              f"{fmt_mib(res['memN']['MemAvailable'])}")
        print(f"  MemAvailable drop per guest                {fmt_mib(res['drop_per_guest'])}")
        if q:
            print(f"  QEMU RSS per guest, average of {len(q)}          {fmt_mib(statistics.mean(q))}")
        print(f"  drover RSS with {res['density_n']} guests                 {fmt_mib(res['rssN'])}")
        print(f"  host CPU idle, 0 guests / {res['density_n']} idle guests     {res['idle0']:.1f} % / {res['idleN']:.1f} %"
              f"   (/proc/stat over 5 s, {ncpu} CPUs)")
        if res.get("qemu_cpu_pct") is not None:
            sat = "  (host saturated: a lower bound)" if res["idleN"] < 5 else ""
            print(f"  CPU per idle guest (QEMU utime+stime)      {res['qemu_cpu_pct']:.1f} % of a core{sat}")
        if res.get("fit"):
            print(f"  extrapolation: (MemTotal - 1 GiB) / drop   {res['fit']} guests")
        print(f"  hard_shutdown + destroy of all             {res['shutdown_all_s']:.1f} s")
    else:
        print("  not measured")
    errs = [(s, r["error"]) for s in ("drover", "hand", "libvirt") for r in res.get(s, []) if r.get("error")]
    if errs:
        print()
        print("Errors")
        for s, e in errs:
            print(f"  {s}: {e}")
    if args.json:
        keep = {k: v for k, v in res.items() if k not in ("running",)}
        with open(args.json, "w") as f:
            json.dump(keep, f, indent=1, default=str)
        print(f"\n(raw figures in {args.json})")


# ---------------------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="target/release/drover")
    ap.add_argument("--tiny-guest", default="guest/out")
    ap.add_argument("--work", help="scratch directory (default: a new temp dir); removed at the end")
    ap.add_argument("-n", type=int, default=int(os.environ.get("N", 5)), help="timed starts per section")
    ap.add_argument("-k", type=int, default=int(os.environ.get("K", 10)), help="guests for the RSS figure")
    ap.add_argument("--density-max", type=int, default=int(os.environ.get("DENSITY_MAX", 40)))
    ap.add_argument("--batch", type=int, default=int(os.environ.get("DENSITY_BATCH", 5)))
    ap.add_argument("--no-libvirt", action="store_true", default=os.environ.get("NO_LIBVIRT") == "1")
    ap.add_argument("--json", help="also write the raw figures to this file")
    args = ap.parse_args()

    work = args.work or tempfile.mkdtemp(prefix="vmstart-")
    os.makedirs(work, exist_ok=True)
    work = os.path.realpath(work)

    def on_signal(signum, _frame):
        raise SystemExit(f"stopped by signal {signum}")

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    drover = Drover(os.path.abspath(args.binary), os.path.abspath(args.tiny_guest), work)
    lv = Libvirt(work)
    res = {"load_start": loadavg()}
    dg = None
    try:
        drover.start()
        res["rss_startup"] = drover.rss()
        log(f"drover up on 127.0.0.1:{drover.port}, data {drover.data}, RSS {fmt_mib(res['rss_startup'])}")
        dg = DroverGuests(drover)
        section_start_latency(dg, drover, work, args.n, res)
        if args.no_libvirt:
            res["libvirt_skipped"] = "disabled (NO_LIBVIRT=1)"
        else:
            try:
                section_libvirt(lv, res["drover_cmdline"], args.n, res)
            except Exception as e:  # noqa: BLE001 - libvirt is optional
                res["libvirt_skipped"] = f"{type(e).__name__}: {e}"
                log(f"  libvirt failed: {res['libvirt_skipped']}")
            finally:
                lv.cleanup()
        section_memory(dg, drover, args.k, max(args.density_max, 0), max(1, args.batch), res)
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        log("cleaning up")
        if dg is not None and drover.alive():
            for vm in list(drover.vms):
                try:
                    dg.remove(vm)
                except Exception as e:  # noqa: BLE001
                    log(f"  removing {vm}: {e}")
        try:
            lv.cleanup()
        except Exception as e:  # noqa: BLE001
            log(f"  libvirt cleanup: {e}")
        drover.stop()
        # Guests outlive the agent by design (it re-attaches on restart): kill any left by id.
        for pid in pids_with_cmdline(work.encode()):
            if pid != os.getpid():
                log(f"  killing leftover process {pid}")
                kill_pid(pid)
        if drover.owns_netns:
            subprocess.run(["ip", "netns", "del", drover.netns], check=False, stderr=subprocess.DEVNULL)
        for d in drover.run_dirs:
            shutil.rmtree(d, ignore_errors=True)
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
        try:
            report(res, args)
        except Exception as e:  # noqa: BLE001 - a partial run still reports what it has
            log(f"report: {type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
