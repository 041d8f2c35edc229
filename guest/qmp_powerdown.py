#!/usr/bin/env python3
"""Send system_powerdown to a QEMU QMP unix socket. Usage: qmp_powerdown.py SOCKET"""
import json
import socket
import sys


def main() -> int:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(sys.argv[1])
    f = s.makefile("rwb", buffering=0)

    def read_reply():
        while True:
            line = f.readline()
            if not line:
                raise SystemExit("QMP socket closed")
            msg = json.loads(line)
            if "event" in msg:
                continue
            return msg

    read_reply()  # greeting
    for cmd in ("qmp_capabilities", "system_powerdown"):
        f.write(json.dumps({"execute": cmd}).encode() + b"\n")
        reply = read_reply()
        if "error" in reply:
            print(f"{cmd}: {reply['error']}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
