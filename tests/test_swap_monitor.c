/* VA monitors (<swapread/monitor.h>) over kit images with a fake clock:
 * the initial report, page-out / page-in / remap events with the VAs and
 * GPAs the kit set up, changes at several levels in one poll (highest
 * level first, one final-state event per VA), 2 MiB pages split into page
 * tables and back, unwatch and re-watch, records shared with pending
 * reads, callbacks that unwatch, and a seeded property test. Expected
 * values come from the frames the kit allocated, never from the monitor.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <swapread/monitor.h>

#include "support/swap_fixture.h"

#define MAX_EVENTS 256
#define LEAF (SWAPFX_P | SWAPFX_RW | SWAPFX_US)

typedef struct mt_s mt_t;

/* Runs inside the recording callback, after the event was recorded. */
typedef void (*mt_hook)(mt_t* t, const sr_monitor_event_t* ev);

struct mt_s {
  swapfx_t* fx;
  swapfx_alloc_t alloc;
  sr_monitor_t* mon;
  sr_monitor_event_t ev[MAX_EVENTS];
  int nev;
  mt_hook hook;
  sr_monitor_handle_t other[4];
  int hook_rc[4];
};

static void record(sr_monitor_t* mon, const sr_monitor_event_t* ev,
                   void* data) {
  mt_t* t = data;
  (void)mon;
  if (t->nev < MAX_EVENTS)
    t->ev[t->nev] = *ev;
  t->nev++;
  if (t->hook != NULL)
    t->hook(t, ev);
}

static int setup(void** state) {
  mt_t* t = calloc(1, sizeof(*t));
  sr_swap_opts_t opts;

  if (t == NULL)
    return -1;
  swapfx_alloc_init(&t->alloc);
  memset(&opts, 0, sizeof(opts));
  opts.allocator = &t->alloc.hook;
  if (swapfx_new(&t->fx, 0, &opts) != 0 ||
      sr_monitor_new(&t->mon, t->fx->swap, record, t) != 0) {
    swapfx_free(t->fx);
    free(t);
    return -1;
  }
  *state = t;
  return 0;
}

static int teardown(void** state) {
  mt_t* t = *state;
  swapfx_free(t->fx); /* frees the monitor with the engine */
  assert_int_equal(t->alloc.live_bytes, 0);
  assert_int_equal(t->alloc.size_mismatch, 0);
  free(t);
  return 0;
}

static int poll_now(mt_t* t) {
  t->nev = 0;
  return swapfx_poll(t->fx, NULL);
}

static uint64_t new_frame(mt_t* t, uint64_t size) {
  uint64_t gpa = 0;
  assert_int_equal(sr_kit_alloc(t->fx->kit, size, size, &gpa), 0);
  return gpa;
}

/* Points the PDE of va at a copy of its page table and returns the
 * copy's GPA. */
static uint64_t copy_pt(mt_t* t, uint64_t va) {
  static uint8_t page[4096];
  uint64_t pde, copy = new_frame(t, 4096);
  assert_int_equal(sr_kit_get_entry(t->fx->kit, t->fx->cr3, va, 2, &pde), 0);
  assert_int_equal(
      sr_kit_read_phys(t->fx->kit, pde & SWAPFX_ADDR, page, sizeof(page)), 0);
  assert_int_equal(sr_kit_write_phys(t->fx->kit, copy, page, sizeof(page)), 0);
  return copy;
}

static void set_entry(mt_t* t, uint64_t va, int level, uint64_t value) {
  assert_int_equal(
      sr_kit_set_entry(t->fx->kit, t->fx->cr3, va, level, value, NULL), 0);
}

static sr_monitor_handle_t watch(mt_t* t, uint64_t va, uint64_t tag,
                                 sr_monitor_state_t* st) {
  sr_monitor_handle_t h;
  assert_int_equal(sr_monitor_watch(t->mon, t->fx->cr3, va, tag, &h, st), 0);
  assert_true(h.id != 0);
  return h;
}

/* Present VAs report their frame once, at watch time; a swapped-out VA
 * and one with no page table report why not; an idle poll reports
 * nothing. */
static void test_monitor_initial_state(void** state) {
  mt_t* t = *state;
  uint64_t va = SWAPFX_VA, va2m = SWAPFX_VA + SR_PAGE_1G;
  sr_monitor_state_t st;

  assert_int_equal(swapfx_map(t->fx, t->fx->cr3, va, 4 * 4096, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U, 1),
                   0);
  assert_int_equal(swapfx_map(t->fx, t->fx->cr3, va2m, SR_PAGE_2M, SR_PAGE_2M,
                              SR_PROT_W | SR_PROT_U, 2),
                   0);
  assert_int_equal(swapfx_out_swap(t->fx, t->fx->cr3, va + 4096, 1, 77), 0);

  watch(t, va + 0x123, 1, &st);
  assert_int_equal(st.status, 0);
  assert_int_equal(st.gpa, swapfx_frame(t->fx, t->fx->cr3, va, 1) + 0x123);
  assert_int_equal(st.page_size, SR_PAGE_4K);
  assert_int_equal(st.level, 1);

  watch(t, va + 4096, 2, &st);
  assert_int_equal(st.status, SR_ENOTPRESENT);
  assert_int_equal(st.level, 1);
  assert_int_equal(st.pte_kind, SR_PTE_LINUX_SWAP);

  watch(t, va2m + 0x12345, 3, &st);
  assert_int_equal(st.status, 0);
  assert_int_equal(st.gpa, swapfx_frame(t->fx, t->fx->cr3, va2m, 2) + 0x12345);
  assert_int_equal(st.page_size, SR_PAGE_2M);

  /* Nothing mapped in that PML4 slot: stops at level 4. */
  watch(t, UINT64_C(0x0000100000000000), 4, &st);
  assert_int_equal(st.status, SR_ENOTPRESENT);
  assert_int_equal(st.level, 4);
  assert_int_equal(st.pte_kind, SR_PTE_NONE);

  assert_int_equal(sr_monitor_count(t->mon), 4);
  assert_int_equal(poll_now(t), 0);
  assert_int_equal(t->nev, 0);
  t->fx->now += 1000;
  assert_int_equal(poll_now(t), 0);
  assert_int_equal(t->nev, 0);

  /* Bad arguments. */
  assert_int_equal(sr_monitor_watch(NULL, t->fx->cr3, va, 0, NULL, NULL),
                   SR_EINVAL);
  assert_int_equal(
      sr_monitor_watch(t->mon, t->fx->cr3, UINT64_C(0x0000800000000000), 0,
                       NULL, NULL),
      SR_ENONCANON);
  assert_int_equal(sr_monitor_watch(t->mon, SR_CR3_KERNEL, va, 0, NULL, NULL),
                   SR_EINVAL); /* no kernel CR3 configured */
}

/* A PTE swapped out: PAGE_OUT with the old GPA; swapped back in:
 * PAGE_IN with the frame and size; nothing for the other VA. */
static void test_monitor_page_out_then_in(void** state) {
  mt_t* t = *state;
  uint64_t va = SWAPFX_VA, f0, f1;
  sr_monitor_handle_t h0;

  assert_int_equal(swapfx_map(t->fx, t->fx->cr3, va, 2 * 4096, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U, 1),
                   0);
  f0 = swapfx_frame(t->fx, t->fx->cr3, va, 1);
  f1 = swapfx_frame(t->fx, t->fx->cr3, va + 4096, 1);
  h0 = watch(t, va + 8, 100, NULL);
  watch(t, va + 4096, 101, NULL);

  assert_int_equal(swapfx_out_swap(t->fx, t->fx->cr3, va, 1, 5), 0);
  poll_now(t);
  assert_int_equal(t->nev, 1);
  assert_int_equal(t->ev[0].kind, SR_MONITOR_PAGE_OUT);
  assert_int_equal(t->ev[0].handle.id, h0.id);
  assert_int_equal(t->ev[0].tag, 100);
  assert_int_equal(t->ev[0].va, va + 8);
  assert_int_equal(t->ev[0].cr3, t->fx->cr3);
  assert_int_equal(t->ev[0].old.status, 0);
  assert_int_equal(t->ev[0].old.gpa, f0 + 8);
  assert_int_equal(t->ev[0].now.status, SR_ENOTPRESENT);
  assert_int_equal(t->ev[0].now.pte_kind, SR_PTE_LINUX_SWAP);
  assert_int_equal(t->ev[0].now.level, 1);

  poll_now(t);
  assert_int_equal(t->nev, 0);

  assert_int_equal(swapfx_in(t->fx, t->fx->cr3, va, 1), 0);
  poll_now(t);
  assert_int_equal(t->nev, 1);
  assert_int_equal(t->ev[0].kind, SR_MONITOR_PAGE_IN);
  assert_int_equal(t->ev[0].va, va + 8);
  assert_int_equal(t->ev[0].now.gpa, f0 + 8);
  assert_int_equal(t->ev[0].now.page_size, SR_PAGE_4K);
  assert_int_equal(t->ev[0].old.status, SR_ENOTPRESENT);

  /* The sibling, whose PTE never changed. */
  assert_int_equal(swapfx_out_none(t->fx, t->fx->cr3, va + 4096, 1), 0);
  poll_now(t);
  assert_int_equal(t->nev, 1);
  assert_int_equal(t->ev[0].tag, 101);
  assert_int_equal(t->ev[0].old.gpa, f1);
  assert_int_equal(t->ev[0].now.pte_kind, SR_PTE_NONE);

  /* Accessed / dirty bits alone are not an event. */
  {
    uint64_t e;
    assert_int_equal(sr_kit_get_entry(t->fx->kit, t->fx->cr3, va, 1, &e), 0);
    set_entry(t, va, 1, e | 0x60);
    assert_int_equal(sr_kit_get_entry(t->fx->kit, t->fx->cr3, va, 2, &e), 0);
    set_entry(t, va, 2, e | 0x20);
  }
  poll_now(t);
  assert_int_equal(t->nev, 0);
}

/* The kit points the PTE at another frame: REMAPPED(old, new). */
static void test_monitor_remap(void** state) {
  mt_t* t = *state;
  uint64_t va = SWAPFX_VA + 3 * 4096, f0, f1;

  assert_int_equal(swapfx_map(t->fx, t->fx->cr3, SWAPFX_VA, 4 * 4096,
                              SR_PAGE_4K, SR_PROT_W | SR_PROT_U, 1),
                   0);
  f0 = swapfx_frame(t->fx, t->fx->cr3, va, 1);
  f1 = new_frame(t, 4096);
  watch(t, va + 0x40, 7, NULL);
  set_entry(t, va, 1, f1 | LEAF);
  poll_now(t);
  assert_int_equal(t->nev, 1);
  assert_int_equal(t->ev[0].kind, SR_MONITOR_REMAPPED);
  assert_int_equal(t->ev[0].old.gpa, f0 + 0x40);
  assert_int_equal(t->ev[0].now.gpa, f1 + 0x40);
  assert_int_equal(t->ev[0].now.page_size, SR_PAGE_4K);
  poll_now(t);
  assert_int_equal(t->nev, 0);
}

/* One poll sees a PML4E, a PDPTE, a PDE and a PTE change, each with the
 * PTE under it changed as well. Expected: one event per VA, from the
 * final entries, ordered PML4 (v4), PDPT (v3), PD (v2), PT (v1); v2's
 * old PTE was swapped out but its PDE now points at a copy of the table
 * in which it maps another frame: REMAPPED, never PAGE_OUT. vsib shares
 * v2's table and its frame in the copy: no event. */
static void test_monitor_levels_same_poll(void** state) {
  mt_t* t = *state;
  const uint64_t v4 = UINT64_C(0x0000100000003000);
  const uint64_t v3 = SWAPFX_VA + 0x2000;
  const uint64_t v2 = SWAPFX_VA + SR_PAGE_1G + 0x3000;
  const uint64_t vsib = SWAPFX_VA + SR_PAGE_1G + 0x4000;
  const uint64_t v1 = SWAPFX_VA + SR_PAGE_1G + SR_PAGE_2M + 0x5000;
  const uint32_t rw = SR_PROT_W | SR_PROT_U;
  uint64_t f4, f3, f2, f1, fnew, copy, pde;

  assert_int_equal(swapfx_map(t->fx, t->fx->cr3, v4, 4096, SR_PAGE_4K, rw, 1),
                   0);
  assert_int_equal(swapfx_map(t->fx, t->fx->cr3, v3, 4096, SR_PAGE_4K, rw, 1),
                   0);
  assert_int_equal(
      swapfx_map(t->fx, t->fx->cr3, v2, 2 * 4096, SR_PAGE_4K, rw, 1), 0);
  assert_int_equal(swapfx_map(t->fx, t->fx->cr3, v1, 4096, SR_PAGE_4K, rw, 1),
                   0);
  f4 = swapfx_frame(t->fx, t->fx->cr3, v4, 1);
  f3 = swapfx_frame(t->fx, t->fx->cr3, v3, 1);
  f2 = swapfx_frame(t->fx, t->fx->cr3, v2, 1);
  f1 = swapfx_frame(t->fx, t->fx->cr3, v1, 1);
  /* Watch in an order unrelated to the levels. */
  watch(t, v1, 1, NULL);
  watch(t, vsib, 5, NULL);
  watch(t, v3, 3, NULL);
  watch(t, v2, 2, NULL);
  watch(t, v4, 4, NULL);

  /* v2: copy its table, map v2 elsewhere in the copy, swap v2 out in the
   * old table, then switch the PDE to the copy. */
  copy = copy_pt(t, v2);
  fnew = new_frame(t, 4096);
  assert_int_equal(sr_kit_write_phys(t->fx->kit, copy + 8 * ((v2 >> 12) & 511),
                                     &(uint64_t){fnew | LEAF}, 8),
                   0);
  assert_int_equal(swapfx_out_swap(t->fx, t->fx->cr3, v2, 1, 9), 0);
  assert_int_equal(sr_kit_get_entry(t->fx->kit, t->fx->cr3, v2, 2, &pde), 0);
  set_entry(t, v2, 2, copy | (pde & ~SWAPFX_ADDR));
  /* v4 and v3: PTE out, then the upper entry out. */
  assert_int_equal(swapfx_out_swap(t->fx, t->fx->cr3, v4, 1, 10), 0);
  assert_int_equal(swapfx_out_none(t->fx, t->fx->cr3, v4, 4), 0);
  assert_int_equal(swapfx_out_swap(t->fx, t->fx->cr3, v3, 1, 11), 0);
  assert_int_equal(swapfx_out_none(t->fx, t->fx->cr3, v3, 3), 0);
  /* v1: a PTE alone. */
  assert_int_equal(swapfx_out_swap(t->fx, t->fx->cr3, v1, 1, 12), 0);

  poll_now(t);
  assert_int_equal(t->nev, 4);
  assert_int_equal(t->ev[0].tag, 4);
  assert_int_equal(t->ev[0].kind, SR_MONITOR_PAGE_OUT);
  assert_int_equal(t->ev[0].old.gpa, f4);
  assert_int_equal(t->ev[0].now.level, 4);
  assert_int_equal(t->ev[1].tag, 3);
  assert_int_equal(t->ev[1].kind, SR_MONITOR_PAGE_OUT);
  assert_int_equal(t->ev[1].old.gpa, f3);
  assert_int_equal(t->ev[1].now.level, 3);
  assert_int_equal(t->ev[2].tag, 2);
  assert_int_equal(t->ev[2].kind, SR_MONITOR_REMAPPED);
  assert_int_equal(t->ev[2].old.gpa, f2);
  assert_int_equal(t->ev[2].now.gpa, fnew);
  assert_int_equal(t->ev[3].tag, 1);
  assert_int_equal(t->ev[3].kind, SR_MONITOR_PAGE_OUT);
  assert_int_equal(t->ev[3].old.gpa, f1);
  assert_int_equal(t->ev[3].now.level, 1);
  assert_int_equal(t->ev[3].now.pte_kind, SR_PTE_LINUX_SWAP);

  /* The old table of v2 is no longer watched: changing it is silent. */
  assert_int_equal(sr_kit_write_phys(
                       t->fx->kit, (pde & SWAPFX_ADDR) + 8 * ((v2 >> 12) & 511),
                       &(uint64_t){0}, 8),
                   0);
  poll_now(t);
  assert_int_equal(t->nev, 0);
  /* The new one is. */
  set_entry(t, v2, 1, 0);
  poll_now(t);
  assert_int_equal(t->nev, 1);
  assert_int_equal(t->ev[0].tag, 2);
  assert_int_equal(t->ev[0].old.gpa, fnew);
}

/* A 2 MiB page becomes a page table of 4 KiB pages (the same frames, as
 * a THP split does, except one moved), and back. */
static void test_monitor_2m_split_and_back(void** state) {
  mt_t* t = *state;
  const uint64_t va = SWAPFX_VA + 5 * 4096 + 0x10;
  const uint64_t vb = SWAPFX_VA + 9 * 4096;
  uint64_t pde, frame, pt, moved, i, e;

  assert_int_equal(swapfx_map(t->fx, t->fx->cr3, SWAPFX_VA, SR_PAGE_2M,
                              SR_PAGE_2M, SR_PROT_W | SR_PROT_U, 3),
                   0);
  assert_int_equal(sr_kit_get_entry(t->fx->kit, t->fx->cr3, va, 2, &pde), 0);
  frame = swapfx_frame(t->fx, t->fx->cr3, va, 2);
  watch(t, va, 1, NULL);
  watch(t, vb, 2, NULL);

  pt = new_frame(t, 4096);
  moved = new_frame(t, 4096);
  for (i = 0; i < 512; i++) {
    e = (i == 9 ? moved : frame + i * 4096) | LEAF;
    assert_int_equal(sr_kit_write_phys(t->fx->kit, pt + 8 * i, &e, 8), 0);
  }
  set_entry(t, va, 2, pt | SWAPFX_TABLE);
  poll_now(t);
  assert_int_equal(t->nev, 2);
  for (int k = 0; k < 2; k++) {
    const sr_monitor_event_t* ev = &t->ev[k];
    assert_int_equal(ev->kind, SR_MONITOR_REMAPPED);
    assert_int_equal(ev->old.page_size, SR_PAGE_2M);
    assert_int_equal(ev->now.page_size, SR_PAGE_4K);
    assert_int_equal(ev->now.level, 1);
    if (ev->tag == 1) {
      assert_int_equal(ev->old.gpa, frame + (va - SWAPFX_VA));
      assert_int_equal(ev->now.gpa, frame + (va - SWAPFX_VA));
    } else {
      assert_int_equal(ev->tag, 2);
      assert_int_equal(ev->old.gpa, frame + 9 * 4096);
      assert_int_equal(ev->now.gpa, moved);
    }
  }
  /* Under the new table, a PTE change is seen. */
  set_entry(t, va, 1, 0);
  poll_now(t);
  assert_int_equal(t->nev, 1);
  assert_int_equal(t->ev[0].tag, 1);
  assert_int_equal(t->ev[0].kind, SR_MONITOR_PAGE_OUT);
  /* And back to the 2 MiB page. */
  set_entry(t, va, 2, pde);
  poll_now(t);
  assert_int_equal(t->nev, 2);
  for (int k = 0; k < 2; k++) {
    const sr_monitor_event_t* ev = &t->ev[k];
    assert_int_equal(ev->now.page_size, SR_PAGE_2M);
    if (ev->tag == 1) {
      assert_int_equal(ev->kind, SR_MONITOR_PAGE_IN);
      assert_int_equal(ev->now.gpa, frame + (va - SWAPFX_VA));
    } else {
      assert_int_equal(ev->kind, SR_MONITOR_REMAPPED);
      assert_int_equal(ev->old.gpa, moved);
      assert_int_equal(ev->now.gpa, frame + 9 * 4096);
    }
  }
  /* The PT is no longer watched. */
  e = 0;
  assert_int_equal(sr_kit_write_phys(t->fx->kit, pt + 8 * 9, &e, 8), 0);
  poll_now(t);
  assert_int_equal(t->nev, 0);
}

/* Unwatch stops events and gives back every byte; a stale handle is
 * refused. */
static void test_monitor_unwatch_frees(void** state) {
  mt_t* t = *state;
  sr_monitor_handle_t h[8];
  size_t before;
  int i;

  assert_int_equal(swapfx_map(t->fx, t->fx->cr3, SWAPFX_VA, 8 * 4096,
                              SR_PAGE_4K, SR_PROT_W | SR_PROT_U, 1),
                   0);
  assert_int_equal(
      swapfx_map(t->fx, t->fx->cr3, SWAPFX_KVA, 4096, SR_PAGE_4K, SR_PROT_W, 1),
      0);
  before = t->alloc.live_bytes;
  for (i = 0; i < 7; i++)
    h[i] = watch(t, SWAPFX_VA + (uint64_t)i * 4096, (uint64_t)i, NULL);
  h[7] = watch(t, SWAPFX_KVA, 7, NULL);
  assert_true(t->alloc.live_bytes > before);
  assert_int_equal(swapfx_stats(t->fx).monitor_watches, 8);
  for (i = 0; i < 8; i++)
    assert_int_equal(sr_monitor_unwatch(t->mon, h[i]), 0);
  assert_int_equal(sr_monitor_unwatch(t->mon, h[0]), SR_ESTALE);
  assert_int_equal(sr_monitor_unwatch(t->mon, (sr_monitor_handle_t){0}),
                   SR_ESTALE);
  assert_int_equal(t->alloc.live_bytes, before);
  assert_int_equal(swapfx_stats(t->fx).watched_entries, 0);
  assert_int_equal(swapfx_stats(t->fx).monitor_watches, 0);
  assert_int_equal(sr_monitor_count(t->mon), 0);
  assert_int_equal(swapfx_out_none(t->fx, t->fx->cr3, SWAPFX_VA, 1), 0);
  assert_int_equal(swapfx_out_none(t->fx, t->fx->cr3, SWAPFX_VA, 4), 0);
  poll_now(t);
  assert_int_equal(t->nev, 0);
  /* Freeing a monitor with watches gives back its bytes as well. */
  {
    sr_monitor_t* m2;
    size_t b2 = t->alloc.live_bytes;
    assert_int_equal(sr_monitor_new(&m2, t->fx->swap, record, t), 0);
    assert_int_equal(
        sr_monitor_watch(m2, t->fx->cr3, SWAPFX_KVA, 0, NULL, NULL), 0);
    assert_int_equal(sr_monitor_free(m2), 0);
    assert_int_equal(t->alloc.live_bytes, b2);
  }
}

/* Watching a watched VA again resets it: same handle, state reported
 * again, the change it had not reported yet is not reported later. */
static void test_monitor_rewatch_resets(void** state) {
  mt_t* t = *state;
  sr_monitor_handle_t h, h2;
  sr_monitor_state_t st;
  uint64_t f;

  assert_int_equal(swapfx_map(t->fx, t->fx->cr3, SWAPFX_VA, 4096, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U, 1),
                   0);
  f = swapfx_frame(t->fx, t->fx->cr3, SWAPFX_VA, 1);
  h = watch(t, SWAPFX_VA, 1, &st);
  assert_int_equal(st.status, 0);
  assert_int_equal(swapfx_out_swap(t->fx, t->fx->cr3, SWAPFX_VA, 1, 3), 0);
  h2 = watch(t, SWAPFX_VA, 2, &st);
  assert_int_equal(h2.id, h.id);
  assert_int_equal(st.status, SR_ENOTPRESENT);
  assert_int_equal(sr_monitor_count(t->mon), 1);
  poll_now(t);
  assert_int_equal(t->nev, 0);
  assert_int_equal(swapfx_in(t->fx, t->fx->cr3, SWAPFX_VA, 1), 0);
  poll_now(t);
  assert_int_equal(t->nev, 1);
  assert_int_equal(t->ev[0].kind, SR_MONITOR_PAGE_IN);
  assert_int_equal(t->ev[0].tag, 2);
  assert_int_equal(t->ev[0].now.gpa, f);

  /* A re-watch while an event is due (changed, polled, not yet
   * dispatched cannot be reached from outside; after an unwatch, a new
   * watch starts from scratch with a new handle). */
  assert_int_equal(sr_monitor_unwatch(t->mon, h), 0);
  assert_int_equal(swapfx_out_swap(t->fx, t->fx->cr3, SWAPFX_VA, 1, 4), 0);
  h2 = watch(t, SWAPFX_VA, 3, &st);
  assert_true(h2.id != h.id);
  assert_int_equal(st.status, SR_ENOTPRESENT);
  poll_now(t);
  assert_int_equal(t->nev, 0);
}

/* A watched VA and a pending read blocked on the same PTE share records:
 * watched_entries counts the four entries of the walk once. */
static void test_monitor_shares_records_with_reads(void** state) {
  mt_t* t = *state;
  swapfx_rec_t* rec;

  assert_int_equal(swapfx_map(t->fx, t->fx->cr3, SWAPFX_VA, 4096, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U, 1),
                   0);
  assert_int_equal(swapfx_out_swap(t->fx, t->fx->cr3, SWAPFX_VA, 1, 3), 0);
  watch(t, SWAPFX_VA + 16, 1, NULL);
  assert_int_equal(swapfx_stats(t->fx).watched_entries, 4);
  assert_int_equal(swapfx_read_new(t->fx, &rec, t->fx->cr3, SWAPFX_VA, 4096, 0,
                                   SR_TIMEOUT_NONE),
                   SR_PENDING);
  assert_int_equal(swapfx_stats(t->fx).watched_entries, 4);
  assert_int_equal(swapfx_in(t->fx, t->fx->cr3, SWAPFX_VA, 1), 0);
  assert_int_equal(poll_now(t), 1);
  assert_int_equal(rec->ncb, 1);
  assert_int_equal(rec->done.status, 0);
  assert_int_equal(swapfx_mismatch(rec->buf, SWAPFX_VA, 4096, 1), SIZE_MAX);
  assert_int_equal(t->nev, 1);
  assert_int_equal(t->ev[0].kind, SR_MONITOR_PAGE_IN);
  /* The watch stays, on the present leaf (four entries still). */
  assert_int_equal(swapfx_stats(t->fx).watched_entries, 4);
}

static void hook_unwatch_both(mt_t* t, const sr_monitor_event_t* ev) {
  (void)ev;
  t->hook_rc[0] = sr_monitor_unwatch(t->mon, t->other[0]);
  t->hook_rc[1] = sr_monitor_unwatch(t->mon, t->other[1]);
  t->hook_rc[2] = sr_swap_poll(t->fx->swap, t->fx->now, NULL);
  t->hook_rc[3] = sr_monitor_free(t->mon);
  t->hook = NULL;
}

/* Two VAs change in one poll; the first callback unwatches itself and
 * its sibling: the sibling's event is not delivered. Polling or freeing
 * the monitor from a callback is refused. */
static void test_monitor_callback_unwatches_sibling(void** state) {
  mt_t* t = *state;
  size_t before;

  assert_int_equal(swapfx_map(t->fx, t->fx->cr3, SWAPFX_VA, 2 * 4096,
                              SR_PAGE_4K, SR_PROT_W | SR_PROT_U, 1),
                   0);
  before = t->alloc.live_bytes;
  t->other[0] = watch(t, SWAPFX_VA, 1, NULL);
  t->other[1] = watch(t, SWAPFX_VA + 4096, 2, NULL);
  assert_int_equal(swapfx_out_swap(t->fx, t->fx->cr3, SWAPFX_VA, 1, 1), 0);
  assert_int_equal(swapfx_out_swap(t->fx, t->fx->cr3, SWAPFX_VA + 4096, 1, 2),
                   0);
  t->hook = hook_unwatch_both;
  poll_now(t);
  assert_int_equal(t->nev, 1);
  assert_int_equal(t->hook_rc[0], 0);
  assert_int_equal(t->hook_rc[1], 0);
  assert_int_equal(t->hook_rc[2], SR_EBUSY);
  assert_int_equal(t->hook_rc[3], SR_EBUSY);
  assert_int_equal(sr_monitor_count(t->mon), 0);
  assert_int_equal(t->alloc.live_bytes, before);
  assert_int_equal(swapfx_in(t->fx, t->fx->cr3, SWAPFX_VA, 1), 0);
  poll_now(t);
  assert_int_equal(t->nev, 0);
}

static void hook_rewatch_and_read(mt_t* t, const sr_monitor_event_t* ev) {
  swapfx_rec_t* rec;
  sr_monitor_state_t st;
  t->hook_rc[0] =
      sr_monitor_watch(t->mon, ev->cr3, ev->va + 4096, 9, &t->other[2], &st);
  t->hook_rc[1] = st.status;
  t->hook_rc[2] =
      swapfx_read_new(t->fx, &rec, ev->cr3, ev->va, 8, 0, SR_TIMEOUT_NONE);
  t->hook_rc[3] = sr_swap_cancel(t->fx->swap, rec->handle);
  t->hook = NULL;
}

/* A callback watches another VA, starts a read and cancels it. */
static void test_monitor_callback_watches_and_reads(void** state) {
  mt_t* t = *state;

  assert_int_equal(swapfx_map(t->fx, t->fx->cr3, SWAPFX_VA, 2 * 4096,
                              SR_PAGE_4K, SR_PROT_W | SR_PROT_U, 1),
                   0);
  watch(t, SWAPFX_VA, 1, NULL);
  assert_int_equal(swapfx_out_swap(t->fx, t->fx->cr3, SWAPFX_VA, 1, 1), 0);
  t->hook = hook_rewatch_and_read;
  poll_now(t);
  assert_int_equal(t->nev, 1);
  assert_int_equal(t->hook_rc[0], 0);
  assert_int_equal(t->hook_rc[1], 0);
  assert_int_equal(t->hook_rc[2], SR_PENDING);
  assert_int_equal(t->hook_rc[3], 0);
  assert_int_equal(sr_monitor_count(t->mon), 2);
  assert_int_equal(swapfx_out_none(t->fx, t->fx->cr3, SWAPFX_VA + 4096, 1), 0);
  poll_now(t);
  assert_int_equal(t->nev, 1);
  assert_int_equal(t->ev[0].tag, 9);
  assert_int_equal(t->ev[0].handle.id, t->other[2].id);
}

/* ---- property test ---------------------------------------------------- */

#define P_VAS 24
#define P_FRAMES 32
#define P_TABLES 12
#define P_ROUNDS 300

typedef struct pview_s {
  bool mapped;
  uint64_t gpa, size;
} pview_t;

static uint64_t p_va(int i) {
  /* 3 PML4 slots x 2 PDPT slots x 2 PDs x 2 pages, and 2M pages in a
   * fourth PML4 slot. */
  uint64_t base =
      UINT64_C(0x0000300000000000) + (uint64_t)(i % 3) * (UINT64_C(1) << 39);
  if (i >= 20)
    return UINT64_C(0x0000200000000000) + (uint64_t)(i - 20) * SR_PAGE_2M +
           0x1234;
  return base + (uint64_t)((i / 3) % 2) * SR_PAGE_1G +
         (uint64_t)((i / 6) % 2) * SR_PAGE_2M + (uint64_t)(i / 12) * 4096 +
         (uint64_t)(i % 3) * 4096 * 7;
}

/* Property: after every poll, for every watched VA, the state built from
 * the initial report and the events delivered so far (each event's
 * `old` agreeing with that view, at most one event per VA per poll)
 * equals sr_translate of the VA: mapped or not, and if mapped the GPA
 * and the page size. Between polls 1-4 random changes: entries of a
 * random level paged out (zero or swap) or in, PTEs pointed at other
 * frames, PDEs pointed at copies of their table with some PTEs changed,
 * at a 2 MiB page elsewhere, or at a table of 4 KiB pages. */
static void test_monitor_property_matches_translate(void** state) {
  mt_t* t = *state;
  uint64_t seed = swapfx_seed(), rng;
  uint64_t frames[P_FRAMES], tables[P_TABLES], big[2];
  sr_monitor_handle_t h[P_VAS];
  pview_t view[P_VAS];
  int seen[P_VAS];
  sr_monitor_state_t st;
  sr_translation_t tr;
  size_t before;
  int i, r, k, rc, total = 0;

  printf("monitor property: seed %llu (SR_SEED overrides)\n",
         (unsigned long long)seed);
  rng = seed;
  for (i = 0; i < P_VAS; i++) {
    uint64_t va = p_va(i);
    if (i >= 20)
      rc = swapfx_map(t->fx, t->fx->cr3, va & ~(SR_PAGE_2M - 1), SR_PAGE_2M,
                      SR_PAGE_2M, SR_PROT_W | SR_PROT_U, 1);
    else
      rc = swapfx_map(t->fx, t->fx->cr3, va & ~UINT64_C(4095), 4096, SR_PAGE_4K,
                      SR_PROT_W | SR_PROT_U, 1);
    assert_int_equal(rc, 0);
  }
  for (i = 0; i < P_FRAMES; i++)
    frames[i] = new_frame(t, 4096);
  for (i = 0; i < P_TABLES; i++)
    tables[i] = new_frame(t, 4096);
  for (i = 0; i < 2; i++)
    big[i] = new_frame(t, SR_PAGE_2M);
  before = t->alloc.live_bytes;
  for (i = 0; i < P_VAS; i++) {
    h[i] = watch(t, p_va(i), (uint64_t)i, &st);
    view[i].mapped = st.status == 0;
    view[i].gpa = st.gpa;
    view[i].size = st.page_size;
  }

  for (r = 0; r < P_ROUNDS; r++) {
    int nops = 1 + (int)(swapfx_rand(&rng) % 4);
    for (k = 0; k < nops; k++) {
      int v = (int)(swapfx_rand(&rng) % P_VAS);
      uint64_t va = p_va(v);
      int level = 1 + (int)(swapfx_rand(&rng) % 4);
      int op = (int)(swapfx_rand(&rng) % 6);
      uint64_t e, pde;
      if (op == 0) {
        (void)swapfx_out_none(t->fx, t->fx->cr3, va, level);
      } else if (op == 1) {
        (void)swapfx_out_swap(t->fx, t->fx->cr3, va, level <= 2 ? level : 1,
                              1 + swapfx_rand(&rng) % 1000);
      } else if (op == 2) {
        (void)swapfx_in(t->fx, t->fx->cr3, va, level);
      } else if (op == 3) {
        e = frames[swapfx_rand(&rng) % P_FRAMES] | LEAF;
        (void)sr_kit_set_entry(t->fx->kit, t->fx->cr3, va, 1, e, NULL);
      } else if (op == 4) {
        /* PDE -> a (possibly shared) spare table: a copy of the current
         * table with a few PTEs changed, or 512 fresh PTEs. */
        static uint8_t page[4096];
        uint64_t tb = tables[swapfx_rand(&rng) % P_TABLES];
        if (sr_kit_get_entry(t->fx->kit, t->fx->cr3, va, 2, &pde) != 0)
          continue;
        if ((pde & SWAPFX_P) && !(pde & SWAPFX_PS) &&
            (pde & SWAPFX_ADDR) != tb) {
          assert_int_equal(sr_kit_read_phys(t->fx->kit, pde & SWAPFX_ADDR, page,
                                            sizeof(page)),
                           0);
        } else {
          for (int j = 0; j < 512; j++) {
            e = frames[swapfx_rand(&rng) % P_FRAMES] | LEAF;
            memcpy(page + 8 * j, &e, 8);
          }
        }
        for (int j = 0; j < 3; j++) {
          int idx = (int)((va >> 12) & 511);
          if (j > 0)
            idx = (int)(swapfx_rand(&rng) % 512);
          e = swapfx_rand(&rng) % 3 == 0
                  ? 0
                  : frames[swapfx_rand(&rng) % P_FRAMES] | LEAF;
          memcpy(page + 8 * idx, &e, 8);
        }
        assert_int_equal(sr_kit_write_phys(t->fx->kit, tb, page, sizeof(page)),
                         0);
        (void)sr_kit_set_entry(t->fx->kit, t->fx->cr3, va, 2, tb | SWAPFX_TABLE,
                               NULL);
      } else {
        /* PDE -> a 2 MiB leaf. */
        e = big[swapfx_rand(&rng) % 2] | LEAF | SWAPFX_PS;
        (void)sr_kit_set_entry(t->fx->kit, t->fx->cr3, va, 2, e, NULL);
      }
    }
    t->fx->now += 1000;
    poll_now(t);
    assert_true(t->nev <= MAX_EVENTS);
    memset(seen, 0, sizeof(seen));
    total += t->nev;
    for (k = 0; k < t->nev; k++) {
      const sr_monitor_event_t* ev = &t->ev[k];
      int v = (int)ev->tag;
      assert_true(v >= 0 && v < P_VAS);
      assert_int_equal(ev->handle.id, h[v].id);
      assert_int_equal(ev->va, p_va(v));
      assert_int_equal(++seen[v], 1);
      assert_int_equal(ev->old.status == 0, view[v].mapped);
      if (view[v].mapped)
        assert_int_equal(ev->old.gpa, view[v].gpa);
      view[v].mapped = ev->now.status == 0;
      view[v].gpa = ev->now.gpa;
      view[v].size = ev->now.page_size;
    }
    for (i = 0; i < P_VAS; i++) {
      rc = sr_translate(t->fx->image, t->fx->cr3, p_va(i), NULL, &tr);
      if (view[i].mapped != (rc == 0) ||
          (rc == 0 && (tr.gpa != view[i].gpa || tr.page_size != view[i].size)))
        fail_msg(
            "seed %llu round %d va %d: view mapped %d gpa %llx size "
            "%llx; translate %d gpa %llx size %llx",
            (unsigned long long)seed, r, i, view[i].mapped,
            (unsigned long long)view[i].gpa, (unsigned long long)view[i].size,
            rc, (unsigned long long)tr.gpa, (unsigned long long)tr.page_size);
    }
  }
  /* The changes did reach the watched VAs. */
  assert_true(total > P_ROUNDS / 4);
  for (i = 0; i < P_VAS; i++)
    assert_int_equal(sr_monitor_unwatch(t->mon, h[i]), 0);
  assert_int_equal(t->alloc.live_bytes, before);
}

/* The engine freed under a monitor ends it with one CLOSED event (no
 * handle, after its watches are gone), and returns every byte. */
static void test_monitor_closed_by_engine(void** state) {
  mt_t* t = *state;

  assert_int_equal(swapfx_map(t->fx, t->fx->cr3, SWAPFX_VA, 4096, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U, 1),
                   0);
  watch(t, SWAPFX_VA, 7, NULL);
  assert_int_equal(swapfx_stats(t->fx).monitors, 1);
  t->nev = 0;
  swapfx_close_engine(t->fx);
  assert_int_equal(t->nev, 1);
  assert_int_equal(t->ev[0].kind, SR_MONITOR_CLOSED);
  assert_int_equal(t->ev[0].handle.id, 0);
  assert_int_equal(t->alloc.live_bytes, 0);
}

/* Every allocation of sr_monitor_watch failed in turn: SR_ENOMEM, no
 * watch, the engine back to the bytes it held; then it works. Every
 * allocation of sr_monitor_new failed in turn on a second monitor. */
static void test_monitor_oom_every_allocation(void** state) {
  mt_t* t = *state;
  sr_monitor_t* m2 = NULL;
  sr_monitor_state_t st;
  size_t before;
  uint64_t k;
  int rc;

  assert_int_equal(swapfx_map(t->fx, t->fx->cr3, SWAPFX_VA, 4096, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U, 1),
                   0);
  before = t->alloc.live_bytes;
  for (k = 1;; k++) {
    swapfx_alloc_arm(&t->alloc, k);
    rc = sr_monitor_watch(t->mon, t->fx->cr3, SWAPFX_VA, 1, NULL, &st);
    swapfx_alloc_disarm(&t->alloc);
    if (rc == 0)
      break;
    assert_int_equal(rc, SR_ENOMEM);
    assert_int_equal(sr_monitor_count(t->mon), 0);
    assert_int_equal(t->alloc.live_bytes, before);
  }
  assert_true(k > 2);
  assert_int_equal(st.status, 0);
  assert_int_equal(sr_monitor_count(t->mon), 1);
  before = t->alloc.live_bytes;
  for (k = 1;; k++) {
    swapfx_alloc_arm(&t->alloc, k);
    rc = sr_monitor_new(&m2, t->fx->swap, record, t);
    swapfx_alloc_disarm(&t->alloc);
    if (rc == 0)
      break;
    assert_int_equal(rc, SR_ENOMEM);
    assert_null(m2);
    assert_int_equal(t->alloc.live_bytes, before);
  }
  assert_int_equal(sr_monitor_free(m2), 0);
  assert_int_equal(t->alloc.live_bytes, before);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_monitor_initial_state, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_monitor_closed_by_engine, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_monitor_oom_every_allocation, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_monitor_page_out_then_in, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_monitor_remap, setup, teardown),
      cmocka_unit_test_setup_teardown(test_monitor_levels_same_poll, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_monitor_2m_split_and_back, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_monitor_unwatch_frees, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_monitor_rewatch_resets, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_monitor_shares_records_with_reads,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_monitor_callback_unwatches_sibling,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_monitor_callback_watches_and_reads,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_monitor_property_matches_translate,
                                      setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
