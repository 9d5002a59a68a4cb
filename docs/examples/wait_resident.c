/* Cookbook (d): wait until a producer's region is fully resident, then
 * read it once.
 *
 * A consumer that must read a whole region consistently (a header block
 * and the table it describes, say) does not want a read that assembles
 * pages as they trickle in over seconds: it wants to know when every page
 * is in, and then to read all of it in one go. A VA monitor gives exactly
 * that: watch the first byte of every page of the region; the initial
 * report (synchronous, from sr_monitor_watch) says which pages are out;
 * PAGE_IN / PAGE_OUT events from each sr_swap_poll keep a count of the
 * missing ones; when it reaches zero, one sr_read_virt reads the region,
 * (the guest runs: had a page gone out again since the last poll, the read
 * would stop there, SR_ENOTPRESENT, and the consumer would wait for the
 * next event; here the script leaves no such window). The holey-image kit plays
 * the guest: it builds the region with four pages swapped out, then, as a fake
 * clock advances, pages them in one by one, pages one of them out again, and
 * finally in. The program checks the count after every poll and the bytes
 * it finally read, and exits non-zero on any difference.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swapread.h>

#define PAGE 4096u
#define NPAGES 16u
#define REGION UINT64_C(0x00007f5500000000)
#define SEED 0xd00d

typedef struct consumer_s {
  unsigned missing; /* pages of the region not mapped now */
  unsigned events;
} consumer_t;

static void on_event(sr_monitor_t* mon, const sr_monitor_event_t* ev,
                     void* data) {
  consumer_t* c = data;
  (void)mon;
  c->events++;
  if (ev->kind == SR_MONITOR_PAGE_IN)
    c->missing--;
  else if (ev->kind == SR_MONITOR_PAGE_OUT)
    c->missing++;
}

static int check(int rc, const char* what) {
  if (rc < 0) {
    fprintf(stderr, "wait_resident: %s: %s\n", what, sr_strerror(rc));
    exit(1);
  }
  return rc;
}

/* The guest's side: pages out / in the page at index i. */
static void guest_out(sr_kit_t* kit, uint64_t cr3, unsigned i) {
  sr_pte_info_t as;
  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  as.swap_type = 0;
  as.swap_offset = 0x100 + i;
  check(sr_kit_page_out(kit, cr3, REGION + (uint64_t)i * PAGE, 1, &as),
        "page out");
}

static void guest_in(sr_kit_t* kit, uint64_t cr3, unsigned i) {
  check(sr_kit_page_in(kit, cr3, REGION + (uint64_t)i * PAGE, 1), "page in");
}

int main(void) {
  static unsigned char buf[NPAGES * PAGE];
  /* What the guest does at each tick of the fake clock (page index, +1 in,
   * -1 out), and the count the consumer must have after that poll. */
  static const struct {
    unsigned page;
    int dir;
    unsigned want_missing;
  } script[] = {{3, +1, 3}, {9, +1, 2},  {12, +1, 1},
                {9, -1, 2}, {14, +1, 1}, {9, +1, 0}};
  static const unsigned out0[] = {3, 9, 12, 14};
  sr_kit_opts_t ko;
  sr_kit_t* kit;
  sr_image_t* image;
  sr_swap_t* swap;
  sr_monitor_t* mon;
  consumer_t c = {0, 0};
  sr_monitor_state_t st;
  uint64_t cr3, now = 0;
  sr_vread_t vr;
  size_t i, done;
  int rc, failures = 0;

  /* The guest: a 64 KiB region, four pages swapped out. */
  memset(&ko, 0, sizeof(ko));
  check(sr_kit_create(&kit, &ko), "kit");
  check(sr_kit_new_space(kit, SR_PAGING_4LEVEL, &cr3), "space");
  check(sr_kit_map(kit, cr3, REGION, NPAGES * PAGE, SR_PAGE_4K,
                   SR_PROT_W | SR_PROT_U),
        "map");
  check(sr_kit_fill(kit, cr3, REGION, NPAGES * PAGE, SEED), "fill");
  for (i = 0; i < sizeof(out0) / sizeof(out0[0]); i++)
    guest_out(kit, cr3, out0[i]);

  /* The consumer: watch every page; the initial report counts the holes. */
  check(sr_kit_open_image(kit, &image), "image");
  check(sr_swap_new(&swap, image, NULL), "engine");
  check(sr_monitor_new(&mon, swap, on_event, &c), "monitor");
  for (i = 0; i < NPAGES; i++) {
    check(sr_monitor_watch(mon, cr3, REGION + i * PAGE, i, NULL, &st), "watch");
    if (st.status != 0)
      c.missing++;
  }
  printf("watching %u pages, %u missing at the start\n", NPAGES, c.missing);
  if (c.missing != 4)
    failures++;

  for (i = 0; i < sizeof(script) / sizeof(script[0]); i++) {
    if (script[i].dir > 0)
      guest_in(kit, cr3, script[i].page);
    else
      guest_out(kit, cr3, script[i].page);
    now += 100000000; /* 100 ms: the poll period a consumer would use */
    check(sr_swap_poll(swap, now, NULL), "poll");
    printf("t=%3" PRIu64 " ms: page %2u %s, %u missing\n", now / 1000000,
           script[i].page, script[i].dir > 0 ? "in " : "out", c.missing);
    if (c.missing != script[i].want_missing)
      failures++;
  }

  /* All in: read the region once, synchronously. */
  rc = sr_read_virt(image, cr3, NULL, REGION, buf, sizeof(buf), &vr);
  done = vr.done;
  if (rc != 0 || done != sizeof(buf)) {
    fprintf(stderr, "wait_resident: read: %s after %zu bytes\n",
            sr_strerror(rc), done);
    failures++;
  }
  for (i = 0; i < sizeof(buf); i++)
    if (buf[i] != sr_kit_pattern(SEED, REGION + i)) {
      failures++;
      break;
    }
  printf("read %zu bytes at once after %u events: %s\n", done, c.events,
         failures == 0 ? "every byte right" : "WRONG");

  check(sr_monitor_free(mon), "free");
  sr_swap_free(swap);
  sr_image_close(image);
  sr_kit_destroy(kit);
  return failures == 0 ? 0 : 1;
}
