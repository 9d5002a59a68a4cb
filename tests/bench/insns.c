/* Instructions per operation, for keeping regressions out (issue 6 item 4).
 *
 * Wall-clock figures on a shared 2-core VM move by 10-20 % run to run;
 * instruction counts under callgrind do not. This program runs each hot
 * operation K times inside its own non-inlined function (op_*), on a small
 * kit image, checking every result; tests/bench/insns.sh runs it under
 * `valgrind --tool=callgrind`, reads each op_* function's inclusive
 * instruction count and divides by the count this program prints, so the
 * table says "instructions per read / per chunk / per table". Run it with
 * `make bench-insns`. Not run by `make bench` (it is not a bench_*.c).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swapread.h>

#include "bench.h"

#define VA UINT64_C(0x00007f0000000000)
#define SPAN (UINT64_C(8) << 20) /* 8 MiB of 4 KiB pages */
#define SEED 7
#define K 4096u
#define NBATCH 512u

typedef struct ctx_s {
  sr_kit_t* kit;
  sr_image_t* image;
  uint64_t cr3;
  uint64_t va[K];
  uint64_t sum, expect;
  sr_batch_item_t items[NBATCH];
  uint64_t vals[NBATCH];
  unsigned char* big;
} ctx_t;

#define NOINLINE __attribute__((noinline))

static uint64_t want_word(uint64_t va) {
  uint64_t w = 0;
  int k;
  for (k = 0; k < 8; k++)
    w |= (uint64_t)sr_kit_pattern(SEED, va + (uint64_t)k) << (8 * k);
  return w;
}

static NOINLINE void op_translate(ctx_t* c) {
  sr_translation_t t;
  unsigned i;
  for (i = 0; i < K; i++) {
    BENCH_CHECK(sr_translate(c->image, c->cr3, c->va[i], NULL, &t) == 0);
    c->sum += t.gpa;
  }
}

static NOINLINE void op_read_virt_rnd8(ctx_t* c) {
  uint64_t v;
  unsigned i;
  for (i = 0; i < K; i++) {
    BENCH_CHECK(sr_read_virt(c->image, c->cr3, NULL, c->va[i], &v, 8, NULL) ==
                0);
    c->sum += v;
  }
}

static NOINLINE void op_read_batch_rnd8(ctx_t* c) {
  unsigned i, j;
  for (i = 0; i < K; i += NBATCH) {
    for (j = 0; j < NBATCH; j++)
      c->items[j].gva = c->va[i + j];
    BENCH_CHECK(sr_read_batch(c->image, c->cr3, NULL, c->items, NBATCH) ==
                (int)NBATCH);
    for (j = 0; j < NBATCH; j++)
      c->sum += c->vals[j];
  }
}

static void on_done(sr_swap_t* swap, const sr_swap_done_t* done, void* data) {
  (void)swap;
  (void)done;
  (void)data;
}

static NOINLINE void op_swap_read_rnd8(ctx_t* c, sr_swap_t* swap) {
  sr_swap_req_t req;
  uint64_t v;
  unsigned i;
  memset(&req, 0, sizeof(req));
  req.cr3 = c->cr3;
  req.buf = &v;
  req.len = 8;
  for (i = 0; i < K; i++) {
    req.gva = c->va[i];
    BENCH_CHECK(sr_swap_read(swap, &req, 0, on_done, NULL, NULL, NULL, NULL) ==
                0);
    c->sum += v;
  }
}

/* 16 reads of the whole 8 MiB: 2048 chunks each. */
static NOINLINE void op_read_virt_seq(ctx_t* c) {
  unsigned i;
  for (i = 0; i < 16; i++)
    BENCH_CHECK(sr_read_virt(c->image, c->cr3, NULL, VA, c->big, SPAN, NULL) ==
                0);
}

/* 64 idle polls over 1024 pending chunks, each blocked by its own PTE. */
static NOINLINE void op_idle_poll(sr_swap_t* swap) {
  unsigned i;
  for (i = 0; i < 64; i++)
    BENCH_CHECK(sr_swap_poll(swap, 1, NULL) == 0);
}

static void on_space(sr_spacemon_t* sm, const sr_spacemon_event_t* ev,
                     void* data) {
  (void)sm;
  (void)ev;
  ++*(int*)data;
}

/* 64 idle polls of a space monitor over the 8 MiB. */
static NOINLINE void op_spacemon_poll(sr_swap_t* swap) {
  unsigned i;
  for (i = 0; i < 64; i++)
    BENCH_CHECK(sr_swap_poll(swap, 1, NULL) == 0);
}

int main(void) {
  ctx_t* c = calloc(1, sizeof(*c));
  sr_kit_opts_t ko;
  sr_swap_t *swap, *pswap;
  sr_spacemon_t* sm;
  sr_swap_req_t req;
  sr_pte_info_t as;
  uint64_t x = 0x9e3779b97f4a7c15u;
  uint64_t watched = 0, tables = 0;
  unsigned i;
  int nev = 0;

  BENCH_CHECK(c != NULL);
  memset(&ko, 0, sizeof(ko));
  ko.size = SPAN + (UINT64_C(8) << 20);
  BENCH_CHECK(sr_kit_create(&c->kit, &ko) == 0);
  BENCH_CHECK(sr_kit_new_space(c->kit, SR_PAGING_4LEVEL, &c->cr3) == 0);
  BENCH_CHECK(sr_kit_map(c->kit, c->cr3, VA, SPAN, SR_PAGE_4K,
                         SR_PROT_W | SR_PROT_U) == 0);
  BENCH_CHECK(sr_kit_fill(c->kit, c->cr3, VA, SPAN, SEED) == 0);
  BENCH_CHECK(sr_kit_open_image(c->kit, &c->image) == 0);
  c->big = malloc(SPAN);
  BENCH_CHECK(c->big != NULL);
  for (i = 0; i < K; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->va[i] = VA + ((x % SPAN) & ~UINT64_C(7));
    c->expect += want_word(c->va[i]);
  }
  for (i = 0; i < NBATCH; i++) {
    c->items[i].buf = &c->vals[i];
    c->items[i].len = 8;
  }

  c->sum = 0;
  op_read_virt_rnd8(c);
  BENCH_CHECK(c->sum == c->expect);
  c->sum = 0;
  op_read_batch_rnd8(c);
  BENCH_CHECK(c->sum == c->expect);
  BENCH_CHECK(sr_swap_new(&swap, c->image, NULL) == 0);
  c->sum = 0;
  op_swap_read_rnd8(c, swap);
  BENCH_CHECK(c->sum == c->expect);
  sr_swap_free(swap);
  op_translate(c);
  op_read_virt_seq(c);
  for (i = 0; i < SPAN; i += 4096)
    BENCH_CHECK(c->big[i] == sr_kit_pattern(SEED, VA + i));

  /* Pending reads: the first 1024 pages swapped out, one read each. */
  BENCH_CHECK(sr_swap_new(&pswap, c->image, NULL) == 0);
  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  as.swap_type = 1;
  for (i = 0; i < 1024; i++) {
    as.swap_offset = 1 + i;
    BENCH_CHECK(
        sr_kit_page_out(c->kit, c->cr3, VA + (uint64_t)i * 4096, 1, &as) == 0);
    memset(&req, 0, sizeof(req));
    req.cr3 = c->cr3;
    req.gva = VA + (uint64_t)i * 4096;
    req.buf = c->big + (size_t)i * 4096;
    req.len = 4096;
    req.timeout_ns = SR_TIMEOUT_NONE;
    BENCH_CHECK(sr_swap_read(pswap, &req, 0, on_done, NULL, NULL, NULL, NULL) ==
                SR_PENDING);
  }
  {
    sr_swap_stats_t st;
    sr_swap_stats(pswap, &st);
    BENCH_CHECK(st.pending == 1024);
    watched = st.watched_entries;
  }
  op_idle_poll(pswap);
  sr_swap_free(pswap); /* cancels them */
  for (i = 0; i < 1024; i++)
    BENCH_CHECK(sr_kit_page_in(c->kit, c->cr3, VA + (uint64_t)i * 4096, 1) ==
                0);

  BENCH_CHECK(sr_swap_new(&swap, c->image, NULL) == 0);
  BENCH_CHECK(sr_spacemon_new(&sm, swap, c->cr3, NULL, on_space, &nev) == 0);
  {
    sr_spacemon_stats_t st;
    sr_spacemon_stats(sm, &st);
    tables = st.tables;
  }
  op_spacemon_poll(swap);
  BENCH_CHECK(nev == 0);
  BENCH_CHECK(sr_spacemon_free(sm) == 0);
  sr_swap_free(swap);

  /* The divisors insns.sh uses: function, count, unit. */
  printf("op_translate %u translation\n", K);
  printf("op_read_virt_rnd8 %u read\n", K);
  printf("op_read_batch_rnd8 %u item\n", K);
  printf("op_swap_read_rnd8 %u read\n", K);
  printf("op_read_virt_seq %u chunk\n", 16u * (unsigned)(SPAN / 4096));
  printf("op_idle_poll %llu watched-entry\n",
         (unsigned long long)(64 * watched));
  printf("op_spacemon_poll %llu table\n", (unsigned long long)(64 * tables));
  sr_image_close(c->image);
  sr_kit_destroy(c->kit);
  free(c->big);
  free(c);
  return 0;
}
