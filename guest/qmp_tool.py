#!/usr/bin/env python3
"""Small helpers for the tiny-guest tests (standard library only).

  qmp_tool.py qmp SOCK STEP...
      Connect to a QMP unix socket and run the STEPs in order on one connection.
      A STEP is a JSON command ('{"execute": ...}'), whose "return" is printed as
      one JSON line, or "event:NAME[:TIMEOUT_S]", which waits for that event
      (also one seen while an earlier command ran). Exit 1 on error or timeout.
  qmp_tool.py hotplug-cpu SOCK ID
      device_add the first CPU of query-hotpluggable-cpus that is not plugged
      (driver = its "type", plus its "props"), with id ID.
  qmp_tool.py serial SOCK TEXT EXPECT TIMEOUT_S
      Connect to a serial chardev unix socket, type TEXT (sent again once
      half way through if EXPECT has not been seen) and wait for EXPECT in the
      console output. Exit 1 on timeout.
  qmp_tool.py agent-read SOCK TIMEOUT_S
      Connect to the guest agent's virtio-serial chardev unix socket and print
      the first line that is a JSON object with os.kernel and
      memory.total_kb. Exit 1 on timeout.
"""
import json
import socket
import sys
import time


def connect(path, timeout):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


class Qmp:
    def __init__(self, path):
        self.sock = connect(path, 10)
        self.buf = b""
        self.events = []
        self.next_id = 0
        self.recv()  # greeting
        self.command({"execute": "qmp_capabilities"})

    def recv(self, deadline=None):
        while b"\n" not in self.buf:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                raise SystemExit("QMP socket closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def command(self, cmd):
        self.next_id += 1
        cmd = dict(cmd, id=self.next_id)
        self.sock.sendall(json.dumps(cmd).encode() + b"\n")
        while True:
            msg = self.recv(time.monotonic() + 30)
            if "event" in msg:
                self.events.append(msg)
            elif msg.get("id") == self.next_id:
                if "error" in msg:
                    raise SystemExit(f"{cmd['execute']}: {msg['error']}")
                return msg.get("return")

    def wait_event(self, name, timeout):
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["event"] == name:
                    del self.events[i]
                    return ev
            try:
                msg = self.recv(deadline)
            except TimeoutError:
                raise SystemExit(f"no {name} event within {timeout} s")
            if "event" in msg:
                self.events.append(msg)


def cmd_qmp(path, steps):
    q = Qmp(path)
    for step in steps:
        if step.startswith("event:"):
            parts = step.split(":")
            ev = q.wait_event(parts[1], float(parts[2]) if len(parts) > 2 else 10)
            print(json.dumps(ev))
        else:
            print(json.dumps(q.command(json.loads(step))))
    return 0


def cmd_hotplug_cpu(path, dev_id):
    q = Qmp(path)
    for cpu in q.command({"execute": "query-hotpluggable-cpus"}):
        if "qom-path" not in cpu:
            args = dict(cpu["props"], driver=cpu["type"], id=dev_id)
            q.command({"execute": "device_add", "arguments": args})
            print(json.dumps(args))
            return 0
    print("no free hot-pluggable CPU", file=sys.stderr)
    return 1


def cmd_serial(path, text, expect, timeout):
    s = connect(path, 1)
    deadline = time.monotonic() + timeout
    resend_at = time.monotonic() + timeout / 2
    s.sendall(text.encode())
    seen = b""
    while time.monotonic() < deadline:
        if resend_at and time.monotonic() >= resend_at:
            s.sendall(text.encode())
            resend_at = 0
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        if not data:
            break
        seen = (seen + data)[-65536:]
        if expect.encode() in seen:
            return 0
    print(f"'{expect}' not seen within {timeout} s", file=sys.stderr)
    return 1


def cmd_agent_read(path, timeout):
    deadline = time.monotonic() + timeout
    s = connect(path, timeout)
    buf = b""
    while time.monotonic() < deadline:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            data = s.recv(65536)
        except socket.timeout:
            break
        if not data:
            break
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            try:
                msg = json.loads(line)
                if msg["os"]["kernel"] and int(msg["memory"]["total_kb"]) > 0:
                    print(line.decode())
                    return 0
            except (ValueError, KeyError, TypeError):
                print(f"bad agent line: {line!r}", file=sys.stderr)
    print(f"no valid agent JSON line within {timeout} s", file=sys.stderr)
    return 1


def main(argv):
    if len(argv) >= 3 and argv[0] == "qmp":
        return cmd_qmp(argv[1], argv[2:])
    if len(argv) == 3 and argv[0] == "hotplug-cpu":
        return cmd_hotplug_cpu(argv[1], argv[2])
    if len(argv) == 5 and argv[0] == "serial":
        return cmd_serial(argv[1], argv[2], argv[3], float(argv[4]))
    if len(argv) == 3 and argv[0] == "agent-read":
        return cmd_agent_read(argv[1], float(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
