#!/usr/bin/env python3
"""make demo-guest: the main job on a real Linux guest, as a show.

Boots the guest of the real-guest tests (tests/guest/guestlib.py), starts
guestprog with a patterned buffer, finds its CR3, swaps 256 KiB of the
buffer out, shows `swapread translate` naming the swap entry, then runs
`swapread read --wait` (its progress on your terminal) while the guest
touches the pages back in, 8 at a time, every 400 ms; checks the bytes.
Exit 0 when the read completed with every byte right. QEMU and the RAM file
go away on every exit path (Ctrl-C included).
"""

import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib as gl  # noqa: E402

PAGE = gl.PAGE


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    top = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", default=os.path.join(top, "build", "swapread"))
    ap.add_argument("--guest-dir", default=os.path.join(top, "build", "guest"))
    args = ap.parse_args()
    n, first, seed = 64, 256, 7
    va = gl.BUF_VA + first * PAGE
    with gl.Guest(args.guest_dir) as g:
        print("booting a Linux guest under QEMU (TCG, 256 MiB, RAM shared "
              "in a file) ...", flush=True)
        g.start()
        print("booted in %.1f s; RAM file %s" % (g.boot_s, g.ram_path))
        r = g.cmd("init %d 1024" % seed)
        lo, hi = gl.parse_text(r["text"])
        print("guestprog pid %s: 4 MiB buffer at %#x, pattern seed %d" %
              (r["pid"], gl.BUF_VA, seed))
        cr3 = g.find_cr3(lo, hi)
        g.resume()
        print("cr3 %#x (the VM stopped over QMP with CPL 3 and RIP in "
              "guestprog's text)" % cr3)
        r = g.cmd("pageout %d %d" % (first, n))
        print("guest: madvise(MADV_PAGEOUT) on %d pages at %#x: %s swapped "
              "in %.0f ms" % (n, va, r["swapped"], int(r["us"]) / 1e3))
        sr = [args.cli]
        print("\n$ swapread translate RAM --cr3 %#x %#x" % (cr3, va),
              flush=True)
        subprocess.run(sr + ["translate", g.ram_path, "--cr3", hex(cr3),
                             hex(va)])
        out = os.path.join(g.tmp, "demo.bin")
        print("\n$ swapread read RAM --cr3 %#x %#x %d --wait=60s -o FILE\n"
              "  (pending; the guest touches 8 pages every 400 ms)" %
              (cr3, va, n * PAGE), flush=True)
        t0 = time.monotonic()
        p = subprocess.Popen(sr + ["read", g.ram_path, "--cr3", hex(cr3),
                                   hex(va), str(n * PAGE), "--wait=60s",
                                   "-o", out])
        time.sleep(0.5)
        for b in range(0, n, 8):
            g.cmd("touch %d-%d" % (first + b, first + b + 7))
            time.sleep(0.4)
        rc = p.wait(timeout=60)
        dt = time.monotonic() - t0
        with open(out, "rb") as f:
            data = f.read()
        exp = gl.expected_bytes(seed, 1024, int(r.get("pid", 0) or 0), va,
                                n * PAGE)
        ok = rc == 0 and data == exp
        print("\nread ended (exit %d) after %.1f s; %d bytes %s" %
              (rc, dt, len(data), "verified against the pattern" if ok
               else "DIFFER from the pattern"))
        print("demo-guest: %s" % ("ok" if ok else "FAILED"))
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
