"""A private network world for the network tests and the network benchmark, and helpers to look
into it and into the tiny guest.

`NetWorld` makes two network namespaces of its own:

  <ns>   the engine's (`drover serve --netns <ns>`): `eth0` (192.0.2.2/24, default route via
         192.0.2.1: the management interface), `eth1` and `eth2` (up, no address: spare uplinks)
  <peer> the other ends of those veth pairs: `w0` (192.0.2.1/24), `w1`, `w2`

Nothing is done in the root namespace: every `ip` command names one of these two namespaces, and
traffic is only ever sent to addresses assigned inside them (or inside the guests Drover runs in
<ns>). `destroy()` deletes both namespaces, and with them every device in them.

Also here: a normalised view of a namespace's links and addresses (to check that something did or
did not change), the processes of an engine (dnsmasq, QEMU) found through /proc, and the tiny
guest's serial console (read over `GET <console location>`, typed into over its websocket).
"""

from __future__ import annotations

import gzip
import json
import os
import pathlib
import platform
import re
import secrets
import subprocess
import time
import urllib.parse
import urllib.request

NULL = "OpaqueRef:NULL"

# Link flags that follow carrier and timing rather than configuration: left out of comparisons.
_VOLATILE_FLAGS = {"LOWER_UP", "NO-CARRIER", "M-DOWN", "DORMANT"}


class NetWorldError(RuntimeError):
    pass


def run(cmd, check=True, timeout=30):
    """Runs a command (a list); returns the CompletedProcess; raises with its output on failure."""
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise NetWorldError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip() or p.stdout.strip()}")
    return p


def need_root_and_tools():
    """Fails loudly (never skips) when the world cannot be built here."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the network tests need root (network namespaces, veth pairs)")
    for tool, pkg in (("ip", "iproute2"), ("dnsmasq", "dnsmasq-base"), ("busybox", "busybox-static")):
        if not any(os.access(os.path.join(d, tool), os.X_OK)
                   for d in os.environ.get("PATH", "").split(":") + ["/usr/sbin", "/sbin", "/bin"]):
            problems.append(f"{tool} is missing (Debian package {pkg}; scripts/test.sh installs it)")
    if problems:
        raise NetWorldError("; ".join(problems))


def busybox():
    for p in ("/bin/busybox", "/usr/bin/busybox"):
        if os.access(p, os.X_OK):
            return p
    return "busybox"


class NetWorld:
    def __init__(self, prefix="drt"):
        tag = secrets.token_hex(3)
        self.ns = f"{prefix}-{tag}"
        self.peer = f"{prefix}-{tag}-w"
        self.eth0_ip = "192.0.2.2"
        self.gateway = "192.0.2.1"
        self.prefix = 24
        self.created = []

    # -- lifecycle ---------------------------------------------------------------------------
    def create(self):
        need_root_and_tools()
        try:
            for n in (self.ns, self.peer):
                run(["ip", "netns", "add", n])
                self.created.append(n)
                self.ip("link", "set", "lo", "up", ns=n)
            for i in range(3):
                self.ip("link", "add", "name", f"eth{i}", "type", "veth", "peer", "name", f"w{i}", "netns", self.peer)
                self.ip("link", "set", f"eth{i}", "up")
                self.ip("link", "set", f"w{i}", "up", ns=self.peer)
            self.ip("addr", "add", f"{self.eth0_ip}/{self.prefix}", "dev", "eth0")
            self.ip("addr", "add", f"{self.gateway}/{self.prefix}", "dev", "w0", ns=self.peer)
            self.ip("route", "add", "default", "via", self.gateway, "dev", "eth0")
        except Exception:
            self.destroy()
            raise
        return self

    def destroy(self):
        """Deletes the namespaces (and so every device in them). Idempotent."""
        for n in reversed(self.created):
            run(["ip", "netns", "del", n], check=False)
        self.created = []

    @property
    def exists(self):
        return os.path.exists(f"/run/netns/{self.ns}")

    # -- commands ----------------------------------------------------------------------------
    def ip(self, *args, ns=None, check=True):
        return run(["ip", "-n", ns or self.ns, *args], check=check)

    def ip_json(self, *args, ns=None):
        out = self.ip("-j", *args, ns=ns).stdout.strip()
        return json.loads(out) if out else []

    def exec(self, *cmd, ns=None, check=False, timeout=30):
        """Runs a command inside a namespace (e.g. busybox ping between our own addresses)."""
        return run(["ip", "netns", "exec", ns or self.ns, *cmd], check=check, timeout=timeout)

    def ping(self, addr, ns=None, count=1, wait=2):
        """True if `addr` (an address inside our namespaces or guests) answers from namespace `ns`."""
        return self.exec(busybox(), "ping", "-c", str(count), "-W", str(wait), addr, ns=ns,
                         timeout=count * wait + 10).returncode == 0

    # -- views -------------------------------------------------------------------------------
    def links(self, ns=None):
        """{name: link} with details (`ip -d -j link`), plus `_kind` and `_ipv4` (["a.b.c.d/n"])."""
        out = {}
        for link in self.ip_json("-d", "link", "show", ns=ns):
            link["_kind"] = (link.get("linkinfo") or {}).get("info_kind", "")
            link["_ipv4"] = []
            out[link["ifname"]] = link
        for a in self.ip_json("-4", "addr", "show", ns=ns):
            if a.get("ifname") in out:
                out[a["ifname"]]["_ipv4"] = [f"{i['local']}/{i['prefixlen']}" for i in a.get("addr_info", [])
                                             if i.get("family") == "inet"]
        return out

    def link(self, name, ns=None):
        return self.links(ns).get(name)

    def ports(self, bridge, ns=None):
        """Names of the devices that are ports of `bridge`."""
        return sorted(n for n, l in self.links(ns).items() if l.get("master") == bridge)

    def state(self, ns=None):
        """A comparable picture of a namespace: each link's configuration (no counters, no
        carrier-dependent flags), its IPv4 addresses, and the IPv4 routes."""
        links = {}
        for name, l in self.links(ns).items():
            info = (l.get("linkinfo") or {}).get("info_data") or {}
            links[name] = {
                "kind": l["_kind"],
                "master": l.get("master"),
                "mtu": l.get("mtu"),
                "up": "UP" in l.get("flags", []),
                "flags": sorted(set(l.get("flags", [])) - _VOLATILE_FLAGS),
                "alias": l.get("ifalias"),
                "mac": l.get("address"),
                "ipv4": sorted(l["_ipv4"]),
                "vni/vid": info.get("id"),
            }
        routes = sorted(json.dumps(r, sort_keys=True) for r in self.ip_json("-4", "route", "show", "table", "all", ns=ns)
                        if r.get("type") != "broadcast")
        return {"links": links, "routes": routes}

    def ns_inode(self, ns=None):
        return os.stat(f"/run/netns/{ns or self.ns}").st_ino

    def __repr__(self):
        return f"<NetWorld ns={self.ns} peer={self.peer}>"


def root_links():
    """The root namespace's links (read only: the tests never change anything there)."""
    return json.loads(run(["ip", "-j", "link", "show"]).stdout or "[]")


def diff_state(before, after):
    """Human-readable differences between two NetWorld.state() pictures ([] when equal)."""
    out = []
    b, a = before["links"], after["links"]
    for n in sorted(set(b) | set(a)):
        if n not in a:
            out.append(f"link {n} disappeared: {b[n]}")
        elif n not in b:
            out.append(f"link {n} appeared: {a[n]}")
        elif a[n] != b[n]:
            keys = [k for k in a[n] if a[n][k] != b[n].get(k)]
            out.append(f"link {n} changed: " + ", ".join(f"{k} {b[n].get(k)!r} -> {a[n][k]!r}" for k in keys))
    for r in sorted(set(before["routes"]) - set(after["routes"])):
        out.append(f"route gone: {r}")
    for r in sorted(set(after["routes"]) - set(before["routes"])):
        out.append(f"route added: {r}")
    return out


# ---------------------------------------------------------------------------------------------
# processes


def proc_argv(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def proc_netns_inode(pid):
    """The inode of the process's network namespace (None if it is gone)."""
    try:
        link = os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    m = re.match(r"net:\[(\d+)\]", link)
    return int(m.group(1)) if m else None


def processes_mentioning(text, name=None):
    """{pid: argv} of the live processes whose command line contains `text` (and whose program's
    base name is `name`, if given)."""
    out = {}
    for e in os.scandir("/proc"):
        if not e.name.isdigit():
            continue
        argv = proc_argv(e.name)
        if not argv or not any(text in a for a in argv):
            continue
        if name is not None and os.path.basename(argv[0]) != name:
            continue
        try:
            with open(f"/proc/{e.name}/stat") as f:
                if f.read().rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
                    continue
        except (OSError, IndexError):
            continue
        out[int(e.name)] = argv
    return out


def dnsmasqs_of(data_dir):
    """dnsmasq processes of the engine whose data dir is `data_dir` (found by its path on their
    command line)."""
    return processes_mentioning(str(data_dir), "dnsmasq")


def lease_files(data_dir):
    return sorted(str(p) for p in pathlib.Path(data_dir).rglob("*lease*") if p.is_file())


# ---------------------------------------------------------------------------------------------
# the kernel


def kernel_config():
    """{CONFIG_X: 'y'|'m'} from /proc/config.gz or /boot/config-<release> ({} if neither)."""
    text = None
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            text = f.read()
    except OSError:
        try:
            text = pathlib.Path(f"/boot/config-{platform.release()}").read_text()
        except OSError:
            return {}
    return dict(re.findall(r"^(CONFIG_\w+)=(y|m)$", text, re.M))


def kernel_has(option):
    """True/False when the kernel's configuration is readable, else None."""
    cfg = kernel_config()
    if not cfg:
        return None
    return option in cfg


# ---------------------------------------------------------------------------------------------
# the tiny guest's serial console


def console_url(x, vm, sid, protocol="vt100"):
    for c in x.VM.get_consoles(vm):
        r = x.console.get_record(c)
        if r["protocol"] == protocol:
            sep = "&" if "?" in r["location"] else "?"
            return r["location"] + sep + "session_id=" + urllib.parse.quote(sid)
    raise AssertionError(f"VM {vm} has no {protocol} console")


def console_text(x, vm, sid):
    with urllib.request.urlopen(console_url(x, vm, sid), timeout=10) as r:
        return r.read().decode(errors="replace")


def console_mark(x, vm, sid):
    return len(console_text(x, vm, sid))


def wait_console(x, vm, sid, pattern, after=0, timeout=60):
    """Waits for `pattern` in the console output beyond offset `after`; returns the match."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = console_text(x, vm, sid)
        m = re.search(pattern, text[after:])
        if m:
            return m
        time.sleep(0.2)
    raise AssertionError(f"no {pattern!r} on the console of {vm} within {timeout}s; it says:\n{text[after:][-3000:]}")


def guest_run(x, vm, sid, command, timeout=60):
    """Types `command` into the guest's serial-console shell (over the console websocket) and
    waits for it to finish. Returns (exit status, console output from the moment it was typed)."""
    import websocket  # websocket-client

    tag = secrets.token_hex(4)
    done = re.compile(rf"DRT-{tag}-rc=(\d+)")
    url = console_url(x, vm, sid).replace("http://", "ws://", 1)
    ws = websocket.create_connection(url, timeout=5)
    seen = b""
    try:
        ws.send_binary(f"{command}; echo DRT-{tag}-rc=$?\n".encode())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                frame = ws.recv()
            except websocket.WebSocketTimeoutException:
                continue
            seen += frame if isinstance(frame, bytes) else frame.encode()
            text = seen.decode(errors="replace")
            m = done.search(text)
            if m:
                # From the echo of the typed line on (a new console session may replay older output).
                start = text.find(f"DRT-{tag}-rc=$?")
                return int(m.group(1)), text[start if 0 <= start < m.start() else 0:]
    finally:
        ws.close()
    raise AssertionError(f"{command!r} did not finish in the guest within {timeout}s; the console said:\n"
                         f"{seen.decode(errors='replace')[-3000:]}")
