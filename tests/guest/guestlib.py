"""Drives one QEMU guest for the real-guest tests (python3 stdlib only).

A Guest boots build/guest/{vmlinuz,initramfs.cpio.gz} under TCG with its RAM
in a shared file under /dev/shm (memory-backend-file, share=on: the file
swapread reads), a swap disk (a sparse host file on virtio-blk), the kernel
console on the first serial port (a log file) and tests/guest/guestprog's
command channel on the second (a unix socket). QMP is a unix socket too.
It offers: commands to guestprog (Guest.cmd), HMP through QMP (Guest.hmp),
finding the CR3 of the guestprog process (Guest.find_cr3), and the pattern
guestprog writes (expected_bytes). Guest.close() -- also run by the context
manager, atexit and SIGTERM/SIGINT -- kills its own QEMU by pid and deletes
the RAM file, the swap file and the sockets, on every exit path.
"""

import array
import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

PAGE = 4096
BUF_VA = 0x7E0000000000
MAGIC = 0x3154534744525753
CR3_MASK = 0x000FFFFFFFFFF000
BOOT_ARGS = "console=ttyS0 nokaslr nopti zswap.enabled=0 panic=-1 loglevel=4"

_live = []


def _cleanup_all():
    for g in list(_live):
        g.close()


def _on_signal(signum, frame):
    _cleanup_all()
    sys.exit(128 + signum)


atexit.register(_cleanup_all)
for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_s, _on_signal)


class GuestError(Exception):
    pass


def expected_words(seed, va, nbytes):
    """The pattern guestprog writes: word at va is va + (seed << 48)."""
    base = seed << 48
    return array.array("Q", range(va + base, va + base + nbytes, 8))


def expected_bytes(seed, npages, pid, va, nbytes):
    """Bytes of [va, va+nbytes) of the buffer of a process (header included);
    va and nbytes multiples of 8."""
    w = expected_words(seed, va, nbytes)
    if va == BUF_VA:
        hdr = [MAGIC, seed, npages, pid, 0, 0, 0, 0]
        for i in range(min(8, len(w))):
            w[i] = hdr[i]
    return w.tobytes()


def parse_pagemap(text):
    """guestprog's run-length pagemap -> list of per-page tuples:
    ('p', pfn) / ('s', type, offset) / ('-',)."""
    out = []
    for tok in text.split():
        m = re.fullmatch(r"p([0-9a-f]+)x(\d+)", tok)
        if m:
            pfn, n = int(m.group(1), 16), int(m.group(2))
            out.extend(("p", pfn + i) for i in range(n))
            continue
        m = re.fullmatch(r"s(\d+):([0-9a-f]+)x(\d+)", tok)
        if m:
            t, off, n = int(m.group(1)), int(m.group(2), 16), int(m.group(3))
            out.extend(("s", t, off + i) for i in range(n))
            continue
        m = re.fullmatch(r"-x(\d+)", tok)
        if m:
            out.extend(("-",) for _ in range(int(m.group(1))))
            continue
        raise GuestError("bad pagemap token %r" % tok)
    return out


class Guest:
    def __init__(self, guest_dir, ram_mib=256, swap_mib=256, log=None,
                 qemu="qemu-system-x86_64"):
        self.guest_dir = guest_dir
        self.ram_mib = ram_mib
        self.swap_mib = swap_mib
        self.qemu_bin = qemu
        self.log = log or (lambda s: None)
        self.proc = None
        self.tmp = None
        self.ram_path = None
        self.qmp = None
        self.ctl = None
        self._ctl_buf = b""
        self._qmp_buf = b""
        self._tag = 0
        self.boot_s = None

    # --- lifetime -------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def start(self):
        _live.append(self)
        self.tmp = tempfile.mkdtemp(prefix="swapread-guest.")
        self.ram_path = "/dev/shm/swapread-guest-%d-%s.ram" % (
            os.getpid(), os.path.basename(self.tmp).split(".")[-1])
        swap = os.path.join(self.tmp, "swap.img")
        with open(swap, "wb") as f:
            f.truncate(self.swap_mib << 20)
        self.console_path = os.path.join(self.tmp, "console.log")
        qmp_path = os.path.join(self.tmp, "qmp.sock")
        ctl_path = os.path.join(self.tmp, "ctl.sock")
        size = "%dM" % self.ram_mib
        argv = [
            self.qemu_bin, "-nodefaults", "-display", "none", "-no-reboot",
            "-machine", "pc,accel=tcg,memory-backend=mem",
            "-cpu", "qemu64", "-smp", "1", "-m", size,
            "-object", "memory-backend-file,id=mem,size=%s,mem-path=%s,"
            "share=on" % (size, self.ram_path),
            "-kernel", os.path.join(self.guest_dir, "vmlinuz"),
            "-initrd", os.path.join(self.guest_dir, "initramfs.cpio.gz"),
            "-append", BOOT_ARGS,
            "-drive", "file=%s,if=virtio,format=raw,cache=unsafe" % swap,
            "-chardev", "file,id=con,path=%s" % self.console_path,
            "-serial", "chardev:con",
            "-chardev", "socket,id=ctl,path=%s,server=on,wait=off" % ctl_path,
            "-serial", "chardev:ctl",
            "-qmp", "unix:%s,server=on,wait=off" % qmp_path,
        ]
        t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=open(os.path.join(self.tmp,
                                                              "qemu.out"), "w"),
                                     stderr=subprocess.STDOUT)
        self.qmp = self._connect(qmp_path)
        self._qmp_read()  # greeting
        self._qmp({"execute": "qmp_capabilities"})
        self.ctl = self._connect(ctl_path)
        self._wait_console("GUEST-READY", 120)
        hello = self._ctl_line(60)
        if not hello.startswith("=hello ok"):
            raise GuestError("guestprog said %r" % hello)
        self.boot_s = time.monotonic() - t0
        return self

    def close(self):
        if self in _live:
            _live.remove(self)
        for s in (self.qmp, self.ctl):
            try:
                if s is not None:
                    s.close()
            except OSError:
                pass
        self.qmp = self.ctl = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()  # our own QEMU, by its pid
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.proc = None
        if self.ram_path and os.path.exists(self.ram_path):
            os.unlink(self.ram_path)
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def console(self):
        try:
            with open(self.console_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    # --- plumbing -------------------------------------------------------
    def _alive(self):
        if self.proc.poll() is not None:
            raise GuestError("qemu exited with %s; console:\n%s" %
                             (self.proc.returncode, self.console()[-2000:]))

    def _connect(self, path):
        end = time.monotonic() + 30
        while True:
            self._alive()
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)
                return s
            except OSError:
                s.close()
                if time.monotonic() > end:
                    raise GuestError("cannot connect to %s" % path)
                time.sleep(0.05)

    def _wait_console(self, word, timeout):
        end = time.monotonic() + timeout
        while word not in self.console():
            self._alive()
            if time.monotonic() > end:
                raise GuestError("no %r on the console in %d s:\n%s" %
                                 (word, timeout, self.console()[-3000:]))
            time.sleep(0.05)

    def _qmp_read(self, timeout=60):
        end = time.monotonic() + timeout
        while b"\n" not in self._qmp_buf:
            self._alive()
            self.qmp.settimeout(max(0.01, end - time.monotonic()))
            try:
                d = self.qmp.recv(1 << 20)
            except socket.timeout:
                raise GuestError("QMP timed out")
            if not d:
                raise GuestError("QMP closed")
            self._qmp_buf += d
        line, self._qmp_buf = self._qmp_buf.split(b"\n", 1)
        return json.loads(line)

    def _qmp(self, msg):
        self.qmp.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._qmp_read()
            if "event" in r:
                continue
            if "error" in r:
                raise GuestError("QMP %s: %s" % (msg, r["error"]))
            return r.get("return")

    def hmp(self, line):
        return self._qmp({"execute": "human-monitor-command",
                          "arguments": {"command-line": line}})

    def stop(self):
        self._qmp({"execute": "stop"})

    def cont(self):
        self._qmp({"execute": "cont"})

    def _ctl_line(self, timeout):
        end = time.monotonic() + timeout
        while b"\n" not in self._ctl_buf:
            self._alive()
            self.ctl.settimeout(max(0.01, end - time.monotonic()))
            try:
                d = self.ctl.recv(1 << 16)
            except socket.timeout:
                raise GuestError("guestprog did not answer in %d s" % timeout)
            if not d:
                raise GuestError("guestprog channel closed")
            self._ctl_buf += d
        line, self._ctl_buf = self._ctl_buf.split(b"\n", 1)
        return line.decode(errors="replace").strip("\r")

    def send(self, cmd):
        """Sends a command without waiting; returns its tag (see reply)."""
        self._tag += 1
        tag = "t%d" % self._tag
        self.ctl.sendall(("%s %s\n" % (tag, cmd)).encode())
        return tag

    def reply(self, tag, timeout=120):
        """The answer to tag: a dict of its key=value words (and 'words')."""
        while True:
            line = self._ctl_line(timeout)
            if not line.startswith("=" + tag + " "):
                if line.startswith("=hello"):
                    self.hello = line
                continue  # stray output (a previous process's hello)
            body = line[len(tag) + 2:]
            if not body.startswith("ok"):
                raise GuestError("guestprog: %s" % body)
            words = body[2:].split()
            d = {"words": words, "line": body}
            for w in words:
                if "=" in w:
                    k, v = w.split("=", 1)
                    d[k] = v
            return d

    def cmd(self, cmd, timeout=120):
        return self.reply(self.send(cmd), timeout)

    def wait_hello(self, timeout=60):
        """After an exit: the new guestprog's hello line."""
        while True:
            line = self._ctl_line(timeout)
            if line.startswith("=hello ok"):
                return line

    # --- guest facts ----------------------------------------------------
    def pagemap(self, first, n):
        return parse_pagemap(" ".join(self.cmd("pagemap %d %d" %
                                                (first, n))["words"]))

    def find_cr3(self, text_lo, text_hi, rounds=10):
        """Runs guestprog's user-mode spin and stops the VM until the vCPU
        is in it (CPL 3, RIP in [text_lo, text_hi)). Returns the CR3
        (masked) with the VM *stopped* in guestprog, so HMP oracles
        (gva2gpa, info tlb) see its address space: call resume() after."""
        for _ in range(rounds):
            tag = self.send("spin 1500")
            time.sleep(0.1)
            t_end = time.monotonic() + 1.2
            while time.monotonic() < t_end:
                self.stop()
                regs = self.hmp("info registers")
                m_rip = re.search(r"RIP=([0-9a-f]+)", regs)
                m_cr3 = re.search(r"CR3=([0-9a-f]+)", regs)
                m_cpl = re.search(r"CPL=(\d)", regs)
                if (m_rip and m_cr3 and m_cpl and m_cpl.group(1) == "3" and
                        text_lo <= int(m_rip.group(1), 16) < text_hi):
                    self.last_regs = regs
                    self._spin_tag = tag
                    return int(m_cr3.group(1), 16) & CR3_MASK
                self.cont()
                time.sleep(0.02)
            self.reply(tag, timeout=60)
        raise GuestError("never stopped inside guestprog's text")

    def resume(self):
        """After find_cr3: run the VM again and wait for the spin to end."""
        self.cont()
        self.reply(self._spin_tag, timeout=60)


def parse_text(s):
    lo, hi = s.split("-")
    return int(lo, 16), int(hi, 16)
