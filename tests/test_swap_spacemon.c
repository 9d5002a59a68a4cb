/* Address-space monitors (<swapread/spacemon.h>) over kit images with a
 * fake clock: quiet polls, page-out / page-in of 4 KiB leaves and of whole
 * page tables (one event per leaf that was mapped), a PTE and its PDE
 * changed in the same poll (the PDE's subtree diffed once, no stale
 * event), protection inherited from a PDE, accessed/dirty bits only when
 * asked, a 2 MiB page split over the same frames (quiet), ranges, budgets
 * that resume, a table moved to another place (REUSED), the table limit
 * (UNTRACKED), callbacks, CLOSED from the engine, every allocation failed
 * in turn, and a seeded property test: the 4 KiB pages the events cover
 * are exactly the pages whose translation (sr_translate) changed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <swapread/spacemon.h>

#include "support/swap_fixture.h"

#define MAX_EVENTS 4096
#define RW_U (SR_PROT_W | SR_PROT_U)
#define PTE_A UINT64_C(0x20)
#define PTE_D UINT64_C(0x40)

typedef struct st_s st_t;

struct st_s {
  swapfx_t* fx;
  swapfx_alloc_t alloc;
  sr_spacemon_t* sm;
  sr_spacemon_event_t ev[MAX_EVENTS];
  int nev;
  int nclosed;
  int free_rc; /* what sr_spacemon_free returned inside the callback */
  bool try_free;
};

static void record(sr_spacemon_t* sm, const sr_spacemon_event_t* ev,
                   void* data) {
  st_t* t = data;
  if (ev->kind == SR_SPACEMON_CLOSED)
    t->nclosed++;
  if (t->nev < MAX_EVENTS)
    t->ev[t->nev] = *ev;
  t->nev++;
  if (t->try_free)
    t->free_rc = sr_spacemon_free(sm);
}

static int setup(void** state) {
  st_t* t = calloc(1, sizeof(*t));
  sr_swap_opts_t opts;

  if (t == NULL)
    return -1;
  swapfx_alloc_init(&t->alloc);
  memset(&opts, 0, sizeof(opts));
  opts.allocator = &t->alloc.hook;
  if (swapfx_new(&t->fx, 0, &opts) != 0) {
    free(t);
    return -1;
  }
  *state = t;
  return 0;
}

static int teardown(void** state) {
  st_t* t = *state;
  swapfx_free(t->fx); /* a monitor left is CLOSED and freed here */
  assert_int_equal(t->alloc.live_bytes, 0);
  assert_int_equal(t->alloc.size_mismatch, 0);
  free(t);
  return 0;
}

static void start(st_t* t, const sr_spacemon_opts_t* opts) {
  assert_int_equal(
      sr_spacemon_new(&t->sm, t->fx->swap, t->fx->cr3, opts, record, t), 0);
  assert_non_null(t->sm);
}

static int poll_now(st_t* t) {
  t->nev = 0;
  return swapfx_poll(t->fx, NULL);
}

static void map(st_t* t, uint64_t va, uint64_t len, uint64_t page) {
  assert_int_equal(swapfx_map(t->fx, t->fx->cr3, va, len, page, RW_U, 1), 0);
}

static uint64_t frame(st_t* t, uint64_t va, int level) {
  uint64_t f = swapfx_frame(t->fx, t->fx->cr3, va, level);
  assert_true(f != 0);
  return f;
}

static uint64_t get_entry(st_t* t, uint64_t va, int level) {
  uint64_t e = 0;
  assert_int_equal(sr_kit_get_entry(t->fx->kit, t->fx->cr3, va, level, &e), 0);
  return e;
}

static void set_entry(st_t* t, uint64_t va, int level, uint64_t value) {
  assert_int_equal(
      sr_kit_set_entry(t->fx->kit, t->fx->cr3, va, level, value, NULL), 0);
}

static uint64_t new_frame(st_t* t, uint64_t size) {
  uint64_t gpa = 0;
  assert_int_equal(sr_kit_alloc(t->fx->kit, size, size, &gpa), 0);
  return gpa;
}

/* The number of recorded events of kind. */
static int count_kind(const st_t* t, int kind) {
  int i, n = 0;
  for (i = 0; i < t->nev && i < MAX_EVENTS; i++)
    n += t->ev[i].kind == (sr_spacemon_event_kind_t)kind;
  return n;
}

/* The recorded event at va, or NULL. */
static const sr_spacemon_event_t* event_at(const st_t* t, uint64_t va) {
  int i;
  for (i = 0; i < t->nev && i < MAX_EVENTS; i++)
    if (t->ev[i].va == va)
      return &t->ev[i];
  return NULL;
}

/* Nothing changed: no event, and one snapshot per table of the walk
 * (PML4, PDPT, PD, PT for one 4 KiB range). */
static void test_spacemon_quiet_when_nothing_changes(void** state) {
  st_t* t = *state;
  sr_spacemon_stats_t s;
  int i;

  map(t, SWAPFX_VA, 8 * 4096, SR_PAGE_4K);
  start(t, NULL);
  sr_spacemon_stats(t->sm, &s);
  assert_int_equal(s.tables, 4);
  assert_int_equal(s.untracked, 0);
  assert_true(s.bytes >= 4 * 4096);
  for (i = 0; i < 3; i++) {
    assert_int_equal(poll_now(t), 0);
    assert_int_equal(t->nev, 0);
  }
  sr_spacemon_stats(t->sm, &s);
  assert_int_equal(s.passes, 3);
  assert_int_equal(s.tables_changed, 0);
  assert_int_equal(s.tables_compared, 3 * 4);
  assert_int_equal(swapfx_stats(t->fx).spacemons, 1);
}

/* A 4 KiB page swapped out is one UNMAPPED event with the frame it had;
 * swapped back in, one MAPPED event with its frame. */
static void test_spacemon_page_out_and_in(void** state) {
  st_t* t = *state;
  uint64_t va = SWAPFX_VA + 3 * 4096, f;
  const sr_spacemon_event_t* ev;

  map(t, SWAPFX_VA, 8 * 4096, SR_PAGE_4K);
  f = frame(t, va, 1);
  start(t, NULL);
  assert_int_equal(swapfx_out_swap(t->fx, t->fx->cr3, va, 1, 0x55), 0);
  poll_now(t);
  assert_int_equal(t->nev, 1);
  ev = &t->ev[0];
  assert_int_equal(ev->kind, SR_SPACEMON_UNMAPPED);
  assert_int_equal(ev->va, va);
  assert_int_equal(ev->size, SR_PAGE_4K);
  assert_int_equal(ev->bits, SR_SPACEMON_PRESENT);
  assert_true(ev->old.mapped);
  assert_int_equal(ev->old.gpa, f);
  assert_int_equal(ev->old.prot, RW_U);
  assert_false(ev->now.mapped);
  assert_int_equal(ev->now.level, 1);
  assert_int_equal(sr_pte_classify(ev->now.entry, 1, SR_OS_LINUX, NULL),
                   SR_PTE_LINUX_SWAP);
  assert_int_equal(ev->cr3, t->fx->cr3);

  assert_int_equal(swapfx_in(t->fx, t->fx->cr3, va, 1), 0);
  poll_now(t);
  assert_int_equal(t->nev, 1);
  assert_int_equal(t->ev[0].kind, SR_SPACEMON_MAPPED);
  assert_int_equal(t->ev[0].va, va);
  assert_int_equal(t->ev[0].now.gpa, f);
  poll_now(t);
  assert_int_equal(t->nev, 0);
}

/* A PDE paged out: one UNMAPPED event per 4 KiB leaf that was mapped
 * under it (not for the empty entries of its table); back in: one MAPPED
 * event each. Kernel-half addresses come out canonical. */
static void test_spacemon_table_out_reports_each_leaf(void** state) {
  st_t* t = *state;
  uint64_t va = SWAPFX_KVA + 16 * 4096;
  uint64_t f[20];
  int i;

  map(t, va, 20 * 4096, SR_PAGE_4K);
  for (i = 0; i < 20; i++)
    f[i] = frame(t, va + (uint64_t)i * 4096, 1);
  start(t, NULL);
  assert_int_equal(swapfx_out_none(t->fx, t->fx->cr3, va, 2), 0);
  poll_now(t);
  assert_int_equal(t->nev, 20);
  for (i = 0; i < 20; i++) {
    assert_int_equal(t->ev[i].kind, SR_SPACEMON_UNMAPPED);
    assert_int_equal(t->ev[i].va, va + (uint64_t)i * 4096); /* in order */
    assert_int_equal(t->ev[i].size, SR_PAGE_4K);
    assert_int_equal(t->ev[i].old.gpa, f[i]);
    assert_int_equal(t->ev[i].now.level, 2);
  }
  assert_int_equal(swapfx_in(t->fx, t->fx->cr3, va, 2), 0);
  poll_now(t);
  assert_int_equal(t->nev, 20);
  for (i = 0; i < 20; i++) {
    assert_int_equal(t->ev[i].kind, SR_SPACEMON_MAPPED);
    assert_int_equal(t->ev[i].now.gpa, frame(t, t->ev[i].va, 1));
  }
}

/* A PTE swapped out and its PDE cleared before the same poll: the PDE's
 * subtree is diffed against the snapshot once, so each of the 4 leaves
 * gets one UNMAPPED event (stopped at the PD level) and nothing is said
 * of the PTE change on its own. */
static void test_spacemon_higher_level_first(void** state) {
  st_t* t = *state;
  uint64_t va = SWAPFX_VA;
  int i;

  map(t, va, 4 * 4096, SR_PAGE_4K);
  start(t, NULL);
  assert_int_equal(swapfx_out_swap(t->fx, t->fx->cr3, va + 4096, 1, 9), 0);
  assert_int_equal(swapfx_out_none(t->fx, t->fx->cr3, va, 2), 0);
  poll_now(t);
  assert_int_equal(t->nev, 4);
  for (i = 0; i < 4; i++) {
    assert_int_equal(t->ev[i].kind, SR_SPACEMON_UNMAPPED);
    assert_int_equal(t->ev[i].now.level, 2);
  }
  /* Back in: the PTE is still swapped out in the restored table. */
  assert_int_equal(swapfx_in(t->fx, t->fx->cr3, va, 2), 0);
  poll_now(t);
  assert_int_equal(t->nev, 3);
  assert_null(event_at(t, va + 4096));
}

/* Clearing RW in a PDE changes the effective protection of every leaf
 * under it: one CHANGED (WRITABLE) event each, frames unchanged. */
static void test_spacemon_inherited_protection(void** state) {
  st_t* t = *state;
  uint64_t va = SWAPFX_VA;
  int i;

  map(t, va, 3 * 4096, SR_PAGE_4K);
  start(t, NULL);
  set_entry(t, va, 2, get_entry(t, va, 2) & ~SWAPFX_RW);
  poll_now(t);
  assert_int_equal(t->nev, 3);
  for (i = 0; i < 3; i++) {
    assert_int_equal(t->ev[i].kind, SR_SPACEMON_CHANGED);
    assert_int_equal(t->ev[i].bits, SR_SPACEMON_WRITABLE);
    assert_int_equal(t->ev[i].old.prot, RW_U);
    assert_int_equal(t->ev[i].now.prot, SR_PROT_U);
    assert_int_equal(t->ev[i].old.gpa, t->ev[i].now.gpa);
  }
}

/* The CPU setting accessed/dirty bits is not an event by default; with
 * ACCESSED | DIRTY monitored it is, with those bits only. */
static void test_spacemon_accessed_dirty_only_when_asked(void** state) {
  st_t* t = *state;
  sr_spacemon_opts_t o;
  uint64_t va = SWAPFX_VA;

  map(t, va, 2 * 4096, SR_PAGE_4K);
  start(t, NULL);
  set_entry(t, va, 1, get_entry(t, va, 1) | PTE_A | PTE_D);
  set_entry(t, va, 2, get_entry(t, va, 2) | PTE_A);
  poll_now(t);
  assert_int_equal(t->nev, 0);
  assert_int_equal(sr_spacemon_free(t->sm), 0);

  memset(&o, 0, sizeof(o));
  o.bits = SR_SPACEMON_DEFAULT_BITS | SR_SPACEMON_ACCESSED | SR_SPACEMON_DIRTY;
  start(t, &o);
  set_entry(t, va + 4096, 1, get_entry(t, va + 4096, 1) ^ PTE_A);
  set_entry(t, va, 1, get_entry(t, va, 1) & ~PTE_D);
  poll_now(t);
  assert_int_equal(t->nev, 2);
  assert_int_equal(event_at(t, va)->bits, SR_SPACEMON_DIRTY);
  assert_int_equal(event_at(t, va + 4096)->bits, SR_SPACEMON_ACCESSED);
  assert_int_equal(event_at(t, va)->kind, SR_SPACEMON_CHANGED);
}

/* A 2 MiB page replaced by a page table over the same frames maps every
 * VA where it was: no event. Moving one 4 KiB frame of it: one CHANGED
 * (FRAME) event of 4 KiB. */
static void test_spacemon_split_2m_same_frames_is_quiet(void** state) {
  st_t* t = *state;
  uint64_t va = SWAPFX_VA, pde, big, pt, e, other;
  uint64_t table[512];
  int i;

  map(t, va, SR_PAGE_2M, SR_PAGE_2M);
  pde = get_entry(t, va, 2);
  big = frame(t, va, 2);
  pt = new_frame(t, 4096);
  for (i = 0; i < 512; i++)
    table[i] = (big + (uint64_t)i * 4096) |
               (pde & (SWAPFX_P | SWAPFX_RW | SWAPFX_US | SWAPFX_NX));
  assert_int_equal(sr_kit_write_phys(t->fx->kit, pt, table, sizeof(table)), 0);
  start(t, NULL);
  set_entry(t, va, 2, pt | SWAPFX_TABLE);
  poll_now(t);
  assert_int_equal(t->nev, 0);

  other = new_frame(t, 4096);
  e = get_entry(t, va + 7 * 4096, 1);
  set_entry(t, va + 7 * 4096, 1, (e & ~SWAPFX_ADDR) | other);
  poll_now(t);
  assert_int_equal(t->nev, 1);
  assert_int_equal(t->ev[0].kind, SR_SPACEMON_CHANGED);
  assert_int_equal(t->ev[0].bits, SR_SPACEMON_FRAME);
  assert_int_equal(t->ev[0].va, va + 7 * 4096);
  assert_int_equal(t->ev[0].size, SR_PAGE_4K);
  assert_int_equal(t->ev[0].old.gpa, big + 7 * 4096);
  assert_int_equal(t->ev[0].now.gpa, other);

  /* Back to one 2 MiB leaf: only the moved page differs again. */
  set_entry(t, va, 2, pde);
  poll_now(t);
  assert_int_equal(t->nev, 1);
  assert_int_equal(t->ev[0].va, va + 7 * 4096);
  assert_int_equal(t->ev[0].now.gpa, big + 7 * 4096);
}

/* Swap slots changing under an unmapped page are events only with
 * SR_SPACEMON_SWAP. */
static void test_spacemon_swap_slot_changes(void** state) {
  st_t* t = *state;
  sr_spacemon_opts_t o;
  uint64_t va = SWAPFX_VA;
  sr_pte_info_t info;
  uint64_t e;

  map(t, va, 4096, SR_PAGE_4K);
  assert_int_equal(swapfx_out_swap(t->fx, t->fx->cr3, va, 1, 10), 0);
  memset(&o, 0, sizeof(o));
  o.bits = SR_SPACEMON_DEFAULT_BITS | SR_SPACEMON_SWAP;
  start(t, &o);
  memset(&info, 0, sizeof(info));
  info.kind = SR_PTE_LINUX_SWAP;
  info.swap_type = 1;
  info.swap_offset = 11;
  assert_int_equal(sr_kit_encode(&info, 1, &e), 0);
  set_entry(t, va, 1, e);
  poll_now(t);
  assert_int_equal(t->nev, 1);
  assert_int_equal(t->ev[0].kind, SR_SPACEMON_CHANGED);
  assert_int_equal(t->ev[0].bits, SR_SPACEMON_SWAP);
  assert_int_equal(t->ev[0].now.entry, e);
}

/* Only leaves inside [lo, hi) are reported. */
static void test_spacemon_range(void** state) {
  st_t* t = *state;
  sr_spacemon_opts_t o;
  uint64_t va = SWAPFX_VA;
  int i;

  map(t, va, 8 * 4096, SR_PAGE_4K);
  map(t, va + SR_PAGE_1G, 4096, SR_PAGE_4K);
  memset(&o, 0, sizeof(o));
  o.lo = va + 2 * 4096;
  o.hi = va + 6 * 4096;
  start(t, &o);
  for (i = 0; i < 8; i++)
    assert_int_equal(
        swapfx_out_swap(t->fx, t->fx->cr3, va + (uint64_t)i * 4096, 1, 1 + i),
        0);
  assert_int_equal(swapfx_out_none(t->fx, t->fx->cr3, va + SR_PAGE_1G, 1), 0);
  poll_now(t);
  assert_int_equal(t->nev, 4);
  for (i = 0; i < 4; i++)
    assert_int_equal(t->ev[i].va, va + (uint64_t)(i + 2) * 4096);
}

/* With a budget of 2 tables a poll compares at most the budget plus the
 * tables above the cursor, and a change in each of 16 page tables is
 * reported within a bounded number of polls, each exactly once. */
static void test_spacemon_budget_resumes(void** state) {
  st_t* t = *state;
  sr_spacemon_opts_t o;
  sr_spacemon_stats_t s0, s1;
  uint64_t va = SWAPFX_VA;
  int i, polls, total = 0;
  bool seen[16] = {false};

  map(t, va, 16 * SR_PAGE_2M, SR_PAGE_4K);
  memset(&o, 0, sizeof(o));
  o.budget = 2;
  start(t, &o);
  for (i = 0; i < 16; i++)
    assert_int_equal(
        swapfx_out_swap(t->fx, t->fx->cr3, va + (uint64_t)i * SR_PAGE_2M + 4096,
                        1, 100 + i),
        0);
  for (polls = 0; polls < 40 && total < 16; polls++) {
    sr_spacemon_stats(t->sm, &s0);
    poll_now(t);
    sr_spacemon_stats(t->sm, &s1);
    assert_true(s1.tables_compared - s0.tables_compared <= 2 + 3);
    for (i = 0; i < t->nev; i++) {
      uint64_t k = (t->ev[i].va - va) / SR_PAGE_2M;
      assert_int_equal(t->ev[i].kind, SR_SPACEMON_UNMAPPED);
      assert_true(k < 16);
      assert_false(seen[k]);
      seen[k] = true;
    }
    total += t->nev;
  }
  assert_int_equal(total, 16);
  assert_true(polls > 4); /* the budget did cut the passes */
  poll_now(t);
  assert_int_equal(t->nev, 0);
}

/* A page table moved from one PDE to another between polls: the leaves
 * at the old place are UNMAPPED, those at the new place MAPPED, and the
 * move is reported (REUSED, with where the table was). */
static void test_spacemon_table_moved_is_reused(void** state) {
  st_t* t = *state;
  uint64_t a = SWAPFX_VA, b = SWAPFX_VA + 4 * SR_PAGE_2M, pde;
  const sr_spacemon_event_t* ev = NULL;
  int i;

  map(t, a, 2 * 4096, SR_PAGE_4K);
  map(t, b + SR_PAGE_2M, 4096, SR_PAGE_4K); /* makes b's PD exist */
  start(t, NULL);
  pde = get_entry(t, a, 2);
  set_entry(t, a, 2, 0);
  set_entry(t, b, 2, pde);
  poll_now(t);
  assert_int_equal(count_kind(t, SR_SPACEMON_UNMAPPED), 2);
  assert_int_equal(count_kind(t, SR_SPACEMON_MAPPED), 2);
  assert_int_equal(count_kind(t, SR_SPACEMON_REUSED), 1);
  for (i = 0; i < t->nev; i++)
    if (t->ev[i].kind == SR_SPACEMON_REUSED)
      ev = &t->ev[i];
  assert_non_null(ev);
  assert_int_equal(ev->va, b);
  assert_int_equal(ev->size, SR_PAGE_2M);
  assert_int_equal(ev->table_gpa, pde & SWAPFX_ADDR);
  assert_int_equal(ev->table_level, 1);
  assert_int_equal(ev->was_va, a);
  assert_int_equal(ev->was_level, 1);
  assert_non_null(event_at(t, b + 4096));
  assert_int_equal(event_at(t, b + 4096)->kind, SR_SPACEMON_MAPPED);
}

/* Over max_tables: the table left out is UNTRACKED (said at the first
 * poll, once); freeing room does not bring it back by itself, a larger
 * monitor sees it. */
static void test_spacemon_max_tables(void** state) {
  st_t* t = *state;
  sr_spacemon_opts_t o;
  sr_spacemon_stats_t s;

  map(t, SWAPFX_VA, 4096, SR_PAGE_4K);
  map(t, SWAPFX_VA + SR_PAGE_2M, 4096, SR_PAGE_4K); /* a second PT */
  memset(&o, 0, sizeof(o));
  o.max_tables = 4;
  start(t, &o);
  sr_spacemon_stats(t->sm, &s);
  assert_int_equal(s.tables, 4);
  assert_int_equal(s.untracked, 1);
  poll_now(t);
  assert_int_equal(t->nev, 1);
  assert_int_equal(t->ev[0].kind, SR_SPACEMON_UNTRACKED);
  assert_int_equal(t->ev[0].va, SWAPFX_VA + SR_PAGE_2M);
  assert_int_equal(t->ev[0].size, SR_PAGE_2M);
  poll_now(t);
  assert_int_equal(t->nev, 0);
  sr_spacemon_stats(t->sm, &s);
  assert_int_equal(s.untracked, 1); /* retried each poll, still left out */
  /* A change under the tracked PT is still reported. */
  assert_int_equal(swapfx_out_none(t->fx, t->fx->cr3, SWAPFX_VA, 1), 0);
  poll_now(t);
  assert_int_equal(t->nev, 1);
  assert_int_equal(t->ev[0].va, SWAPFX_VA);
}

/* A callback cannot free its monitor (SR_EBUSY); the engine ends a
 * monitor left with one CLOSED event. */
static void test_spacemon_callbacks_and_close(void** state) {
  st_t* t = *state;

  map(t, SWAPFX_VA, 4096, SR_PAGE_4K);
  start(t, NULL);
  t->try_free = true;
  assert_int_equal(swapfx_out_none(t->fx, t->fx->cr3, SWAPFX_VA, 1), 0);
  poll_now(t);
  assert_int_equal(t->nev, 1);
  assert_int_equal(t->free_rc, SR_EBUSY);
  t->try_free = false;
  t->nev = 0;
  swapfx_close_engine(t->fx);
  assert_int_equal(t->nclosed, 1);
  assert_int_equal(t->nev, 1);
  assert_int_equal(t->alloc.live_bytes, 0);
}

/* Bad arguments are rejected and leave nothing behind. */
static void test_spacemon_invalid_args(void** state) {
  st_t* t = *state;
  sr_spacemon_opts_t o;
  sr_spacemon_t* sm = (sr_spacemon_t*)1;
  sr_spacemon_stats_t s;
  size_t before = t->alloc.live_bytes;
  sr_swap_t* swap = t->fx->swap;

  assert_int_equal(sr_spacemon_new(NULL, swap, t->fx->cr3, NULL, record, t),
                   SR_EINVAL);
  assert_int_equal(sr_spacemon_new(&sm, NULL, t->fx->cr3, NULL, record, t),
                   SR_EINVAL);
  assert_null(sm);
  assert_int_equal(sr_spacemon_new(&sm, swap, t->fx->cr3, NULL, NULL, t),
                   SR_EINVAL);
  assert_int_equal(sr_spacemon_new(&sm, swap, SR_CR3_KERNEL, NULL, record, t),
                   SR_EINVAL); /* no kernel_cr3 set */
  memset(&o, 0, sizeof(o));
  o.bits = 1u << 20;
  assert_int_equal(sr_spacemon_new(&sm, swap, t->fx->cr3, &o, record, t),
                   SR_EINVAL);
  memset(&o, 0, sizeof(o));
  o.lo = UINT64_C(0x0000900000000000);
  assert_int_equal(sr_spacemon_new(&sm, swap, t->fx->cr3, &o, record, t),
                   SR_ENONCANON);
  o.lo = SWAPFX_VA + 4096;
  o.hi = SWAPFX_VA;
  assert_int_equal(sr_spacemon_new(&sm, swap, t->fx->cr3, &o, record, t),
                   SR_EINVAL);
  /* A root outside the image: the outcome sr_image_locate gives it. */
  assert_int_equal(
      sr_spacemon_new(&sm, swap, UINT64_C(1) << 40, NULL, record, t),
      sr_image_locate(t->fx->image, UINT64_C(1) << 40, &(sr_locate_t){0}));
  assert_true(
      sr_image_locate(t->fx->image, UINT64_C(1) << 40, &(sr_locate_t){0}) < 0);
  assert_null(sm);
  assert_int_equal(t->alloc.live_bytes, before);
  assert_int_equal(sr_spacemon_free(NULL), 0);
  sr_spacemon_stats(NULL, &s);
  assert_int_equal(s.tables, 0);
  assert_null(sr_spacemon_swap(NULL));
  /* The whole lower half, written with its non-canonical end. */
  o.lo = 0;
  o.hi = UINT64_C(0x0000800000000000);
  map(t, SWAPFX_VA, 4096, SR_PAGE_4K);
  start(t, &o);
  assert_ptr_equal(sr_spacemon_swap(t->sm), swap);
  assert_int_equal(t->nev, 0); /* never from inside sr_spacemon_new */
}

/* Every allocation of sr_spacemon_new, then of a poll that rebuilds a
 * subtree, failed in turn: new fails with SR_ENOMEM and frees what it
 * took; a poll reports the table it could not snapshot as UNTRACKED and
 * finds the leaves again once memory is back. */
static void test_spacemon_oom_every_allocation(void** state) {
  st_t* t = *state;
  sr_spacemon_stats_t s;
  size_t before;
  uint64_t k, va = SWAPFX_VA, pde;
  int rc, i;

  map(t, va, 4 * 4096, SR_PAGE_4K);
  map(t, va + SR_PAGE_1G, 4096, SR_PAGE_4K);
  before = t->alloc.live_bytes;
  for (k = 1;; k++) {
    swapfx_alloc_arm(&t->alloc, k);
    rc = sr_spacemon_new(&t->sm, t->fx->swap, t->fx->cr3, NULL, record, t);
    swapfx_alloc_disarm(&t->alloc);
    if (rc == 0)
      break;
    assert_int_equal(rc, SR_ENOMEM);
    assert_null(t->sm);
    assert_int_equal(t->alloc.live_bytes, before);
  }
  assert_true(k > 3);
  pde = get_entry(t, va, 2);
  for (k = 1; k < 8; k++) {
    set_entry(t, va, 2, 0);
    poll_now(t);
    assert_int_equal(count_kind(t, SR_SPACEMON_UNMAPPED), 4);
    set_entry(t, va, 2, pde);
    swapfx_alloc_arm(&t->alloc, k);
    poll_now(t);
    swapfx_alloc_disarm(&t->alloc);
    if (count_kind(t, SR_SPACEMON_UNTRACKED) == 1) {
      assert_int_equal(count_kind(t, SR_SPACEMON_MAPPED), 0);
      poll_now(t); /* memory is back: snapshot taken, silently */
      assert_int_equal(t->nev, 0);
    } else {
      assert_int_equal(count_kind(t, SR_SPACEMON_MAPPED), 4);
    }
    for (i = 0; i < 4; i++)
      assert_int_equal(
          swapfx_out_none(t->fx, t->fx->cr3, va + (uint64_t)i * 4096, 1), 0);
    poll_now(t);
    assert_int_equal(count_kind(t, SR_SPACEMON_UNMAPPED), 4);
    for (i = 0; i < 4; i++)
      assert_int_equal(swapfx_in(t->fx, t->fx->cr3, va + (uint64_t)i * 4096, 1),
                       0);
    poll_now(t);
    assert_int_equal(count_kind(t, SR_SPACEMON_MAPPED), 4);
  }
  sr_spacemon_stats(t->sm, &s);
  assert_int_equal(s.untracked, 0); /* every retry that worked counted off */
  assert_int_equal(s.tables, 6);
  assert_int_equal(sr_spacemon_free(t->sm), 0);
  t->sm = NULL;
  assert_int_equal(t->alloc.live_bytes, before);
}

/* ---- property test ---- */

#define P_PAGES 2048 /* 8 MiB: PDs 0-1 of 4 KiB pages, 2-3 of 2 MiB */

typedef struct pstate_s {
  int rc;
  uint64_t gpa;
  uint32_t prot;
} pstate_t;

static void snapshot(st_t* t, pstate_t* out) {
  sr_translation_t tr;
  int i;
  for (i = 0; i < P_PAGES; i++) {
    uint64_t va = SWAPFX_VA + (uint64_t)i * 4096;
    out[i].rc = sr_translate(t->fx->image, t->fx->cr3, va, NULL, &tr) == 0;
    out[i].gpa = out[i].rc ? tr.gpa : 0;
    out[i].prot = out[i].rc ? tr.prot : 0;
  }
}

static void random_change(st_t* t, uint64_t* rng) {
  uint64_t r = swapfx_rand(rng);
  uint64_t page = (r >> 8) % P_PAGES;
  uint64_t va = SWAPFX_VA + page * 4096;
  uint64_t e;
  sr_kit_t* kit = t->fx->kit;
  uint64_t cr3 = t->fx->cr3;
  bool small = page < 1024;
  int level = small ? 1 : 2;

  switch (r % 7) {
    case 0:
      (void)swapfx_out_swap(t->fx, cr3, va, level, page + 1);
      break;
    case 1:
      (void)swapfx_in(t->fx, cr3, va, level);
      break;
    case 2: /* a whole PD entry */
      if (swapfx_out_none(t->fx, cr3, va, 2) != 0)
        (void)swapfx_in(t->fx, cr3, va, 2);
      break;
    case 3: /* flip RW of a leaf or of a PDE */
      if (sr_kit_get_entry(kit, cr3, va, (r >> 40) & 1 ? 2 : level, &e) == 0 &&
          (e & SWAPFX_P))
        (void)sr_kit_set_entry(kit, cr3, va, (r >> 40) & 1 ? 2 : level,
                               e ^ SWAPFX_RW, NULL);
      break;
    case 4: /* accessed / dirty: never an event by default */
      if (sr_kit_get_entry(kit, cr3, va, level, &e) == 0 && (e & SWAPFX_P))
        (void)sr_kit_set_entry(kit, cr3, va, level, e | PTE_A | PTE_D, NULL);
      break;
    case 5: /* swap two 4 KiB frames */
      if (small && sr_kit_get_entry(kit, cr3, va, 1, &e) == 0 &&
          (e & SWAPFX_P)) {
        uint64_t va2 = SWAPFX_VA + ((r >> 20) % 1024) * 4096, e2;
        if (sr_kit_get_entry(kit, cr3, va2, 1, &e2) == 0 && (e2 & SWAPFX_P)) {
          (void)sr_kit_set_entry(kit, cr3, va, 1, e2, NULL);
          (void)sr_kit_set_entry(kit, cr3, va2, 1, e, NULL);
        }
      }
      break;
    default: /* NX on a leaf */
      if (sr_kit_get_entry(kit, cr3, va, level, &e) == 0 && (e & SWAPFX_P))
        (void)sr_kit_set_entry(kit, cr3, va, level, e ^ SWAPFX_NX, NULL);
      break;
  }
}

/* Property: after any set of changes, the 4 KiB pages covered by one
 * poll's events are exactly those whose translation (mapped, GPA,
 * protection) differs from the last poll's, each covered once; with a
 * budget, the union over the polls of one pass. */
static void test_spacemon_property_events_match_translations(void** state) {
  st_t* t = *state;
  static pstate_t before[P_PAGES], after[P_PAGES];
  static uint8_t covered[P_PAGES];
  uint64_t seed = swapfx_seed(), rng = seed;
  sr_spacemon_opts_t o;
  sr_spacemon_stats_t s;
  int round, i, n, polls;
  uint64_t p, passes;

  print_message("spacemon property: seed %llu (SR_SEED=%llu to repeat)\n",
                (unsigned long long)seed, (unsigned long long)seed);
  map(t, SWAPFX_VA, 2 * SR_PAGE_2M, SR_PAGE_4K);
  map(t, SWAPFX_VA + 2 * SR_PAGE_2M, 2 * SR_PAGE_2M, SR_PAGE_2M);
  memset(&o, 0, sizeof(o));
  o.budget =
      (swapfx_rand(&rng) & 1) ? 0 : 1 + (uint32_t)(swapfx_rand(&rng) % 3);
  start(t, &o);
  snapshot(t, before);
  for (round = 0; round < 60; round++) {
    n = 1 + (int)(swapfx_rand(&rng) % 6);
    for (i = 0; i < n; i++)
      random_change(t, &rng);
    snapshot(t, after);
    memset(covered, 0, sizeof(covered));
    sr_spacemon_stats(t->sm, &s);
    passes = s.passes;
    /* One full pass (several polls under a budget). */
    for (polls = 0; polls < 100; polls++) {
      poll_now(t);
      assert_true(t->nev <= MAX_EVENTS);
      for (i = 0; i < t->nev; i++) {
        const sr_spacemon_event_t* ev = &t->ev[i];
        assert_true(ev->kind >= SR_SPACEMON_MAPPED &&
                    ev->kind <= SR_SPACEMON_CHANGED);
        assert_true(ev->va >= SWAPFX_VA);
        for (p = (ev->va - SWAPFX_VA) / 4096;
             p < (ev->va - SWAPFX_VA + ev->size) / 4096; p++) {
          assert_true(p < P_PAGES);
          assert_int_equal(covered[p], 0);
          covered[p] = 1;
        }
      }
      sr_spacemon_stats(t->sm, &s);
      if (s.passes > passes)
        break;
    }
    for (i = 0; i < P_PAGES; i++) {
      bool differs = before[i].rc != after[i].rc ||
                     before[i].gpa != after[i].gpa ||
                     before[i].prot != after[i].prot;
      if (differs != (covered[i] != 0))
        print_message("seed %llu round %d page %d: differs %d covered %d\n",
                      (unsigned long long)seed, round, i, differs, covered[i]);
      assert_int_equal(differs, covered[i] != 0);
    }
    memcpy(before, after, sizeof(before));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_spacemon_quiet_when_nothing_changes,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_spacemon_page_out_and_in, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_spacemon_table_out_reports_each_leaf,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_spacemon_higher_level_first, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_spacemon_inherited_protection, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_spacemon_accessed_dirty_only_when_asked, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_spacemon_split_2m_same_frames_is_quiet, setup, teardown),
      cmocka_unit_test_setup_teardown(test_spacemon_swap_slot_changes, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_spacemon_range, setup, teardown),
      cmocka_unit_test_setup_teardown(test_spacemon_budget_resumes, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_spacemon_table_moved_is_reused,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_spacemon_max_tables, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_spacemon_callbacks_and_close, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_spacemon_invalid_args, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_spacemon_oom_every_allocation, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_spacemon_property_events_match_translations, setup, teardown),
  };
  return cmocka_run_group_tests_name("swap_spacemon", tests, NULL, NULL);
}
