#!/usr/bin/env python3
"""Reach the libvirt harness's tiny guest from the host (used by scripts/libvirt-harness).

  libvirt-guest-shell.py run SOCKET CMD [--timeout S]    shell command on the serial console;
                                                          prints its output, exits with its status
  libvirt-guest-shell.py wait-ready SOCKET [--timeout S] wait for the init's HV-READY line
  libvirt-guest-shell.py exec --domain D CMD              the same through qemu-ga guest-exec
  libvirt-guest-shell.py push --domain D SRC DEST         copy a file in with guest-file-write

`exec` and `push` call libvirt's C API through ctypes (virDomainQemuAgentCommand), so they need
no Python binding package and are not bound by the 128 KiB argument limit that makes pushing
through `virsh qemu-agent-command` slow.
"""
import argparse
import base64
import ctypes
import json
import os
import select
import socket
import sys
import time
import uuid


# --- serial console -------------------------------------------------------------------------

def connect(path, deadline):
    """Connects to QEMU's serial socket, retrying while the domain starts."""
    while True:
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(path)
            return s
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def read_until(s, marker, deadline, buf=b""):
    """Reads until `marker` and the end of its line arrived; returns everything read."""
    while time.monotonic() < deadline:
        at = buf.find(marker)
        if at >= 0 and b"\n" in buf[at:]:
            return buf
        ready, _, _ = select.select([s], [], [], 0.2)
        if ready:
            data = s.recv(65536)
            if not data:
                break
            buf += data
    sys.exit("timeout; last output: " + buf.decode(errors="replace")[-2000:])


def serial_run(path, command, timeout):
    deadline = time.monotonic() + timeout
    s = connect(path, time.monotonic() + 10)
    tag = uuid.uuid4().hex[:10]
    begin, end = f"<{tag}>".encode(), f"</{tag} ".encode()
    # The markers are assembled by the guest's shell, so the echo of the typed line never matches.
    line = f'PS1=; stty -echo 2>/dev/null; echo "<"{tag}">"; {command}\necho "</"{tag} "$?"\n'
    s.sendall(line.encode())
    buf = read_until(s, end, deadline)
    body = buf[buf.find(begin) + len(begin):]
    out, tail = body.split(end, 1)
    status = int(tail.split()[0]) if tail.split() else 255
    sys.stdout.write(out.lstrip(b"\r\n").decode(errors="replace").replace("\r", ""))
    return status


def serial_wait_ready(path, timeout):
    started = time.monotonic()
    s = connect(path, started + timeout)
    buf = read_until(s, b"HV-READY", started + timeout)
    line = buf[buf.find(b"HV-READY"):].split(b"\n")[0].decode().strip()
    print(f"{line} (waited {time.monotonic() - started:.2f}s)")
    return 0


# --- guest agent through libvirt's C API ----------------------------------------------------

class Agent:
    def __init__(self, uri, domain):
        self.virt = ctypes.CDLL("libvirt.so.0")
        self.qemu = ctypes.CDLL("libvirt-qemu.so.0")
        self.virt.virConnectOpen.restype = ctypes.c_void_p
        self.virt.virConnectOpen.argtypes = [ctypes.c_char_p]
        self.virt.virDomainLookupByName.restype = ctypes.c_void_p
        self.virt.virDomainLookupByName.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        self.virt.virGetLastErrorMessage.restype = ctypes.c_char_p
        self.qemu.virDomainQemuAgentCommand.restype = ctypes.c_void_p  # char *, freed below
        self.qemu.virDomainQemuAgentCommand.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint]
        self.libc = ctypes.CDLL(None)
        self.libc.free.argtypes = [ctypes.c_void_p]
        self.conn = self.virt.virConnectOpen(uri.encode())
        if not self.conn:
            sys.exit(f"cannot connect to {uri}: {self.error()}")
        self.dom = self.virt.virDomainLookupByName(self.conn, domain.encode())
        if not self.dom:
            sys.exit(f"no domain {domain}: {self.error()}")

    def error(self):
        return (self.virt.virGetLastErrorMessage() or b"unknown error").decode()

    def call(self, execute, timeout=30, **arguments):
        command = {"execute": execute}
        if arguments:
            command["arguments"] = arguments
        reply = self.qemu.virDomainQemuAgentCommand(self.dom, json.dumps(command).encode(), timeout, 0)
        if not reply:
            raise RuntimeError(f"{execute}: {self.error()}")
        text = ctypes.string_at(reply).decode()
        self.libc.free(reply)
        return json.loads(text)["return"]

    def exec(self, path, args, timeout=120):
        pid = self.call("guest-exec", path=path, arg=args, **{"capture-output": True})["pid"]
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            status = self.call("guest-exec-status", pid=pid)
            if status["exited"]:
                return (status.get("exitcode", 255),
                        base64.b64decode(status.get("out-data", "")),
                        base64.b64decode(status.get("err-data", "")))
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path} still running after {timeout}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def push(self, source, destination, chunk):
        # A fresh inode: a handle an interrupted push left open in qemu-ga would otherwise
        # keep the file open for writing, and running it would fail with ETXTBSY.
        part = f"{destination}.part-{os.getpid()}"
        self.exec("/bin/rm", ["-f", part])
        handle = self.call("guest-file-open", path=part, mode="w")
        sent = 0
        try:
            with open(source, "rb") as f:
                while data := f.read(chunk):
                    self.call("guest-file-write", handle=handle, **{"buf-b64": base64.b64encode(data).decode()})
                    sent += len(data)
        finally:
            self.call("guest-file-close", handle=handle)
        mode = oct(os.stat(source).st_mode & 0o777)[2:]
        code, out, err = self.exec("/bin/sh", ["-c", f'chmod {mode} "$0" && mv "$0" "$1"', part, destination])
        if code != 0:
            raise RuntimeError(f"chmod/mv in the guest failed: {(out + err).decode(errors='replace')}")
        return sent


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    run = sub.add_parser("run"); run.add_argument("socket"); run.add_argument("command")
    run.add_argument("--timeout", type=float, default=300)
    ready = sub.add_parser("wait-ready"); ready.add_argument("socket"); ready.add_argument("--timeout", type=float, default=120)
    for name in ("exec", "push"):
        p = sub.add_parser(name)
        p.add_argument("--uri", default=os.environ.get("COFFRE_LIBVIRT_URI", "qemu:///system"))
        p.add_argument("--domain", default=os.environ.get("COFFRE_LIBVIRT_DOMAIN", "coffre-tiny"))
        if name == "exec":
            p.add_argument("command")
            p.add_argument("--timeout", type=float, default=300)
        else:
            p.add_argument("source"); p.add_argument("destination")
            p.add_argument("--chunk", type=int, default=96 << 10,
                           help="raw bytes per guest-file-write (JSON above ~256 KiB silences the agent)")
    a = parser.parse_args()
    if a.mode == "run":
        return serial_run(a.socket, a.command, a.timeout)
    if a.mode == "wait-ready":
        return serial_wait_ready(a.socket, a.timeout)
    agent = Agent(a.uri, a.domain)
    if a.mode == "exec":
        code, out, err = agent.exec("/bin/sh", ["-c", a.command], a.timeout)
        sys.stdout.buffer.write(out); sys.stderr.buffer.write(err)
        return code
    started = time.monotonic()
    sent = agent.push(a.source, a.destination, a.chunk)
    seconds = time.monotonic() - started
    print(f"pushed {sent} bytes to {a.destination} in {seconds:.2f}s ({sent / seconds / 1e6:.1f} MB/s, "
          f"{a.chunk} bytes per guest-file-write)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
