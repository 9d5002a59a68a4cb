/* sr_swap_poll: pages that come and go between polls, pages present only
 * while nobody polls, one non-present PDE blocking the chunks of several
 * reads, 4 KiB pages coming back inside a 2 MiB page and a 2 MiB page split
 * into 4 KiB pages with holes, reads across a 2 MiB boundary, parent
 * entries replaced above a blocking entry (a PDE turned into a 2 MiB page
 * or moved to another table, a PML4E moved) while the old tables keep
 * their contents, the idle poll's loads (blocking entries plus distinct
 * parents), runs of consecutive entries (a change anywhere in a run is
 * seen, also after records were deleted and with a budget), the per-poll
 * budget (no starvation), and the next deadline. The guest is simulated by
 * kit edits between polls; expected bytes are the kit pattern of the seed
 * each page held while it was present.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/swap_asserts.h"

#define VA SWAPFX_VA
#define K4 SR_PAGE_4K
#define M2 SR_PAGE_2M
#define RWU (SR_PROT_W | SR_PROT_U)
#define SEED 0x5eed0002u
#define SEED2 0x5eed0003u
#define SEED3 0x5eed0004u

#define setup swapfx_setup
#define teardown swapfx_teardown

static void assert_clean_once(const swapfx_rec_t* rec, int status) {
  assert_int_equal(rec->ncb, 1);
  assert_int_equal(rec->ndtor, 1);
  assert_int_equal(swapfx_violations(rec), 0);
  assert_int_equal(rec->done.status, status);
  assert_true(rec->done.flags & SR_DONE_ASYNC);
  assert_ptr_equal(rec->done.buf, rec->buf);
  assert_int_equal(rec->done.nchunks, swapfx_nchunks(rec->gva, rec->len));
}

static void assert_waiting(const swapfx_rec_t* rec) {
  assert_int_equal(rec->ncb, 0);
  assert_int_equal(rec->ndtor, 0);
}

/* Chunk i of rec's buffer holds the pattern of seed. */
static void assert_chunk(const swapfx_rec_t* rec, size_t i, uint64_t seed) {
  size_t off, n;
  swapfx_chunk(rec->gva, rec->len, i, &off, &n);
  assert_true(swapfx_mismatch(rec->buf + off, rec->gva + off, n, seed) ==
              SIZE_MAX);
}

/* Pattern bytes of seed for [gva, gva + len) into a new buffer. */
static uint8_t* pattern(uint64_t gva, size_t len, uint64_t seed) {
  uint8_t* p = malloc(len);
  if (p == NULL)
    return NULL;
  for (size_t i = 0; i < len; i++)
    p[i] = sr_kit_pattern(seed, gva + i);
  return p;
}

/* ---- pages between polls --------------------------------------------- */

static void test_poll_page_in_completes_on_next_poll(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 3 * K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 10), 0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA + 1, 3 * K4 - 2, 0, 0),
                   SR_PENDING);
  for (int i = 0; i < 3; i++) {
    fx->now += 1000;
    assert_int_equal(swapfx_poll(fx, NULL), 0);
  }
  assert_waiting(r);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_clean_once(r, 0);
  for (size_t i = 0; i < 3; i++)
    assert_chunk(r, i, SEED);
  fx->now += 1000;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_int_equal(r->ncb, 1);
}

/* Chunk A comes in and is copied, then goes out again with new content
 * while chunk B comes in: the read completes with A as it was copied. */
static void test_poll_page_appears_and_disappears(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  uint64_t a = VA, b = VA + 2 * K4;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 3 * K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, a, 1, 1), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, b, 1, 2), 0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA, 3 * K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_stats(fx).pending_chunks, 2);

  assert_int_equal(swapfx_in(fx, fx->cr3, a, 1), 0);
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_waiting(r);
  assert_chunk(r, 0, SEED); /* copied at this poll */
  assert_int_equal(swapfx_stats(fx).pending_chunks, 1);

  /* A disappears (and changes while out), B appears */
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, a, 1, 3), 0);
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3, a, K4, SEED2), 0);
  assert_int_equal(swapfx_in(fx, fx->cr3, b, 1), 0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_clean_once(r, 0);
  assert_chunk(r, 0, SEED);
  assert_chunk(r, 1, SEED);
  assert_chunk(r, 2, SEED);
}

/* In and out again between two polls: nobody saw it, nothing completes;
 * the bytes that count are those present at the poll that sees it. */
static void test_poll_page_present_only_while_not_polled(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  sr_swap_stats_t st;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 2 * K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 50), 0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA, 2 * K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_poll(fx, NULL), 0);

  /* same encoding before and after */
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3, VA + K4, K4, SEED2), 0);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 50), 0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_waiting(r);

  /* a different encoding after: re-walked, still not present */
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 51), 0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_waiting(r);
  st = swapfx_stats(fx);
  assert_int_equal(st.pending, 1);
  assert_int_equal(st.pending_chunks, 1);

  /* new content, then present at a poll */
  assert_int_equal(sr_kit_fill(fx->kit, fx->cr3, VA + K4, K4, SEED3), 0);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_clean_once(r, 0);
  assert_chunk(r, 0, SEED);
  assert_chunk(r, 1, SEED3);
}

/* ---- one entry, many chunks ------------------------------------------- */

static void test_poll_pde_blocks_512_chunks_of_three_reads(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r[3];
  sr_swap_stats_t st;
  uint64_t reread;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, M2, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA, 2, 4242), 0);
  /* 512 chunks in all: [0, 200), [200, 450), [450, 512), odd edges */
  assert_int_equal(
      swapfx_read_new(fx, &r[0], fx->cr3, VA + 3, 200 * K4 - 3, 0, 0),
      SR_PENDING);
  assert_int_equal(
      swapfx_read_new(fx, &r[1], fx->cr3, VA + 200 * K4, 250 * K4, 0, 0),
      SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &r[2], fx->cr3, VA + 450 * K4 + 77,
                                   62 * K4 - 77 - 5, 0, 0),
                   SR_PENDING);
  st = swapfx_stats(fx);
  assert_int_equal(st.pending, 3);
  assert_int_equal(st.pending_chunks, 512);
  assert_int_equal(st.watched_entries, 1 + 2); /* PDE; PDPTE, PML4E */

  /* an idle poll costs one load per watched entry, whatever the chunk
   * count */
  reread = st.entries_reread;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_int_equal(swapfx_stats(fx).entries_reread - reread, 1 + 2);

  assert_int_equal(swapfx_in(fx, fx->cr3, VA, 2), 0);
  fx->now += 5;
  assert_int_equal(swapfx_poll(fx, NULL), 3);
  for (int i = 0; i < 3; i++) {
    assert_clean_once(r[i], 0);
    assert_true(swapfx_mismatch(r[i]->buf, r[i]->gva, r[i]->len, SEED) ==
                SIZE_MAX);
  }
  st = swapfx_stats(fx);
  assert_int_equal(st.pending, 0);
  assert_int_equal(st.pending_chunks, 0);
  assert_int_equal(st.watched_entries, 0);
}

/* A missing 4 KiB page comes back as part of a 2 MiB page (the guest
 * collapsed the page table: new 2 MiB frame, old table page cleared) while
 * another chunk of the read is still missing: it counts once. */
static void test_poll_4k_page_back_inside_2m_page(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  uint64_t big, pte_gpa;
  uint64_t zero = 0;
  uint8_t* pat;
  uint64_t start = VA + M2 - 2 * K4; /* chunks 0, 1 below VA+M2; 2, 3 above */

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 2 * M2, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + M2 - K4, 1, 7), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + M2 + K4, 1, 8), 0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, start, 4 * K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_stats(fx).pending_chunks, 2);

  /* collapse [VA, VA + M2) into one 2 MiB page holding SEED2 */
  assert_int_equal(sr_kit_alloc(fx->kit, M2, M2, &big), 0);
  pat = pattern(VA, M2, SEED2);
  assert_non_null(pat);
  assert_int_equal(sr_kit_write_phys(fx->kit, big, pat, M2), 0);
  free(pat);
  assert_int_equal(
      sr_kit_entry_gpa(fx->kit, fx->cr3, VA + M2 - K4, 1, &pte_gpa), 0);
  assert_int_equal(sr_kit_write_phys(fx->kit, pte_gpa, &zero, 8), 0);
  assert_int_equal(sr_kit_set_entry(fx->kit, fx->cr3, VA, 2,
                                    big | SWAPFX_TABLE | SWAPFX_PS, NULL),
                   0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_waiting(r);
  assert_int_equal(swapfx_stats(fx).pending_chunks, 1);
  assert_int_equal(swapfx_stats(fx).pending, 1);
  assert_chunk(r, 1, SEED2);

  /* more polls with nothing new do not complete it either */
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_waiting(r);

  assert_int_equal(swapfx_in(fx, fx->cr3, VA + M2 + K4, 1), 0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_clean_once(r, 0);
  assert_chunk(r, 0, SEED);
  assert_chunk(r, 1, SEED2);
  assert_chunk(r, 2, SEED);
  assert_chunk(r, 3, SEED);
}

/* A paged-out 2 MiB page comes back split into 4 KiB pages, some of them
 * still paged out: the present ones are copied, the holes keep the read
 * waiting until they come in too. */
static void test_poll_2m_page_split_into_4k_with_holes(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  uint64_t frame, pt, hole4, hole6;
  sr_pte_info_t as;
  uint64_t start = VA + 3 * K4 + 100;
  sr_swap_stats_t st;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, M2, M2, RWU, SEED), 0);
  frame = swapfx_frame(fx, fx->cr3, VA, 2);
  assert_true(frame != 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA, 2, 512), 0);
  /* chunks 0..6 cover pages 3..9 */
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, start, 6 * K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_stats(fx).pending_chunks, 7);

  /* a new page table: page i -> frame + i * 4K, pages 4 and 6 swapped */
  assert_int_equal(sr_kit_alloc(fx->kit, K4, K4, &pt), 0);
  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  as.swap_type = 2;
  as.swap_offset = 900;
  assert_int_equal(sr_kit_encode(&as, 1, &hole4), 0);
  as.swap_offset = 901;
  assert_int_equal(sr_kit_encode(&as, 1, &hole6), 0);
  for (uint64_t i = 0; i < 512; i++) {
    uint64_t e = (frame + i * K4) | SWAPFX_TABLE;
    if (i == 4)
      e = hole4;
    if (i == 6)
      e = hole6;
    assert_int_equal(sr_kit_write_phys(fx->kit, pt + 8 * i, &e, 8), 0);
  }
  assert_int_equal(
      sr_kit_set_entry(fx->kit, fx->cr3, VA, 2, pt | SWAPFX_TABLE, NULL), 0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_waiting(r);
  st = swapfx_stats(fx);
  assert_int_equal(st.pending_chunks, 2);
  /* two PTEs of the new table; the PDE, PDPTE, PML4E above them */
  assert_int_equal(st.watched_entries, 2 + 3);
  for (size_t i = 0; i < 7; i++)
    if (i != 1 && i != 3)
      assert_chunk(r, i, SEED);

  /* one hole comes in: still waiting for the other */
  assert_int_equal(sr_kit_set_entry(fx->kit, fx->cr3, VA + 4 * K4, 1,
                                    (frame + 4 * K4) | SWAPFX_TABLE, NULL),
                   0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_waiting(r);
  assert_int_equal(swapfx_stats(fx).pending_chunks, 1);
  assert_int_equal(sr_kit_set_entry(fx->kit, fx->cr3, VA + 6 * K4, 1,
                                    (frame + 6 * K4) | SWAPFX_TABLE, NULL),
                   0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_clean_once(r, 0);
  assert_true(swapfx_mismatch(r->buf, r->gva, r->len, SEED) == SIZE_MAX);
  assert_int_equal(r->done.gpa, frame + 3 * K4 + 100);
}

/* A 2 MiB leaf then 4 KiB pages: chunks on both sides count one each. */
static void test_poll_read_spans_2m_boundary(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  uint64_t start = VA + M2 - 6 * 1024; /* 2K, 4K | 4K, 2K */

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, M2, M2, RWU, SEED), 0);
  assert_int_equal(swapfx_map(fx, fx->cr3, VA + M2, 4 * K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA, 2, 60), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + M2 + K4, 1, 61), 0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, start, 12 * 1024, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_stats(fx).pending_chunks, 3);
  /* a PDE and a PTE; the PTE's PDE, the shared PDPTE and PML4E */
  assert_int_equal(swapfx_stats(fx).watched_entries, 2 + 3);
  assert_chunk(r, 2, SEED);

  assert_int_equal(swapfx_in(fx, fx->cr3, VA, 2), 0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_waiting(r);
  assert_int_equal(swapfx_stats(fx).pending_chunks, 1);
  assert_chunk(r, 0, SEED);
  assert_chunk(r, 1, SEED);

  assert_int_equal(swapfx_in(fx, fx->cr3, VA + M2 + K4, 1), 0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_clean_once(r, 0);
  assert_int_equal(r->done.nchunks, 4);
  assert_true(swapfx_mismatch(r->buf, r->gva, r->len, SEED) == SIZE_MAX);
}

/* ---- parents on the walk ------------------------------------------------ */

/* Index of va's entry in its table at level (SDM 4.5). */
static uint64_t idx(uint64_t va, int level) {
  return (va >> (12 + 9 * (level - 1))) & 511;
}

/* A fresh 2 MiB frame holding the pattern of seed for [va, va + 2 MiB). */
static uint64_t big_page(swapfx_t* fx, uint64_t va, uint64_t seed) {
  uint64_t big = 0;
  uint8_t* pat = pattern(va, M2, seed);

  if (pat == NULL || sr_kit_alloc(fx->kit, M2, M2, &big) != 0 ||
      sr_kit_write_phys(fx->kit, big, pat, M2) != 0)
    big = 0;
  free(pat);
  return big;
}

/* The guest replaces the PDE above a non-present PTE by a 2 MiB page and
 * leaves the old page table as it was: the chunk is re-walked through the
 * PDE and completes on the next poll with the new page's bytes. */
static void test_poll_pde_becomes_2m_page_old_table_untouched(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  uint64_t big, old;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, M2, K4, RWU, SEED), 0);
  old = swapfx_frame(fx, fx->cr3, VA, 1);
  assert_true(old != 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 31), 0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA, 3 * K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_waiting(r);

  big = big_page(fx, VA, SEED2);
  assert_true(big != 0);
  assert_int_equal(sr_kit_set_entry(fx->kit, fx->cr3, VA, 2,
                                    big | SWAPFX_TABLE | SWAPFX_PS, NULL),
                   0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_clean_once(r, 0);
  assert_chunk(r, 0, SEED); /* copied when the read started */
  assert_chunk(r, 1, SEED2);
  assert_chunk(r, 2, SEED);
  assert_int_equal(r->done.gpa, old); /* chunk 0's, at its copy */
  assert_int_equal(swapfx_stats(fx).watched_entries, 0);
}

/* The PDE moves to another page table (the old one untouched): first one
 * whose PTE is paged out too (the chunk now waits on the new PTE only),
 * then one whose PTE is present (the chunk completes). */
static void test_poll_pde_moves_to_another_table(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  uint64_t pt2, pt3, frame, e;
  uint8_t* pat;
  sr_pte_info_t as;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, M2, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 41), 0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA + K4 + 9, 100, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_stats(fx).watched_entries, 1 + 3);

  /* table 2: the page is paged out there as well, with another entry */
  assert_int_equal(sr_kit_alloc(fx->kit, K4, K4, &pt2), 0);
  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  as.swap_type = 1;
  as.swap_offset = 42;
  assert_int_equal(sr_kit_encode(&as, 1, &e), 0);
  assert_int_equal(sr_kit_write_phys(fx->kit, pt2 + 8 * idx(VA + K4, 1), &e, 8),
                   0);
  assert_int_equal(
      sr_kit_set_entry(fx->kit, fx->cr3, VA, 2, pt2 | SWAPFX_TABLE, NULL), 0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_waiting(r);
  /* the old PTE's record is gone, the new PTE is watched */
  assert_int_equal(swapfx_stats(fx).watched_entries, 1 + 3);
  assert_int_equal(swapfx_stats(fx).pending_chunks, 1);

  /* table 3: the page is present, on a new frame */
  assert_int_equal(sr_kit_alloc(fx->kit, K4, K4, &pt3), 0);
  assert_int_equal(sr_kit_alloc(fx->kit, K4, K4, &frame), 0);
  pat = pattern(VA + K4, K4, SEED3);
  assert_non_null(pat);
  assert_int_equal(sr_kit_write_phys(fx->kit, frame, pat, K4), 0);
  free(pat);
  e = frame | SWAPFX_TABLE;
  assert_int_equal(sr_kit_write_phys(fx->kit, pt3 + 8 * idx(VA + K4, 1), &e, 8),
                   0);
  assert_int_equal(
      sr_kit_set_entry(fx->kit, fx->cr3, VA, 2, pt3 | SWAPFX_TABLE, NULL), 0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_clean_once(r, 0);
  assert_chunk(r, 0, SEED3);
  assert_int_equal(r->done.gpa, frame + 9);
  assert_int_equal(swapfx_stats(fx).watched_entries, 0);
}

/* A PML4 entry moves to a new PDPT (old tables untouched): everything
 * below it is re-walked in one poll, chunks blocked by PTEs and by PDEs
 * alike, and the records of the old tables go away. */
static void test_poll_pml4e_change_rewalks_everything_below(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r1;
  swapfx_rec_t* r2;
  uint64_t big1, big2, pd, pdpt, e;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 2 * M2, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 51), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + M2, 2, 52), 0);
  assert_int_equal(swapfx_read_new(fx, &r1, fx->cr3, VA, 2 * K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &r2, fx->cr3, VA + M2 + 5, 3 * K4, 0, 0),
                   SR_PENDING);
  /* PTE, PDE (blocking), PDE above the PTE, PDPTE, PML4E */
  assert_int_equal(swapfx_stats(fx).watched_entries, 5);
  assert_int_equal(swapfx_poll(fx, NULL), 0);

  /* new tables: PDPT -> PD -> two 2 MiB pages */
  big1 = big_page(fx, VA, SEED2);
  big2 = big_page(fx, VA + M2, SEED2);
  assert_true(big1 != 0 && big2 != 0);
  assert_int_equal(sr_kit_alloc(fx->kit, K4, K4, &pd), 0);
  assert_int_equal(sr_kit_alloc(fx->kit, K4, K4, &pdpt), 0);
  e = big1 | SWAPFX_TABLE | SWAPFX_PS;
  assert_int_equal(sr_kit_write_phys(fx->kit, pd + 8 * idx(VA, 2), &e, 8), 0);
  e = big2 | SWAPFX_TABLE | SWAPFX_PS;
  assert_int_equal(sr_kit_write_phys(fx->kit, pd + 8 * idx(VA + M2, 2), &e, 8),
                   0);
  e = pd | SWAPFX_TABLE;
  assert_int_equal(sr_kit_write_phys(fx->kit, pdpt + 8 * idx(VA, 3), &e, 8), 0);
  assert_int_equal(
      sr_kit_set_entry(fx->kit, fx->cr3, VA, 4, pdpt | SWAPFX_TABLE, NULL), 0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 2);
  assert_clean_once(r1, 0);
  assert_clean_once(r2, 0);
  assert_chunk(r1, 0, SEED);
  assert_chunk(r1, 1, SEED2);
  assert_true(swapfx_mismatch(r2->buf, r2->gva, r2->len, SEED2) == SIZE_MAX);
  assert_int_equal(swapfx_stats(fx).watched_entries, 0);
  assert_int_equal(swapfx_stats(fx).pending_chunks, 0);
}

/* An idle poll re-reads each blocking entry and each distinct entry above
 * them exactly once: watched_entries counts both. */
static void test_poll_idle_rereads_blockers_and_distinct_parents(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r[4];
  const uint64_t G = SR_PAGE_1G;
  sr_swap_stats_t st;
  uint64_t before;
  /* blocking: PTEs VA+1, VA+3 (table 0), VA+2M+5 (table 2), VA+1G (table
   * G); the PDE of VA+4M. Parents: PDEs of tables 0, 2, G; PDPTEs of VA
   * and VA+1G; one PML4E. */
  const uint64_t blocking = 5, parents = 3 + 2 + 1;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 5 * M2, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_map(fx, fx->cr3, VA + G, M2, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + K4, 1, 61), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + 3 * K4, 1, 62), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + 2 * M2 + 5 * K4, 1, 63),
                   0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + G, 1, 64), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + 4 * M2, 2, 65), 0);
  assert_int_equal(swapfx_read_new(fx, &r[0], fx->cr3, VA, 4 * K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(
      swapfx_read_new(fx, &r[1], fx->cr3, VA + 2 * M2 + 5 * K4, K4, 0, 0),
      SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &r[2], fx->cr3, VA + G, 8, 0, 0),
                   SR_PENDING);
  assert_int_equal(
      swapfx_read_new(fx, &r[3], fx->cr3, VA + 4 * M2, 2 * K4, 0, 0),
      SR_PENDING);
  st = swapfx_stats(fx);
  assert_int_equal(st.watched_entries, blocking + parents);
  for (int i = 0; i < 3; i++) {
    before = swapfx_stats(fx).entries_reread;
    fx->now += 10;
    assert_int_equal(swapfx_poll(fx, NULL), 0);
    st = swapfx_stats(fx);
    assert_int_equal(st.entries_reread - before, blocking + parents);
    assert_int_equal(st.watched_entries, blocking + parents);
  }

  /* one table's last blocker comes in: its PDE is no longer watched */
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + 2 * M2 + 5 * K4, 1), 0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_clean_once(r[1], 0);
  assert_int_equal(swapfx_stats(fx).watched_entries,
                   blocking - 1 + parents - 1);

  assert_int_equal(swapfx_in(fx, fx->cr3, VA + K4, 1), 0);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + 3 * K4, 1), 0);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + G, 1), 0);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + 4 * M2, 2), 0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 3);
  for (int i = 0; i < 4; i++)
    assert_true(swapfx_mismatch(r[i]->buf, r[i]->gva, r[i]->len, SEED) ==
                SIZE_MAX);
  assert_int_equal(swapfx_stats(fx).watched_entries, 0);
}

/* ---- runs: consecutive entries compared as one block ------------------- */

#define NRUN 64

/* 64 consecutive blocking PTEs (one run in the scan, plus the parents):
 * paged in one at a time in a scattered order, each poll sees exactly the
 * entry that changed, wherever it sits in the run, and completes the read
 * with the last one. */
static void test_poll_run_sees_each_entry_where_it_sits(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  const size_t order[] = {37, 0, NRUN - 1, 15, 16, 1, 62, 31, 32, 48};
  size_t i, k, left = NRUN;
  bool in[NRUN] = {false};

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, NRUN * K4, K4, RWU, SEED), 0);
  for (i = 0; i < NRUN; i++)
    assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + i * K4, 1, 500 + i), 0);
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA, NRUN * K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(swapfx_stats(fx).watched_entries, NRUN + 3);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  for (k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
    i = order[k];
    assert_int_equal(swapfx_in(fx, fx->cr3, VA + i * K4, 1), 0);
    in[i] = true;
    fx->now += 10;
    assert_int_equal(swapfx_poll(fx, NULL), 0);
    left--;
    assert_int_equal(swapfx_stats(fx).pending_chunks, left);
    assert_chunk(r, i, SEED);
    /* an idle poll after it: nothing more */
    fx->now += 10;
    assert_int_equal(swapfx_poll(fx, NULL), 0);
    assert_int_equal(swapfx_stats(fx).pending_chunks, left);
  }
  /* in and out again between polls, to another swap slot: the entry
   * changed, the chunk is re-walked and still missing */
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + 40 * K4, 1), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + 40 * K4, 1, 9000), 0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 0);
  assert_int_equal(swapfx_stats(fx).pending_chunks, left);
  for (i = 0; i < NRUN; i++)
    if (!in[i])
      assert_int_equal(swapfx_in(fx, fx->cr3, VA + i * K4, 1), 0);
  fx->now += 10;
  assert_int_equal(swapfx_poll(fx, NULL), 1);
  assert_clean_once(r, 0);
  for (i = 0; i < NRUN; i++)
    assert_chunk(r, i, SEED);
}

/* Two reads over one table, 128 consecutive blocking PTEs (one run); the
 * first is cancelled, so its records are deleted and the second's move
 * into their dense positions (the run broken up): the changes under the
 * second are still seen, with a budget smaller than one run as well as
 * without. */
static void run_reshuffle_case(swapfx_t* fx, uint32_t budget) {
  sr_swap_opts_t opts;
  swapfx_rec_t *a, *b;
  size_t i;
  int polls;

  memset(&opts, 0, sizeof(opts));
  opts.poll_budget = budget;
  assert_int_equal(swapfx_reopen(fx, &opts), 0);
  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 2 * NRUN * K4, K4, RWU, SEED),
                   0);
  for (i = 0; i < 2 * NRUN; i++)
    assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA + i * K4, 1, 700 + i), 0);
  assert_int_equal(swapfx_read_new(fx, &a, fx->cr3, VA, NRUN * K4, 0, 0),
                   SR_PENDING);
  assert_int_equal(
      swapfx_read_new(fx, &b, fx->cr3, VA + NRUN * K4, NRUN * K4, 0, 0),
      SR_PENDING);
  for (polls = 0; polls < 2 * NRUN; polls++) {
    fx->now += 10;
    assert_int_equal(swapfx_poll(fx, NULL), 0);
  }
  assert_int_equal(sr_swap_cancel(fx->swap, a->handle), 0);
  assert_int_equal(a->done.status, SR_ECANCELED);
  /* b's last entry comes in, then all of them */
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + (2 * NRUN - 1) * K4, 1), 0);
  for (polls = 0; polls < 2 * NRUN && swapfx_stats(fx).pending_chunks == NRUN;
       polls++) {
    fx->now += 10;
    assert_int_equal(swapfx_poll(fx, NULL), 0);
  }
  assert_int_equal(swapfx_stats(fx).pending_chunks, NRUN - 1);
  for (i = NRUN; i < 2 * NRUN - 1; i++)
    assert_int_equal(swapfx_in(fx, fx->cr3, VA + i * K4, 1), 0);
  for (polls = 0; polls < 4 * NRUN && b->ncb == 0; polls++) {
    fx->now += 10;
    assert_true(swapfx_poll(fx, NULL) >= 0);
  }
  assert_clean_once(b, 0);
  for (i = 0; i < NRUN; i++)
    assert_chunk(b, i, SEED);
}

static void test_poll_run_after_cancel_reshuffles(void** state) {
  run_reshuffle_case(*state, 0);
}

static void test_poll_run_after_cancel_reshuffles_budget_7(void** state) {
  run_reshuffle_case(*state, 7);
}

/* ---- budget ------------------------------------------------------------ */

#define NBLOCK 12

/* With a budget of b entries per poll, every poll re-reads at most b
 * entries and every changed entry is seen within about ceil(W / b) polls:
 * no read starves behind the others. */
static void budget_case(swapfx_t* fx, uint32_t budget) {
  sr_swap_opts_t opts;
  swapfx_rec_t* r[NBLOCK];
  sr_swap_stats_t st;
  int polls = 0;
  uint64_t w;

  memset(&opts, 0, sizeof(opts));
  opts.poll_budget = budget;
  assert_int_equal(swapfx_reopen(fx, &opts), 0);
  assert_int_equal(swapfx_map(fx, fx->cr3, VA, 2 * NBLOCK * K4, K4, RWU, SEED),
                   0);
  /* read i waits for pages 2i and 2i+1: 2 * NBLOCK distinct entries */
  for (size_t i = 0; i < NBLOCK; i++) {
    assert_int_equal(
        swapfx_out_swap(fx, fx->cr3, VA + 2 * i * K4, 1, 100 + 2 * i), 0);
    assert_int_equal(
        swapfx_out_swap(fx, fx->cr3, VA + (2 * i + 1) * K4, 1, 101 + 2 * i), 0);
    assert_int_equal(
        swapfx_read_new(fx, &r[i], fx->cr3, VA + 2 * i * K4, 2 * K4, 0, 0),
        SR_PENDING);
  }
  w = swapfx_stats(fx).watched_entries;
  assert_int_equal(w, 2 * NBLOCK + 3); /* + PDE, PDPTE, PML4E */

  /* only the entry of the last read's second page changes */
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + (2 * (NBLOCK - 1) + 1) * K4, 1),
                   0);
  assert_int_equal(swapfx_in(fx, fx->cr3, VA + 2 * (NBLOCK - 1) * K4, 1), 0);
  /* a full round is ceil(W / b) polls; allow a second for records that
   * move inside the index while the round runs */
  for (polls = 0; polls < (int)(2 * ((w + budget - 1) / budget) + 1) &&
                  r[NBLOCK - 1]->ncb == 0;
       polls++) {
    uint64_t before = swapfx_stats(fx).entries_reread;
    int rc;
    fx->now += 1;
    rc = swapfx_poll(fx, NULL);
    assert_true(rc == 0 || rc == 1);
    st = swapfx_stats(fx);
    assert_true(st.entries_reread - before <= budget);
  }
  assert_int_equal(r[NBLOCK - 1]->ncb, 1);
  assert_int_equal(r[NBLOCK - 1]->done.status, 0);

  /* everything comes in: all complete within a bounded number of polls */
  for (size_t i = 0; i + 1 < NBLOCK; i++) {
    assert_int_equal(swapfx_in(fx, fx->cr3, VA + 2 * i * K4, 1), 0);
    assert_int_equal(swapfx_in(fx, fx->cr3, VA + (2 * i + 1) * K4, 1), 0);
  }
  for (polls = 0; polls < (int)(4 * w + 4); polls++) {
    uint64_t before = swapfx_stats(fx).entries_reread;
    int rc;
    fx->now += 1;
    rc = swapfx_poll(fx, NULL);
    assert_true(rc >= 0);
    assert_true(swapfx_stats(fx).entries_reread - before <= budget);
    if (swapfx_stats(fx).pending == 0)
      break;
  }
  assert_int_equal(swapfx_stats(fx).pending, 0);
  for (size_t i = 0; i < NBLOCK; i++) {
    assert_int_equal(r[i]->ncb, 1);
    assert_int_equal(r[i]->ndtor, 1);
    assert_int_equal(r[i]->done.status, 0);
    assert_true(swapfx_mismatch(r[i]->buf, r[i]->gva, r[i]->len, SEED) ==
                SIZE_MAX);
  }
}

static void test_poll_budget_1_completes_everything(void** state) {
  budget_case(*state, 1);
}

static void test_poll_budget_5_completes_everything(void** state) {
  budget_case(*state, 5);
}

/* ---- deadlines ---------------------------------------------------------- */

static void test_poll_reports_next_deadline(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r[4];
  uint64_t next = 0;
  uint64_t t0;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, K4, K4, RWU, SEED), 0);
  /* nothing pending: no deadline; next_ns may be NULL */
  assert_int_equal(swapfx_poll(fx, &next), 0);
  assert_int_equal(next, SR_TIMEOUT_NONE);
  assert_int_equal(swapfx_poll(fx, NULL), 0);

  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA, 1, 1), 0);
  t0 = fx->now;
  assert_int_equal(swapfx_read_new(fx, &r[0], fx->cr3, VA, 8, 0, 100),
                   SR_PENDING);
  assert_int_equal(swapfx_read_new(fx, &r[1], fx->cr3, VA, 8, 0, 50),
                   SR_PENDING);
  assert_int_equal(
      swapfx_read_new(fx, &r[2], fx->cr3, VA, 8, 0, SR_TIMEOUT_NONE),
      SR_PENDING);
  fx->now = t0 + 10;
  assert_int_equal(swapfx_read_new(fx, &r[3], fx->cr3, VA, 8, 0, 70),
                   SR_PENDING);
  assert_int_equal(swapfx_poll(fx, &next), 0);
  assert_int_equal(next, t0 + 50);

  fx->now = t0 + 49;
  assert_int_equal(swapfx_poll(fx, &next), 0);
  assert_int_equal(next, t0 + 50);
  fx->now = t0 + 50; /* polling at the reported time completes it */
  assert_int_equal(swapfx_poll(fx, &next), 1);
  assert_int_equal(r[1]->done.status, SR_ETIMEDOUT);
  assert_int_equal(next, t0 + 80);
  fx->now = t0 + 1000;
  assert_int_equal(swapfx_poll(fx, &next), 2);
  assert_int_equal(r[0]->done.status, SR_ETIMEDOUT);
  assert_int_equal(r[3]->done.status, SR_ETIMEDOUT);
  assert_int_equal(next, SR_TIMEOUT_NONE);
  assert_int_equal(r[2]->ncb, 0);
  assert_int_equal(swapfx_stats(fx).pending, 1);
}

static void test_poll_deadline_far_in_the_future_saturates(void** state) {
  swapfx_t* fx = *state;
  swapfx_rec_t* r;
  uint64_t next = 0;

  assert_int_equal(swapfx_map(fx, fx->cr3, VA, K4, K4, RWU, SEED), 0);
  assert_int_equal(swapfx_out_swap(fx, fx->cr3, VA, 1, 1), 0);
  fx->now = UINT64_MAX - 100;
  /* now + timeout overflows: it must not become a deadline in the past */
  assert_int_equal(swapfx_read_new(fx, &r, fx->cr3, VA, 8, 0, 1000),
                   SR_PENDING);
  assert_int_equal(swapfx_poll(fx, &next), 0);
  assert_int_equal(r->ncb, 0);
  assert_true(next >= fx->now);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_poll_page_in_completes_on_next_poll,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_poll_page_appears_and_disappears,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_poll_page_present_only_while_not_polled, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_poll_pde_blocks_512_chunks_of_three_reads, setup, teardown),
      cmocka_unit_test_setup_teardown(test_poll_4k_page_back_inside_2m_page,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_poll_2m_page_split_into_4k_with_holes, setup, teardown),
      cmocka_unit_test_setup_teardown(test_poll_read_spans_2m_boundary, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_poll_pde_becomes_2m_page_old_table_untouched, setup, teardown),
      cmocka_unit_test_setup_teardown(test_poll_pde_moves_to_another_table,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_poll_pml4e_change_rewalks_everything_below, setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_poll_idle_rereads_blockers_and_distinct_parents, setup,
          teardown),
      cmocka_unit_test_setup_teardown(
          test_poll_run_sees_each_entry_where_it_sits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_poll_run_after_cancel_reshuffles,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(
          test_poll_run_after_cancel_reshuffles_budget_7, setup, teardown),
      cmocka_unit_test_setup_teardown(test_poll_budget_1_completes_everything,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_poll_budget_5_completes_everything,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_poll_reports_next_deadline, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_poll_deadline_far_in_the_future_saturates, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
