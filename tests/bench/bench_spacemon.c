/* Benchmark: the idle poll of an address-space monitor (issue 8).
 *
 * The kit maps 1 GiB of VA with 4 KiB pages (512 page tables, one PD, one
 * PDPT, one PML4: 515 table pages). An sr_spacemon_t watches the whole
 * space; the figure is sr_swap_poll with nothing changed, next to the
 * baseline of a memcmp of the same 515 table pages against copies, read
 * through a PROT_READ mapping of the same file, in the same run
 * (interleaved). The memory row is the monitor's heap (its stats, which
 * count every byte it takes through the engine's allocator). Verified: an
 * idle poll compares 515 tables and delivers nothing; one PTE swapped out
 * is one UNMAPPED event at its VA, swapped in one MAPPED at its frame.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <swapread.h>

#include "bench.h"

#define VA UINT64_C(0x00007f0000000000)
#define SPAN (UINT64_C(1) << 30)
#define NPT (SPAN / SR_PAGE_2M)
#define NTAB (NPT + 3)
#define ADDR UINT64_C(0x000ffffffffff000)

typedef struct world_s {
  sr_kit_t* kit;
  sr_image_t* image;
  sr_swap_t* swap;
  sr_spacemon_t* sm;
  uint64_t cr3;
  const unsigned char* ro;
  size_t ro_len;
  uint64_t tab[NTAB];
  unsigned char* copy; /* NTAB pages */
  uint64_t now;
  int nev;
  sr_spacemon_event_t last;
  volatile int sink;
} world_t;

static void on_event(sr_spacemon_t* sm, const sr_spacemon_event_t* ev,
                     void* data) {
  world_t* w = data;
  (void)sm;
  w->nev++;
  w->last = *ev;
}

static void run_poll(void* arg) {
  world_t* w = arg;
  w->now += 1000000;
  BENCH_CHECK(sr_swap_poll(w->swap, w->now, NULL) == 0);
}

static void run_memcmp(void* arg) {
  world_t* w = arg;
  int acc = 0;
  size_t i;
  for (i = 0; i < NTAB; i++)
    acc |= memcmp(w->ro + w->tab[i], w->copy + i * 4096, 4096);
  w->sink = acc;
}

static void world_init(world_t* w) {
  sr_kit_opts_t ko;
  uint64_t e, i;

  memset(&ko, 0, sizeof(ko));
  ko.size = SPAN + (UINT64_C(64) << 20);
  BENCH_CHECK(sr_kit_create(&w->kit, &ko) == 0);
  BENCH_CHECK(sr_kit_new_space(w->kit, SR_PAGING_4LEVEL, &w->cr3) == 0);
  BENCH_CHECK(sr_kit_map(w->kit, w->cr3, VA, SPAN, SR_PAGE_4K,
                         SR_PROT_W | SR_PROT_U) == 0);
  w->tab[0] = w->cr3;
  BENCH_CHECK(sr_kit_get_entry(w->kit, w->cr3, VA, 4, &e) == 0);
  w->tab[1] = e & ADDR;
  BENCH_CHECK(sr_kit_get_entry(w->kit, w->cr3, VA, 3, &e) == 0);
  w->tab[2] = e & ADDR;
  for (i = 0; i < NPT; i++) {
    BENCH_CHECK(sr_kit_get_entry(w->kit, w->cr3, VA + i * SR_PAGE_2M, 2, &e) ==
                0);
    w->tab[3 + i] = e & ADDR;
  }
  BENCH_CHECK(sr_kit_open_image(w->kit, &w->image) == 0);
  BENCH_CHECK(sr_swap_new(&w->swap, w->image, NULL) == 0);
  w->ro_len = (size_t)sr_image_file_size(w->image);
  w->ro = mmap(NULL, w->ro_len, PROT_READ, MAP_SHARED, sr_kit_fd(w->kit), 0);
  BENCH_CHECK(w->ro != MAP_FAILED);
  w->copy = malloc(NTAB * 4096);
  BENCH_CHECK(w->copy != NULL);
  for (i = 0; i < NTAB; i++)
    memcpy(w->copy + i * 4096, w->ro + w->tab[i], 4096);
}

/* The monitor sees exactly a page-out and a page-in. */
static void verify(world_t* w) {
  uint64_t va = VA + 777 * 4096, frame, e;
  sr_pte_info_t as;
  sr_spacemon_stats_t s0, s1;

  BENCH_CHECK(sr_kit_get_entry(w->kit, w->cr3, va, 1, &e) == 0);
  frame = e & ADDR;
  sr_spacemon_stats(w->sm, &s0);
  run_poll(w);
  sr_spacemon_stats(w->sm, &s1);
  BENCH_CHECK(w->nev == 0);
  BENCH_CHECK(s1.tables_compared - s0.tables_compared == NTAB);
  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  as.swap_type = 1;
  as.swap_offset = 42;
  BENCH_CHECK(sr_kit_page_out(w->kit, w->cr3, va, 1, &as) == 0);
  run_poll(w);
  BENCH_CHECK(w->nev == 1 && w->last.kind == SR_SPACEMON_UNMAPPED &&
              w->last.va == va && w->last.old.gpa == frame);
  BENCH_CHECK(sr_kit_page_in(w->kit, w->cr3, va, 1) == 0);
  run_poll(w);
  BENCH_CHECK(w->nev == 2 && w->last.kind == SR_SPACEMON_MAPPED &&
              w->last.now.gpa == frame);
  run_poll(w);
  BENCH_CHECK(w->nev == 2);
}

int main(void) {
  world_t* w = calloc(1, sizeof(*w));
  bench_stats_t sp, sb;
  sr_spacemon_stats_t st;
  bench_row_t row;
  uint64_t t0;
  unsigned reps = bench_reps(31);

  BENCH_CHECK(w != NULL);
  world_init(w);
  t0 = bench_now_ns();
  BENCH_CHECK(sr_spacemon_new(&w->sm, w->swap, w->cr3, NULL, on_event, w) == 0);
  bench_note("first snapshot of %u tables: %.2f ms", (unsigned)NTAB,
             (double)(bench_now_ns() - t0) / 1e6);
  verify(w);
  bench_time_pair(run_poll, run_memcmp, w, reps, &sp, &sb);
  BENCH_CHECK(w->nev == 2); /* nothing changed while timing */

  memset(&row, 0, sizeof(row));
  row.scenario = "spacemon";
  row.name = "1 GiB in 4 KiB pages (515 tables), nothing changed";
  row.metric = "idle poll";
  row.unit = "us";
  row.fig.med = sp.med / 1e3;
  row.fig.min = sp.min / 1e3;
  row.fig.max = sp.max / 1e3;
  row.fig.n = sp.n;
  row.have_range = 1;
  row.base_med = sb.med / 1e3; /* memcmp of the 515 table pages */
  row.target = "<= 2x";
  bench_row(&row);

  sr_spacemon_stats(w->sm, &st);
  memset(&row, 0, sizeof(row));
  row.scenario = "spacemon";
  row.name = "1 GiB in 4 KiB pages (515 tables)";
  row.metric = "heap held";
  row.unit = "KiB";
  row.fig.med = row.fig.min = row.fig.max = (double)st.bytes / 1024;
  row.fig.n = 1;
  row.base_med = -1;
  row.target = "bounded, reported";
  bench_row(&row);
  bench_note("heap %llu bytes for %llu tables: %.0f B per table",
             (unsigned long long)st.bytes, (unsigned long long)st.tables,
             (double)st.bytes / (double)st.tables);

  BENCH_CHECK(sr_spacemon_free(w->sm) == 0);
  sr_swap_free(w->swap);
  munmap((void*)w->ro, w->ro_len);
  sr_image_close(w->image);
  sr_kit_destroy(w->kit);
  free(w->copy);
  free(w);
  return bench_finish();
}
