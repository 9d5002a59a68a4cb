#!/usr/bin/env python3
"""make check-guest: swapread end to end against a real Linux guest.

Boots one guest (tests/guest/guestlib.py), starts tests/guest/guestprog in
it with a patterned 64 MiB buffer, and runs the scenarios below through the
CLI (build/swapread) and, for region discovery, a program built against the
public API (tests/guest/find_region.c). Oracles: QEMU's HMP gva2gpa and
info tlb (with the VM stopped inside guestprog, so they use its CR3) and
the guest's own /proc/self/pagemap. One line per scenario (PASS/FAIL, name,
key figures), then the measured figures and "N passed, N failed"; exit 1 on
any failure.

usage: check.py [--cli build/swapread] [--guest-dir build/guest]
                [--only NAME[,NAME]] [--verbose]
"""

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import guestlib as gl  # noqa: E402

PAGE = gl.PAGE
BUF = gl.BUF_VA
NPAGES = 16384  # 64 MiB
SEED1, SEED2 = 1, 2


class Fail(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Fail(what)


class Ctx:
    """What the scenarios share: the guest, the CLI, the current process."""

    def __init__(self, args):
        self.args = args
        self.cli = args.cli
        self.g = None
        self.proc = None  # guestprog facts: pid, seed, npages, text, cr3
        self.tmp = tempfile.mkdtemp(prefix="swapread-check-guest.")
        self.figures = {}

    def log(self, msg):
        if self.args.verbose:
            print("  " + msg, flush=True)

    def out(self, name):
        return os.path.join(self.tmp, name)

    def run(self, argv, **kw):
        self.log("$ " + " ".join(argv))
        return subprocess.run(argv, capture_output=True, text=True, **kw)

    def sr(self, *argv, cr3=None):
        a = [self.cli, argv[0], self.g.ram_path, "--cr3",
             hex(cr3 if cr3 is not None else self.proc["cr3"])] + list(argv[1:])
        return self.run(a)

    def start_proc(self, seed, npages=NPAGES):
        r = self.g.cmd("init %d %d" % (seed, npages))
        lo, hi = gl.parse_text(r["text"])
        p = {"pid": int(r["pid"]), "seed": seed, "npages": npages,
             "text": (lo, hi)}
        p["cr3"] = self.g.find_cr3(lo, hi)
        self.g.resume()
        self.proc = p
        self.log("guestprog pid %d seed %d cr3 %#x" % (p["pid"], seed,
                                                       p["cr3"]))
        return p

    def expected(self, va, nbytes, proc=None):
        p = proc or self.proc
        return gl.expected_bytes(p["seed"], p["npages"], p["pid"], va, nbytes)

    def bad_pages(self, data, va, proc=None):
        """Indices (relative to va) of the pages of data that differ."""
        exp = self.expected(va, len(data), proc)
        return [i for i in range(0, len(data) // PAGE)
                if data[i * PAGE:(i + 1) * PAGE] !=
                exp[i * PAGE:(i + 1) * PAGE]]


class Waiter:
    """A `swapread read --wait` running in the background; records when it
    exited (a thread waits on it, so the time is not late)."""

    def __init__(self, ctx, first, n, timeout, cr3=None, name="wait",
                 extra=()):
        self.va = BUF + first * PAGE
        self.len = n * PAGE
        self.outfile = ctx.out("%s-%d.bin" % (name, first))
        argv = [ctx.cli, "read", ctx.g.ram_path, "--cr3",
                hex(cr3 if cr3 is not None else ctx.proc["cr3"]),
                hex(self.va), str(self.len), "--wait=%s" % timeout, "--json",
                "-o", self.outfile] + list(extra)
        ctx.log("$ " + " ".join(argv) + " &")
        self.t_start = time.monotonic()
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.t_end = None
        self.stdout = self.stderr = ""
        self.th = threading.Thread(target=self._wait, daemon=True)
        self.th.start()

    def _wait(self):
        self.stdout, self.stderr = self.p.communicate()
        self.t_end = time.monotonic()

    def running(self):
        return self.t_end is None

    def join(self, timeout):
        self.th.join(timeout)
        if self.th.is_alive():
            self.p.kill()
            self.th.join(5)
            raise Fail("swapread read --wait did not end in %d s" % timeout)
        try:
            self.json = json.loads(self.stdout)
        except ValueError:
            raise Fail("read --wait printed no JSON (exit %s): %s" %
                       (self.p.returncode, self.stderr.strip()[-300:]))
        with open(self.outfile, "rb") as f:
            self.data = f.read()
        return self.json

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()


def pages_list(pages):
    """[3,4,5,9] -> '3-5,9' (guestprog's touch list)."""
    pages = sorted(pages)
    out, i = [], 0
    while i < len(pages):
        j = i
        while j + 1 < len(pages) and pages[j + 1] == pages[j] + 1:
            j += 1
        out.append(str(pages[i]) if i == j else "%d-%d" % (pages[i], pages[j]))
        i = j + 1
    return ",".join(out)


def missing_by_page(items):
    """JSON missing items -> {page index: item} (items cover whole pages)."""
    d = {}
    for it in items:
        va, n = int(it["va"], 16), it["len"]
        for k in range(n // PAGE):
            d[(va - BUF) // PAGE + k] = it
    return d


def check_swap_names(items, pm, first, what):
    """Every missing item is a linux-swap entry whose type/offset is the
    guest pagemap's for that page; returns the pages named."""
    named = missing_by_page(items)
    for idx, it in named.items():
        e = pm[idx - first]
        check(it["kind"] == "linux-swap",
              "%s: page %d reported %s, not linux-swap" % (what, idx,
                                                           it["kind"]))
        check(e[0] == "s", "%s: page %d is %s in the guest pagemap" %
              (what, idx, e))
        check((it["swap_type"], it["swap_offset"]) == (e[1], e[2]),
              "%s: page %d: swapread says type %s offset %#x, pagemap "
              "type %d offset %#x" % (what, idx, it["swap_type"],
                                      it["swap_offset"], e[1], e[2]))
    return set(named)


def pageout(ctx, first, n):
    r = ctx.g.cmd("pageout %d %d" % (first, n))
    check(int(r["swapped"]) == n, "pageout: only %s of %d pages swapped" %
          (r["swapped"], n))
    return int(r["us"]) / 1e6


# --- scenarios ------------------------------------------------------------

def sc_translation(ctx):
    g, p = ctx.g, ctx.proc
    cr3 = g.find_cr3(*p["text"])  # VM stopped inside guestprog from here
    check(cr3 == p["cr3"], "CR3 changed: %#x -> %#x" % (p["cr3"], cr3))
    try:
        # 1. the whole buffer by VA, every page verified
        out = ctx.out("all.bin")
        r = ctx.sr("read", hex(BUF), str(NPAGES * PAGE), "--json", "-o", out)
        check(r.returncode == 0, "read exit %d: %s" % (r.returncode,
                                                       r.stderr[-300:]))
        j = json.loads(r.stdout)
        check(j["complete"], "read incomplete: %d bytes missing" %
              j["bytes_missing"])
        with open(out, "rb") as f:
            data = f.read()
        bad = ctx.bad_pages(data, BUF)
        check(not bad, "%d pages differ from the pattern (first %d)" %
              (len(bad), bad[0] if bad else 0))

        # 2. translate vs gva2gpa on a sample, user and kernel
        tlb = parse_tlb(g.hmp("info tlb"))
        rnd = random.Random(5)
        sample = [BUF + rnd.randrange(NPAGES) * PAGE + rnd.randrange(PAGE)
                  for _ in range(24)]
        sample += [p["text"][0] + rnd.randrange(p["text"][1] - p["text"][0])
                   for _ in range(8)]
        leaves = sorted(tlb.items())
        sample += [va + rnd.randrange(size) for va, (pa, size, fl) in
                   rnd.sample(leaves, 32)]
        sample += [0x1000, 0x7FFFFFFFF000, 0xFFFF800000000000 + 0x1000 *
                   rnd.randrange(1 << 20)]  # (probably) unmapped
        r = ctx.sr("translate", "--json", *[hex(v) for v in sample])
        got = [json.loads(line) for line in r.stdout.splitlines()]
        check(len(got) == len(sample), "translate printed %d of %d" %
              (len(got), len(sample)))
        agree = 0
        for va, t in zip(sample, got):
            o = g.hmp("gva2gpa %#x" % va).strip()
            if o.startswith("gpa:"):
                q = int(o.split()[1], 16)
                check(t["ok"] and int(t["gpa"], 16) == q,
                      "va %#x: gva2gpa %#x, swapread %s" %
                      (va, q, t.get("gpa") or t["status"]))
            else:
                check(not t["ok"], "va %#x: gva2gpa says %r, swapread %s" %
                      (va, o, t.get("gpa")))
            agree += 1

        # 3. maps vs info tlb over the whole address space
        r = ctx.sr("maps", "--json")
        check(r.returncode == 0, "maps exit %d: %s" % (r.returncode,
                                                       r.stderr[-300:]))
        runs = json.loads(r.stdout)
        diff = compare_maps_tlb(runs, tlb)
        check(not diff, "maps and info tlb differ: %s" % diff)
    finally:
        g.resume()
    return ("%d MiB read, %d/%d pages verified; %d/%d translate = gva2gpa;"
            " maps = info tlb (%d leaves, %d runs)" %
            (NPAGES * PAGE >> 20, NPAGES - len(bad), NPAGES, agree,
             len(sample), len(tlb), len(runs)))


def parse_tlb(text):
    """info tlb -> {va: (pa, size, flags)}; size 2M for a PSE leaf (the
    qemu64 CPU has no 1 GiB pages)."""
    d = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        va, rest = line.split(":", 1)
        pa, flags = rest.split()
        d[int(va, 16)] = (int(pa, 16), (2 << 20) if flags[2] == "P" else PAGE,
                          flags)
    return d


def norm(intervals):
    """Sorted (lo, hi, key) intervals with equal adjacent keys merged."""
    out = []
    for lo, hi, key in sorted(intervals):
        if out and out[-1][1] == lo and out[-1][2] == key:
            out[-1] = (out[-1][0], hi, key)
        else:
            out.append((lo, hi, key))
    return out


def compare_maps_tlb(runs, tlb):
    a = []
    for r in runs:
        if r["state"] != "present":
            continue  # info tlb lists present leaves only
        hi = int(r["hi"], 16) or (1 << 64)
        a.append((int(r["lo"], 16), hi, (r["writable"], r["user"], r["nx"])))
    b = [(va, va + size, (fl[8] == "W", fl[7] == "U", fl[0] == "X"))
         for va, (pa, size, fl) in tlb.items()]
    na, nb = norm(a), norm(b)
    if na == nb:
        return None
    for x, y in zip(na + [None] * len(nb), nb + [None] * len(na)):
        if x != y:
            f = lambda t: t and "%#x-%#x w,u,nx=%s" % t  # noqa: E731
            return "first difference: maps %s, tlb %s (%d vs %d runs)" % (
                f(x), f(y), len(na), len(nb))
    return "?"


def sc_swap(ctx):
    g = ctx.g
    t_host = time.monotonic()
    t_guest = pageout(ctx, 0, NPAGES)
    t_host = time.monotonic() - t_host
    ctx.figures["swap-out of 64 MiB (guest madvise)"] = "%.2f s" % t_guest
    pm = g.pagemap(0, NPAGES)
    # what a read says now (it does not wait): every chunk a swap entry,
    # type and offset as in the guest's pagemap
    r = ctx.sr("read", hex(BUF), str(NPAGES * PAGE), "--json")
    j = json.loads(r.stdout)
    named = check_swap_names(j["missing"], pm, 0, "read")
    check(len(named) == NPAGES, "read names %d of %d pages" %
          (len(named), NPAGES))
    w = Waiter(ctx, 0, NPAGES, "60s")
    time.sleep(0.5)
    check(w.running(), "read --wait ended before the touch: %s" % w.stderr)
    t_touch = time.monotonic()
    tr = g.cmd("touch 0-%d" % (NPAGES - 1))
    check(int(tr["bad"]) == 0, "guestprog saw %s bad words" % tr["bad"])
    j = w.join(60)
    check(j["status"] == "OK" and j["complete"],
          "read --wait ended %s: %s" % (j["status"], w.stderr[-300:]))
    bad = ctx.bad_pages(w.data, BUF)
    check(not bad, "%d pages wrong after the wait" % len(bad))
    big_delay = w.t_end - t_touch
    # the delay, several times on 64 pages (a fresh pageout each time)
    delays = []
    for k in range(5):
        first = 64 * (k + 1)
        pageout(ctx, first, 64)
        w = Waiter(ctx, first, 64, "30s", name="rep")
        time.sleep(0.4 + 0.3 * k)  # let the poll period back off variously
        check(w.running(), "rep %d: read ended early" % k)
        t_touch = time.monotonic()
        g.cmd("touch %d-%d" % (first, first + 63))
        j = w.join(30)
        check(j["status"] == "OK", "rep %d: %s" % (k, j["status"]))
        check(not ctx.bad_pages(w.data, w.va), "rep %d: bytes differ" % k)
        delays.append(w.t_end - t_touch)
    med = statistics.median(delays)
    ctx.figures["touch -> completion, 64 pages (median of 5)"] = (
        "%.0f ms (min %.0f, max %.0f)" % (med * 1e3, min(delays) * 1e3,
                                          max(delays) * 1e3))
    ctx.figures["touch -> completion, 64 MiB"] = "%.0f ms" % (big_delay * 1e3)
    return ("swap-out %.2f s (host %.2f s), %d chunks named linux-swap = "
            "pagemap; completed %.0f ms after the touch, 64 MiB verified; "
            "64-page median %.0f ms" % (t_guest, t_host, len(named),
                                        big_delay * 1e3, med * 1e3))


def sc_partial(ctx):
    g = ctx.g
    first, n = 1024, 64
    # (a) touched in four batches: completes only after the last
    pageout(ctx, first, n)
    w = Waiter(ctx, first, n, "30s", name="partial")
    time.sleep(0.3)
    for b in range(4):
        check(w.running(), "read ended after %d of 4 batches" % b)
        t_last = time.monotonic()
        g.cmd("touch %d-%d" % (first + 16 * b, first + 16 * b + 15))
        time.sleep(0.8 if b < 3 else 0)
    j = w.join(30)
    check(j["status"] == "OK", "batched read ended %s" % j["status"])
    check(w.t_end >= t_last, "read completed before the last batch")
    check(not ctx.bad_pages(w.data, w.va), "batched read: bytes differ")
    after_last = w.t_end - t_last
    # (b) only some touched: times out naming exactly the untouched ones
    first = 2048
    pageout(ctx, first, n)
    touched = {first + i for i in range(n) if i % 3 == 0}
    w = Waiter(ctx, first, n, "3s", name="timeout")
    time.sleep(0.3)
    g.cmd("touch " + pages_list(touched))
    j = w.join(30)
    check(w.p.returncode == 1 and j["status"] == "ETIMEDOUT",
          "partial read ended %s (exit %d)" % (j["status"], w.p.returncode))
    pm = g.pagemap(first, n)
    named = check_swap_names(j["missing"], pm, first, "timeout")
    untouched = set(range(first, first + n)) - touched
    check(named == untouched, "timeout names %d pages, %d untouched "
          "(extra %s, absent %s)" % (len(named), len(untouched),
                                     sorted(named - untouched)[:5],
                                     sorted(untouched - named)[:5]))
    exp = ctx.expected(w.va, w.len)
    for i in touched:
        o = (i - first) * PAGE
        check(w.data[o:o + PAGE] == exp[o:o + PAGE],
              "touched page %d has wrong bytes" % i)
    return ("4 batches: completed %.0f ms after the last; timeout named "
            "exactly the %d untouched pages (linux-swap = pagemap), %d "
            "touched verified" % (after_last * 1e3, len(untouched),
                                  len(touched)))


def sc_restart(ctx):
    g = ctx.g
    old = ctx.proc
    pageout(ctx, 0, NPAGES)
    # a CLI read (the library's own restart checks only) and a read with
    # the caller's probe (tests/guest/restart_probe.c), both pending
    # The CLI read's probe: guestprog's header (at BUF) names its pid in
    # its 4th word; without one, a root reused by the new process (the
    # same CR3: seen here) would hand the old read the new bytes.
    cli = Waiter(ctx, 0, 256, "8s", name="old-cli",
                 extra=["--alive", "%#x=%d" % (BUF + 24, old["pid"])])
    pout = ctx.out("old-probe.bin")
    argv = [ctx.args.restart_probe, g.ram_path, hex(old["cr3"]), hex(BUF),
            hex(BUF + 8192 * PAGE), str(256 * PAGE), str(old["pid"]), "20000",
            pout]
    ctx.log("$ " + " ".join(argv) + " &")
    pp = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        check(pp.stdout.readline().startswith("pending"),
              "the probe read did not go pending")
        time.sleep(0.5)
        check(cli.running(), "the CLI read ended before the restart")
        t_restart = time.monotonic()  # the exit command: delays count from it
        g.cmd("exit")
        g.wait_hello()
        new = ctx.start_proc(SEED2)  # same buffer VA, another pattern
        g.cmd("touch 0-%d" % (NPAGES - 1))
        pp.wait(timeout=40)
        t_probe = time.monotonic() - t_restart
        pres = pp.stdout.read().split()
    finally:
        if pp.poll() is None:
            pp.kill()
            pp.wait()
    j = cli.join(40)
    with open(pout, "rb") as f:
        pdata = f.read()
    for what, data, va in (("CLI", cli.data, cli.va),
                           ("probe", pdata, BUF + 8192 * PAGE)):
        newpages = len(data) // PAGE - len(ctx.bad_pages(data, va, new))
        check(newpages == 0, "old CR3's %s read delivered %d pages of the NEW"
              " process (new cr3 %s)" % (what, newpages, "same" if
                                         new["cr3"] == old["cr3"] else
                                         "different"))
    check(pres[:2] == ["done", "EGONE"], "the probe read ended %s, not "
          "EGONE" % " ".join(pres))
    cli_st = j["status"]
    check(cli_st == "EGONE", "the CLI read ended %s, not EGONE" % cli_st)
    note = "EGONE after %.0f ms" % ((cli.t_end - t_restart) * 1e3)
    ctx.figures["restart: CLI read (--alive canary)"] = cli_st
    return ("probe read EGONE after %.0f ms (said gone by the %s); CLI read "
            "%s; no byte of the new process (cr3 %s)" %
            (t_probe * 1e3, pres[4] if len(pres) > 4 else "?", note,
             "reused" if new["cr3"] == old["cr3"] else "new"))


def sc_regions(ctx):
    g = ctx.g
    # A producer that writes its region: every PTE writable (a page that
    # came back by a read fault is read-only in its PTE, and a scan for RW
    # runs would split there; docs/real-guest.md).
    g.cmd("dirty 0-%d" % (NPAGES - 1))
    swapped = list(range(100, 4196))  # 16 MiB of the 64 swapped out
    pageout(ctx, swapped[0], len(swapped))
    argv = [ctx.args.find_region, g.ram_path, hex(ctx.proc["cr3"]),
            str(32 << 20), "30000"]
    ctx.log("$ " + " ".join(argv))
    errf = open(ctx.out("find_region.err"), "w+")
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=errf,
                         text=True)
    try:
        lines = []
        while True:
            line = p.stdout.readline()
            check(line, "find_region ended early: %s %s" % (
                " | ".join(lines), open(errf.name).read()[-300:]))
            lines.append(line.strip())
            if line.startswith(("pending", "complete", "notfound")):
                break
        found = [x for x in lines if x.startswith("found")]
        check(found, "region not found: %s" % " | ".join(lines))
        f = found[0].split()
        lo, hi, state, present = int(f[1], 16), int(f[2], 16), f[3], int(f[4])
        check((lo, hi) == (BUF, BUF + NPAGES * PAGE),
              "found %#x-%#x, buffer is %#x-%#x" % (lo, hi, BUF,
                                                    BUF + NPAGES * PAGE))
        check(state == "mixed" and
              present == (NPAGES - len(swapped)) * PAGE,
              "region state %s present %d, expected mixed %d" %
              (state, present, (NPAGES - len(swapped)) * PAGE))
        check(lines[-1].startswith("pending"),
              "the region read did not wait: %s" % lines[-1])
        time.sleep(0.3)
        t_touch = time.monotonic()
        g.cmd("touch %d-%d" % (swapped[0], swapped[-1]))
        if ctx.args.verbose:
            r = ctx.sr("read", hex(BUF), str(NPAGES * PAGE), "--json")
            ctx.log("after the touch: %s" % r.stdout[-200:])
        p.wait(timeout=60)
        rest = p.stdout.read()
        errf.seek(0)
        err = errf.read()
        t_done = time.monotonic()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    check(p.returncode == 0, "find_region exit %d: %s %s" %
          (p.returncode, rest.strip(), err.strip()[-300:]))
    return ("found %#x-%#x (mixed, %d MiB present of 64) by sr_regions "
            "MERGE_PAGED; its read waited and completed (%s) %.0f ms after "
            "the touch" % (lo, hi, present >> 20, rest.strip(),
                           (t_done - t_touch) * 1e3))


def run_watch(ctx, extra, first, n):
    """Runs `swapread watch --json` (6 s, 50 ms polls; `extra`: a VA LEN
    range or nothing) on the test process while pages [first, first + n)
    of the buffer are paged out and, a second later, touched back. Returns
    the JSON events and the guest's pagemap of those pages before, after
    the pageout, and after the touch."""
    g = ctx.g
    pm0 = g.pagemap(first, n)
    check(all(e[0] == "p" for e in pm0), "pages not present at the start")
    argv = ([ctx.cli, "watch", g.ram_path, "--cr3", hex(ctx.proc["cr3"])] +
            extra + ["--json", "--interval", "50ms", "--duration", "6s"])
    ctx.log("$ " + " ".join(argv))
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        time.sleep(1.0)
        pageout(ctx, first, n)
        pm1 = g.pagemap(first, n)
        time.sleep(1.0)
        g.cmd("touch %d-%d" % (first, first + n - 1))
        pm2 = g.pagemap(first, n)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    check(p.returncode == 0, "watch exit %d: %s" % (p.returncode, err[-300:]))
    ev = [json.loads(x) for x in out.splitlines() if x.strip()]
    return ev, pm0, pm1, pm2


def sc_watch(ctx):
    first, n = 3072, 32
    va = BUF + first * PAGE
    ev, pm0, pm1, pm2 = run_watch(ctx, [hex(va), str(n * PAGE)], first, n)
    init, outs, ins = {}, {}, {}
    for e in ev:
        i0 = (int(e["va"], 16) - BUF) // PAGE
        if e["event"] == "initial":
            for k in range(e["len"] // PAGE):
                init[i0 + k] = (int(e["gpa"], 16) + k * PAGE
                                if e["present"] else None)
        elif e["event"] == "out":
            outs[i0] = e
        elif e["event"] == "in":
            ins[i0] = e
    for i in range(first, first + n):
        k = i - first
        check(init.get(i) == pm0[k][1] * PAGE,
              "page %d: initial gpa %s, pagemap pfn %#x" %
              (i, init.get(i), pm0[k][1]))
        check(i in outs, "page %d: no out event" % i)
        o = outs[i]
        check(o["kind"] == "linux-swap" and (o["swap_type"], o["swap_offset"])
              == (pm1[k][1], pm1[k][2]),
              "page %d: out %s type %s offset %s, pagemap %s" %
              (i, o["kind"], o.get("swap_type"), o.get("swap_offset"),
               pm1[k]))
        check(i in ins, "page %d: no in event" % i)
        check(pm2[k][0] == "p" and int(ins[i]["gpa"], 16) == pm2[k][1] * PAGE,
              "page %d: in at %s, pagemap %s" % (i, ins[i]["gpa"], pm2[k]))
    others = [e for e in ev if e["event"] not in ("initial", "out", "in")]
    return ("%d out + %d in events, all = pagemap before/after; %d other "
            "events" % (len(outs), len(ins), len(others)))


def sc_watch_space(ctx):
    """`swapread watch --cr3 X` with no range: the library's address-space
    monitor over the whole space. Every page of a 32-page slice of the
    buffer must get exactly one `unmapped` event (its swap entry = the
    pagemap's) and one `mapped` event (its frame = the pagemap's);
    events elsewhere in the space are counted, not checked."""
    first, n = 2048, 32
    ev, pm0, pm1, pm2 = run_watch(ctx, [], first, n)
    check(ev and ev[0]["event"] == "start", "no start line")
    outs, ins, others = {}, {}, 0
    for e in ev[1:]:
        va = int(e["va"], 16)
        i = (va - BUF) // PAGE
        if not (first <= i < first + n) or e.get("size") != PAGE:
            others += 1
            continue
        if e["event"] == "unmapped":
            check(i not in outs, "page %d: two unmapped events" % i)
            outs[i] = e
        elif e["event"] == "mapped":
            check(i not in ins, "page %d: two mapped events" % i)
            ins[i] = e
        else:
            others += 1
    for i in range(first, first + n):
        k = i - first
        check(i in outs, "page %d: no unmapped event" % i)
        o, w = outs[i], outs[i]["old"]
        check(w["mapped"] and int(w["gpa"], 16) == pm0[k][1] * PAGE,
              "page %d: unmapped from %s, pagemap pfn %#x" %
              (i, w.get("gpa"), pm0[k][1]))
        now = o["now"]
        check(now["kind"] == "linux-swap" and
              (now["swap_type"], now["swap_offset"]) == (pm1[k][1], pm1[k][2]),
              "page %d: unmapped to %s type %s offset %s, pagemap %s" %
              (i, now.get("kind"), now.get("swap_type"),
               now.get("swap_offset"), pm1[k]))
        check(i in ins, "page %d: no mapped event" % i)
        check(pm2[k][0] == "p" and
              int(ins[i]["now"]["gpa"], 16) == pm2[k][1] * PAGE,
              "page %d: mapped at %s, pagemap %s" %
              (i, ins[i]["now"]["gpa"], pm2[k]))
    return ("whole space: %d unmapped + %d mapped events = pagemap "
            "before/after; %d events elsewhere" % (len(outs), len(ins),
                                                   others))


SCENARIOS = [("translation", sc_translation), ("swap", sc_swap),
             ("partial", sc_partial), ("regions", sc_regions),
             ("watch", sc_watch), ("watch-space", sc_watch_space),
             ("restart", sc_restart)]


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    top = os.path.dirname(os.path.dirname(here))
    ap.add_argument("--cli", default=os.path.join(top, "build", "swapread"))
    ap.add_argument("--guest-dir", default=os.path.join(top, "build",
                                                        "guest"))
    ap.add_argument("--find-region", default=None)
    ap.add_argument("--restart-probe", default=None)
    ap.add_argument("--only", default="")
    ap.add_argument("--verbose", "-v", action="store_true")
    args = ap.parse_args()
    args.find_region = args.find_region or os.path.join(args.guest_dir,
                                                        "find_region")
    args.restart_probe = args.restart_probe or os.path.join(args.guest_dir,
                                                            "restart_probe")
    only = set(filter(None, args.only.split(",")))
    ctx = Ctx(args)
    passed = failed = 0
    t_all = time.monotonic()
    try:
        with gl.Guest(args.guest_dir) as g:
            ctx.g = g
            try:
                g.start()
            except gl.GuestError as e:
                print("FAIL boot: %s" % e, flush=True)
                print("0 passed, 1 failed")
                return 1
            print("guest booted in %.1f s (TCG, 256 MiB, RAM file %s)" %
                  (g.boot_s, g.ram_path), flush=True)
            ctx.figures["boot to guestprog ready"] = "%.1f s" % g.boot_s
            ctx.start_proc(SEED1)
            for name, fn in SCENARIOS:
                if only and name not in only:
                    continue
                t0 = time.monotonic()
                try:
                    # every scenario starts with the whole buffer present
                    g.cmd("touch 0-%d" % (NPAGES - 1))
                    msg = fn(ctx)
                    passed += 1
                    print("PASS %-11s %s [%.1f s]" % (name, msg,
                                                      time.monotonic() - t0),
                          flush=True)
                except (Fail, gl.GuestError) as e:
                    failed += 1
                    print("FAIL %-11s %s [%.1f s]" % (name, e,
                                                      time.monotonic() - t0),
                          flush=True)
                    if args.verbose:
                        traceback.print_exc()
                    if isinstance(e, gl.GuestError):
                        break  # the guest is not usable any more
                except Exception as e:  # a bug of the test: still a failure
                    failed += 1
                    print("FAIL %-11s %s: %s" % (name, type(e).__name__, e),
                          flush=True)
                    traceback.print_exc()
    finally:
        import shutil
        shutil.rmtree(ctx.tmp, ignore_errors=True)
    for k, v in ctx.figures.items():
        print("figure: %s: %s" % (k, v))
    print("figure: check-guest wall time: %.1f s" % (time.monotonic() - t_all))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
