#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

    python3 tests/fuzz/make_seeds.py [corpus-dir]

Deterministic (no randomness): each seed is a small, meaningful input in the
format its target decodes (see the comment at the top of each fuzz_*.c).
image: raw files, ELF cores (QEMU dump-guest-memory shape, PN_XNUM,
truncated, overlapping loads), trailing parameter bytes. translate: 4- and
5-level tables with 4K/2M/1G leaves, every non-present kind, reserved bits,
tables in a hole / past the file, a self-map, the top of the address space.
engine: operation lists (page-out/read/page-in/poll, deadlines, partial
reads, cancels of every kind, invalidation, re-entrant hooks, joins,
resident reads, garbage entries).
"""
import os
import struct
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "corpus")
M64 = (1 << 64) - 1


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def u8(v): return struct.pack("<B", v & 0xff)
def u16(v): return struct.pack("<H", v & 0xffff)
def u32(v): return struct.pack("<I", v & 0xffffffff)
def u64(v): return struct.pack("<Q", v & M64)


# --- image ------------------------------------------------------------------
def params(*vals):
    """64 trailing parameter bytes (the target reads them from the end)."""
    b = b"".join(vals)
    return (b + bytes(64))[:64]


def elf(loads, phnum=None, shoff_xnum=False, data=b""):
    """ELF64 ET_CORE EM_X86_64: a PT_NOTE, then loads (paddr, filesz,
    memsz, offset)."""
    phs = [(4, 0, 0, 0, 0)] + [(1,) + l for l in loads]
    n = len(phs)
    e_phnum = 0xffff if shoff_xnum else (n if phnum is None else phnum)
    shoff = 64 + 56 * n if shoff_xnum else 0
    hdr = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)
    hdr += struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, 64, shoff, 0, 64, 56,
                       e_phnum, 64 if shoff_xnum else 0,
                       1 if shoff_xnum else 0, 0)
    body = b""
    for p in phs:
        typ, paddr, filesz, memsz, off = p
        body += struct.pack("<IIQQQQQQ", typ, 0, off, 0, paddr, filesz,
                            memsz, 0)
    out = hdr + body
    if shoff_xnum:  # section header 0: sh_info holds the count
        out += struct.pack("<IIQQQQIIQQ", 0, 0, 0, 0, 0, 0, 0, n, 0, 0)
    out = out.ljust(4096, b"\0") + data
    return out


def image_seeds():
    page = bytes((i * 7 + 3) & 0xff for i in range(4096))
    put("image", "raw-4k", page + params(u8(0), u32(0x3000)))
    put("image", "raw-segments",
        page * 2 + params(u8(2), u32(0x1800), u8(3),
                          u8(2), u16(0), u16(1), u8(7), u16(2)))
    put("image", "tiny", b"\x7fEL")
    put("image", "empty", b"")
    put("image", "elf-two-loads",
        elf([(0, 4096, 4096, 4096), (0x100000, 4096, 8192, 8192)],
            data=page * 2) + params(u8(4), u8(0), u32(0x100ff0)))
    put("image", "elf-pn-xnum",
        elf([(0, 4096, 4096, 4096), (1 << 32, 4096, 4096, 8192)],
            shoff_xnum=True, data=page) + params(u8(1)))
    put("image", "elf-truncated",
        elf([(0x1000, 0x10000, 0x10000, 4096)], data=page) + params(u8(0)))
    put("image", "elf-overlap",
        elf([(0, 8192, 8192, 4096), (4096, 4096, 4096, 4096)], data=page))
    put("image", "elf-bad-phoff", elf([(0, 4096, 4096, 4096)],
                                       phnum=2000)[:200])
    put("image", "pc-q35", page + params(u8(0), u32(0), u8(0), u8(0),
                                         u8(4), u32(0xe0000000), u8(2),
                                         u8(6), u32(0x40000000), u8(0)))


# --- translate --------------------------------------------------------------
P, RW, US, PS, G, NX = 1, 2, 4, 0x80, 0x100, 1 << 63
TBL = P | RW | US


class Ram:
    def __init__(self, size=0x8000):
        self.b = bytearray(size)

    def set(self, table, idx, val):
        struct.pack_into("<Q", self.b, table + 8 * idx, val & M64)


def idx(va, level):
    return (va >> (12 + 9 * (level - 1))) & 511


def linux_swap(typ, off):
    return ((((~off) & M64) << 14) & M64) >> 5 | (typ << 59)


def trim(ram):
    """The RAM up to its last non-zero entry (the target pads to 8)."""
    b = bytes(ram.b).rstrip(b"\0")
    return b + bytes(-len(b) % 8)


def tr_header(f, mpa_sel, cr3_page, lo, width, va_raw, span_shift=0,
              raw_opts=0, cr3_low=0, cr3_raw=0, va_mode=(0, 0, 0, 0)):
    h = (u8(f) + u8(mpa_sel) + u8(raw_opts) + u8(span_shift) + u16(cr3_page)
         + u16(cr3_low) + u64(cr3_raw) + u64(lo) + u32(width)
         + bytes(va_mode) + b"".join(u64(v) for v in va_raw))
    assert len(h) == 64
    return h


def linux_tables(win=False, five=False):
    """Root 0x1000, PDPT 0x4000, PD 0x5000, PT 0x6000, data 0x7000 (the
    hole of the hole layout is 0x2000..0x4000)."""
    r = Ram()
    va = 0x7f0000000000
    root, pdpt, pd, pt = 0x1000, 0x4000, 0x5000, 0x6000
    if five:  # PML5[0] -> the same page used as PML4
        r.set(root, idx(va, 5), root | TBL)
    r.set(root, idx(va, 4), pdpt | TBL)
    r.set(root, 0x1ed, root | P | RW)  # self-map
    r.set(pdpt, 0, pd | TBL)
    r.set(pdpt, 1, 0x40000000 | P | RW | PS)  # 1 GiB leaf
    r.set(pd, 0, pt | TBL)
    r.set(pd, 1, 0x200000 | P | RW | US | PS | NX)  # 2 MiB leaf
    r.set(pd, 2, 0x202000 | P | PS)  # bit 13: reserved in a 2M leaf
    r.set(pd, 3, linux_swap(1, 7) if not win else (9 << 32) | (4 << 5))
    r.set(pd, 4, 0x2000 | TBL)  # a table in the hole (hole layout)
    r.set(pd, 5, 0x100000 | TBL)  # a table past the file
    r.set(pt, 0, 0x7000 | P | RW | US | 0x60)
    if not win:
        r.set(pt, 1, linux_swap(1, 42))
        r.set(pt, 2, ((~0x7000) & 0x000ffffffffff000) | 0x20 | G)  # protnone
        r.set(pt, 6, 0x80)  # unknown
    else:
        r.set(pt, 1, (42 << 32) | (3 << 12) | (4 << 5))  # pagefile
        r.set(pt, 2, 0x7000 | (1 << 11) | (4 << 5))  # transition
        r.set(pt, 6, ((0xffffa00000001230 << 16) & M64) | (1 << 10))
    r.set(pt, 4, 0x8000 | P | NX)
    r.set(pt, 5, 0x7000 | P | (1 << 50))  # reserved below MAXPHYADDR 52
    r.set(pd, 6, 0x5000 | (1 << 11) | (4 << 5))  # win transition table
    return r


def translate_seeds():
    lo = 0x7f0000000000
    vas = (0x1234, 0x2000, 0x200abc, 0x5123)
    mpa52 = 1  # odd selector: MAXPHYADDR 0 (52)
    put("translate", "linux-4level",
        tr_header(0, mpa52, 1, lo, 0x100000, vas, span_shift=8)
        + trim(linux_tables()))
    put("translate", "windows-resident",
        tr_header(2 | 4, mpa52, 1, lo, 0x100000,
                  (0x1000, 0x2000, 0x6000, 0xc00000), span_shift=6)
        + trim(linux_tables(win=True)))
    put("translate", "five-level",
        tr_header(1, mpa52, 1, lo, 0x100000, vas, span_shift=8)
        + trim(linux_tables(five=True)))
    put("translate", "hole-layout",
        tr_header(8, mpa52, 1, lo + 0x800000, 0x800000,
                  (0x0, 0x1000, 0x200000, 0x3ff000))
        + trim(linux_tables()))
    # the top of the address space: PML4[511] -> PDPT -> PD -> PT
    r = Ram()
    top = 0xfffffffff0000000
    r.set(0x1000, 511, 0x0000 | TBL)
    r.set(0x0000, idx(top, 3), 0x4000 | TBL)
    r.set(0x4000, idx(top, 2), 0x5000 | TBL)
    r.set(0x4000, 511, 0x2000 | TBL)
    r.set(0x5000, 0, 0x7000 | P | RW)
    r.set(0x5000, 511, linux_swap(2, 99))
    put("translate", "top-of-space",
        tr_header(0x80, mpa52, 1, top, 0x1000, (0, 0x1ff000, 0xfffff, 0)) +
        trim(r))
    put("translate", "bad-opts",
        tr_header(0x40, mpa52, 1, lo, 0x1000, vas, raw_opts=0x27)
        + bytes(linux_tables().b[:0x2000]).rstrip(b"\0"))


# --- engine -----------------------------------------------------------------
# Entry indices (fuzz_engine.c world_init): 0..2 space 0 L4/L3/L2(PT ptr),
# 3..5 space 1 L4/L3/L2, 6 space 0 2M leaf, 7..22 space 0 pages,
# 23..38 space 1 pages.
def rd(space=0, page=0, npages=1, partial=False, join=False, tsel=255,
       hook=0, hook_arg=0, big=False, off=None):
    m = space | (2 if partial else 0) | (4 if join else 0)
    if big:
        m |= 8
        tail = u32(off or 0)
    elif off is None:
        m |= 16
        tail = u8(page)
    else:
        tail = u32(off)
    return (u8(0) + u8(m) + u16(npages * 4096 - 1) + u8(tsel) + u8(hook)
            + u8(hook_arg) + tail)


def poll(ms4=4, big=None):
    return u8(3) + (u8(0x80) + u16(big) if big is not None else u8(ms4))


def out(ent, k=0, off=1): return u8(5) + u8(ent) + u8(k) + u8(off)
def pin(ent): return u8(6) + u8(ent)
def setent(ent, how, raw=0): return u8(7) + u8(ent) + u8(how) + u64(raw)
def cancel(i): return u8(8) + u8(i & 0x7f)
def cancel_stale(): return u8(8) + u8(0xc0)
def cancel_cr3(space, gone=False): return u8(9 + (120 if gone else 0)) + u8(space)
def cancel_all(): return u8(10)
def invalidate(): return u8(130)
def counts(): return u8(11)


def engine_seeds():
    cfg = lambda os=0, res=0, mpa46=0, budget=0, dflt=0: (
        u8(os | (res << 1) | (mpa46 << 2)) + u8(budget) + u8(dflt))
    put("engine", "out-read-in-poll",
        cfg() + out(7) + rd(0, 0, 3) + poll() + pin(7) + poll() + counts())
    put("engine", "deadline-partial",
        cfg(dflt=20) + out(8) + out(9, 1) + rd(0, 0, 4, partial=True, tsel=5)
        + rd(0, 1, 2, tsel=0) + poll(big=10) + counts())
    put("engine", "cancels",
        cfg(budget=2) + out(10) + out(25) + rd(0, 2, 2) + rd(1, 1, 3)
        + rd(0, 3, 1) + cancel(0) + cancel(0) + cancel_stale()
        + cancel_cr3(1, gone=True) + cancel_all() + counts())
    put("engine", "invalidate",
        cfg() + out(2) + rd(0, 0, 2) + rd(1, 0, 2) + out(24) + rd(1, 1, 1)
        + invalidate() + rd(0, 0, 1) + pin(2) + poll() + counts())
    put("engine", "hooks",
        cfg() + out(7) + out(8) + b"".join(
            rd(0, i % 2, 1, hook=h, hook_arg=i) for i, h in
            enumerate((1, 2, 3, 4, 5, 6, 4, 3))) + pin(7) + pin(8) + poll()
        + poll(big=2000))
    put("engine", "windows-resident",
        cfg(os=1, res=1) + out(7, 2) + out(2, 2) + out(8, 0) + rd(0, 0, 3)
        + poll() + pin(8) + poll() + pin(2) + poll())
    put("engine", "linux-protnone-resident",
        cfg(res=1) + out(7, 2) + out(6, 2) + rd(0, 0, 2)
        + rd(0, big=True, off=0x1ff800, npages=1) + poll())
    put("engine", "garbage",
        cfg(mpa46=1) + setent(2, 2, 0x3) + rd(0, 0, 2) + setent(2, 0x80)
        + setent(9, 0, 0xdeadbeef00) + setent(0, 3) + rd(0, 2, 1) + poll()
        + setent(0, 0x80) + setent(10, 1, 0x6) + rd(0, 3, 1) + poll())
    put("engine", "huge-page",
        cfg() + out(6) + rd(0, big=True, off=0x1ff000, npages=3)
        + rd(0, big=True, off=0x3000, npages=1) + pin(6) + poll())
    put("engine", "join",
        cfg() + out(11) + rd(0, 4, 1, join=True) + rd(0, 4, 1, join=True)
        + rd(0, 4, 1, join=True, tsel=3) + cancel(0) + poll(big=5) + pin(11)
        + poll())
    put("engine", "pde-out",
        cfg(budget=1) + out(2, 0) + out(5, 1) + rd(0, 0, 4) + rd(1, 5, 2)
        + poll() + pin(2) + poll() + poll() + pin(5) + poll() + poll())


if __name__ == "__main__":
    image_seeds()
    translate_seeds()
    engine_seeds()
