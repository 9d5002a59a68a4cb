/* Epochs on a real uv_loop_t: sr_uv_invalidate with reads pending ends
 * each with SR_EIMAGEGONE exactly once (before it returns), new reads fail
 * with SR_EIMAGEGONE, older epochs are rejected, sr_uv_set_image refuses
 * while reads are pending and otherwise installs a new image (a second
 * kit with other contents) on which new reads complete, synchronously and
 * after a page-in. Also invalidation from inside a read callback, and a
 * queued SR_UV_ALWAYS_CALLBACK completion keeping its status. Expected
 * bytes come from sr_kit_pattern with each kit's seed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "support/loop_asserts.h"

#include <swapread/kit.h>
#include <swapread/uv.h>

#define GVA UINT64_C(0x7f0000400000)
#define NPAGES 4
#define PAGE 4096
#define SEED1 UINT64_C(0x1111)
#define SEED2 UINT64_C(0x2222)
#define NREQ 4

typedef struct fixture_s fixture_t;

typedef struct slot_s {
  sr_uv_read_t req;
  fixture_t* f;
  int ncb;
  int status;
  unsigned char buf[PAGE];
} slot_t;

typedef struct guest_s {
  sr_kit_t* kit;
  sr_image_t* image;
  uint64_t cr3;
  uint64_t seed;
} guest_t;

struct fixture_s {
  uv_loop_t loop;
  guest_t g1, g2;
  sr_uv_t h;
  int ncb;
  int nclose;
  slot_t s[NREQ];
  uv_timer_t watchdog; /* unref'd: fails a test instead of hanging */
  uv_timer_t t1;
  guest_t* page_in_guest; /* t1 pages page 0 of it in */
  bool invalidate_in_cb;
  int invalidate_rc;
  int read_rc;
};

static void make_guest(guest_t* g, uint64_t seed) {
  sr_kit_opts_t ko;

  memset(&ko, 0, sizeof(ko));
  ko.size = 4u << 20;
  g->seed = seed;
  assert_int_equal(sr_kit_create(&g->kit, &ko), 0);
  assert_int_equal(sr_kit_new_space(g->kit, SR_PAGING_4LEVEL, &g->cr3), 0);
  assert_int_equal(sr_kit_map(g->kit, g->cr3, GVA, NPAGES * PAGE, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U),
                   0);
  assert_int_equal(sr_kit_fill(g->kit, g->cr3, GVA, NPAGES * PAGE, seed), 0);
  assert_int_equal(sr_kit_open_image(g->kit, &g->image), 0);
}

static void drop_guest(guest_t* g) {
  sr_image_close(g->image);
  g->image = NULL;
  sr_kit_destroy(g->kit);
  g->kit = NULL;
}

static int setup(void** state) {
  fixture_t* f = calloc(1, sizeof(*f));
  int i;

  assert_non_null(f);
  loopfx_open(&f->loop, &f->watchdog);
  assert_int_equal(uv_timer_init(&f->loop, &f->t1), 0);
  f->t1.data = f;
  for (i = 0; i < NREQ; i++) {
    f->s[i].f = f;
    f->s[i].req.data = &f->s[i];
  }
  *state = f;
  return 0;
}

static int teardown(void** state) {
  fixture_t* f = *state;

  uv_close((uv_handle_t*)&f->t1, NULL);
  loopfx_close(&f->loop, &f->watchdog);
  drop_guest(&f->g1);
  drop_guest(&f->g2);
  free(f);
  return 0;
}

static void on_close(sr_uv_t* h) {
  fixture_t* f = h->data;

  f->nclose++;
}

/* Guest 1 and a handle over it (images opened in the test body). */
static void make_handle(fixture_t* f) {
  sr_uv_opts_t o;

  make_guest(&f->g1, SEED1);
  memset(&o, 0, sizeof(o));
  o.max_period_ms = 10;
  o.swap.default_timeout_ns = UINT64_C(2000000000); /* a bug: no hang */
  assert_int_equal(sr_uv_init(&f->loop, &f->h, f->g1.image, &o), 0);
  f->h.data = f;
}

static void close_handle(fixture_t* f) {
  sr_uv_close(&f->h, on_close);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->nclose, 1);
}

static void page_out(guest_t* g, int page) {
  sr_pte_info_t as;

  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  as.swap_type = 3;
  as.swap_offset = 40 + (uint64_t)page;
  assert_int_equal(
      sr_kit_page_out(g->kit, g->cr3, GVA + (uint64_t)page * PAGE, 1, &as), 0);
}

static bool matches(const unsigned char* buf, uint64_t seed, uint64_t gva) {
  size_t i;

  for (i = 0; i < PAGE; i++)
    if (buf[i] != sr_kit_pattern(seed, gva + i))
      return false;
  return true;
}

static void on_read(sr_uv_read_t* req, int status);

static int start(fixture_t* f, int i, const guest_t* g, int page,
                 uint32_t flags) {
  sr_uv_read_opts_t o;

  memset(&o, 0, sizeof(o));
  o.flags = flags;
  return sr_uv_read(&f->h, &f->s[i].req, g->cr3, GVA + (uint64_t)page * PAGE,
                    f->s[i].buf, PAGE, &o, on_read);
}

static void on_read(sr_uv_read_t* req, int status) {
  slot_t* s = req->data;
  fixture_t* f = s->f;

  f->ncb++;
  s->ncb++;
  s->status = status;
  if (f->invalidate_in_cb) {
    f->invalidate_in_cb = false;
    f->invalidate_rc = sr_uv_invalidate(&f->h, f->h.epoch);
    f->read_rc = start(f, 3, &f->g1, 3, 0);
  }
}

static void on_t1(uv_timer_t* t) {
  fixture_t* f = t->data;

  assert_int_equal(
      sr_kit_page_in(f->page_in_guest->kit, f->page_in_guest->cr3, GVA, 1), 0);
}

static void test_epoch_invalidate_pending(void** state) {
  fixture_t* f = *state;
  sr_uv_stats_t st;
  int i;

  make_handle(f);
  for (i = 0; i < 3; i++) {
    page_out(&f->g1, i);
    assert_int_equal(start(f, i, &f->g1, i, 0), SR_PENDING);
  }
  assert_int_equal(f->h.epoch, 0);
  assert_int_equal(sr_uv_invalidate(&f->h, 0), 3);
  assert_int_equal(f->ncb, 3); /* before it returned */
  for (i = 0; i < 3; i++) {
    assert_int_equal(f->s[i].ncb, 1);
    assert_int_equal(f->s[i].status, SR_EIMAGEGONE);
  }
  /* New reads fail, synchronous ones included; nothing is called back. */
  assert_int_equal(start(f, 3, &f->g1, 3, 0), SR_EIMAGEGONE);
  assert_int_equal(start(f, 3, &f->g1, 3, SR_UV_ALWAYS_CALLBACK),
                   SR_EIMAGEGONE);
  assert_int_equal(sr_uv_invalidate(&f->h, 0), 0);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  sr_uv_stats(&f->h, &st);
  assert_int_equal(st.ticks, 0);
  close_handle(f);
  assert_int_equal(f->ncb, 3);
}

static void test_epoch_order(void** state) {
  fixture_t* f = *state;

  make_handle(f);
  make_guest(&f->g2, SEED2);
  assert_int_equal(sr_uv_invalidate(&f->h, 5), 0);
  assert_int_equal(f->h.epoch, 5);
  assert_int_equal(sr_uv_invalidate(&f->h, 4), SR_EINVAL);
  assert_int_equal(sr_uv_invalidate(NULL, 6), SR_EINVAL);
  assert_int_equal(sr_uv_set_image(&f->h, f->g2.image, 5), SR_EINVAL);
  assert_int_equal(sr_uv_set_image(&f->h, NULL, 6), SR_EINVAL);
  assert_int_equal(sr_uv_set_image(NULL, f->g2.image, 6), SR_EINVAL);
  assert_int_equal(start(f, 0, &f->g2, 0, 0), SR_EIMAGEGONE);
  assert_int_equal(sr_uv_set_image(&f->h, f->g2.image, 6), 0);
  assert_int_equal(f->h.epoch, 6);
  assert_int_equal(sr_uv_invalidate(&f->h, 5), SR_EINVAL);
  assert_int_equal(start(f, 0, &f->g2, 0, 0), 0);
  assert_true(matches(f->s[0].buf, SEED2, GVA));
  close_handle(f);
  assert_int_equal(f->ncb, 0);
}

static void test_epoch_set_image_new_kit(void** state) {
  fixture_t* f = *state;

  make_handle(f);
  page_out(&f->g1, 0);
  assert_int_equal(start(f, 0, &f->g1, 0, 0), SR_PENDING);
  assert_int_equal(sr_uv_invalidate(&f->h, 0), 1);
  assert_int_equal(f->s[0].status, SR_EIMAGEGONE);
  make_guest(&f->g2, SEED2);
  assert_int_equal(sr_uv_set_image(&f->h, f->g2.image, 1), 0);
  /* The old image is the caller's again: close it now. */
  drop_guest(&f->g1);
  assert_int_equal(start(f, 1, &f->g2, 1, 0), 0);
  assert_true(matches(f->s[1].buf, SEED2, GVA + PAGE));
  page_out(&f->g2, 0);
  assert_int_equal(start(f, 2, &f->g2, 0, 0), SR_PENDING);
  f->page_in_guest = &f->g2;
  assert_int_equal(uv_timer_start(&f->t1, on_t1, 15, 0), 0);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->s[2].ncb, 1);
  assert_int_equal(f->s[2].status, 0);
  assert_true(matches(f->s[2].buf, SEED2, GVA));
  assert_int_equal(f->ncb, 2);
  close_handle(f);
  assert_int_equal(f->ncb, 2);
}

static void test_epoch_set_image_busy(void** state) {
  fixture_t* f = *state;

  make_handle(f);
  make_guest(&f->g2, SEED2);
  page_out(&f->g1, 0);
  assert_int_equal(start(f, 0, &f->g1, 0, 0), SR_PENDING);
  assert_int_equal(sr_uv_set_image(&f->h, f->g2.image, 1), SR_EBUSY);
  assert_int_equal(f->h.epoch, 0);
  assert_int_equal(sr_uv_cancel(&f->s[0].req), 0);
  assert_int_equal(f->s[0].status, SR_ECANCELED);
  /* No invalidation needed once nothing is pending. */
  assert_int_equal(sr_uv_set_image(&f->h, f->g2.image, 1), 0);
  assert_int_equal(start(f, 1, &f->g2, 0, 0), 0);
  assert_true(matches(f->s[1].buf, SEED2, GVA));
  close_handle(f);
  assert_int_equal(f->ncb, 1);
}

static void test_epoch_invalidate_in_callback(void** state) {
  fixture_t* f = *state;

  make_handle(f);
  page_out(&f->g1, 0);
  page_out(&f->g1, 1);
  assert_int_equal(start(f, 0, &f->g1, 0, 0), SR_PENDING);
  assert_int_equal(start(f, 1, &f->g1, 1, 0), SR_PENDING);
  f->invalidate_in_cb = true;
  f->page_in_guest = &f->g1;
  assert_int_equal(uv_timer_start(&f->t1, on_t1, 10, 0), 0);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->s[0].ncb, 1);
  assert_int_equal(f->s[0].status, 0);
  assert_true(matches(f->s[0].buf, SEED1, GVA));
  assert_int_equal(f->invalidate_rc, 1);
  assert_int_equal(f->s[1].ncb, 1);
  assert_int_equal(f->s[1].status, SR_EIMAGEGONE);
  assert_int_equal(f->read_rc, SR_EIMAGEGONE);
  assert_int_equal(f->s[3].ncb, 0);
  assert_int_equal(f->ncb, 2);
  close_handle(f);
  assert_int_equal(f->ncb, 2);
}

static void test_epoch_queued_completion_keeps_status(void** state) {
  fixture_t* f = *state;

  make_handle(f);
  assert_int_equal(start(f, 0, &f->g1, 2, SR_UV_ALWAYS_CALLBACK), SR_PENDING);
  assert_int_equal(sr_uv_invalidate(&f->h, 0), 0);
  assert_int_equal(f->ncb, 0);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->ncb, 1);
  assert_int_equal(f->s[0].status, 0);
  assert_true(matches(f->s[0].buf, SEED1, GVA + 2 * PAGE));
  close_handle(f);
  assert_int_equal(f->ncb, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_epoch_invalidate_pending, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_epoch_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_epoch_set_image_new_kit, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_epoch_set_image_busy, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_epoch_invalidate_in_callback, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_epoch_queued_completion_keeps_status,
                                      setup, teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
