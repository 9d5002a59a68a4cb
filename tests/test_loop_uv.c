/* The libuv binding on a real uv_loop_t: pending reads completed after the
 * kit pages data in from a timer on the same loop, uv_run returning by
 * itself, an idle handle never keeping the loop alive, the backoff bound
 * on timer wake-ups, deadlines, cancel, close (with reads pending, from
 * inside a callback), reads started from callbacks, and
 * SR_UV_ALWAYS_CALLBACK. Each test uses a fresh loop, closes every handle
 * and checks uv_loop_close() == 0. Expected bytes come from
 * sr_kit_pattern; the backoff bound comes from the schedule documented in
 * docs/api/loop.md, simulated here independently of the library.
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
#define NPAGES 8
#define PAGE 4096
#define SEED UINT64_C(0xfeed)
#define NREQ 4

typedef struct fixture_s fixture_t;

/* One request with what its callback saw. */
typedef struct slot_s {
  sr_uv_read_t req;
  fixture_t* f;
  int ncb;
  int status;
  uint32_t done_flags;
  uint32_t kinds;
  uint64_t missing0;
  int order; /* f->ncb when it ran */
  unsigned char buf[NPAGES * PAGE];
} slot_t;

struct fixture_s {
  uv_loop_t loop;
  sr_kit_t* kit;
  sr_image_t* image;
  uint64_t cr3;
  sr_uv_t h;
  bool open;
  int ncb;    /* read callbacks, all slots */
  int nclose; /* close callbacks */
  int ncb_at_close;
  bool in_read; /* inside sr_uv_read (ALWAYS_CALLBACK checks) */
  int early;    /* callbacks that ran while in_read */
  /* test-specific hooks, run from a slot's callback */
  void (*hook)(fixture_t* f, slot_t* s);
  int hook_rc;
  slot_t s[NREQ];
  uv_timer_t watchdog; /* unref'd: fails a test instead of hanging */
  uv_timer_t t1, t2;
  uint64_t t1_ticks, t1_elapsed, t1_period;
  uint64_t start_ms;
  int page_in_page; /* t1: page to page in */
  /* monitors on the loop */
  sr_spacemon_t* sm;
  sr_monitor_t* mon;
  int nev;
  int ev_kind[8];
  uint64_t ev_va[8];
};

static void on_read(sr_uv_read_t* req, int status) {
  slot_t* s = req->data;
  fixture_t* f = s->f;

  if (f->in_read)
    f->early++;
  f->ncb++;
  s->ncb++;
  s->status = status;
  s->done_flags = req->done_flags;
  s->kinds = req->kinds_seen;
  s->missing0 = req->missing != NULL ? req->missing[0] : 0;
  s->order = f->ncb;
  if (f->hook != NULL)
    f->hook(f, s);
}

static void on_close(sr_uv_t* h) {
  fixture_t* f = h->data;

  f->nclose++;
  f->ncb_at_close = f->ncb;
}

/* Every read times out after 2 s unless it says otherwise: a bug makes a
 * test fail, not hang. */
static int make_handle(fixture_t* f, const sr_uv_opts_t* opts) {
  sr_uv_opts_t o;
  int rc;

  if (opts != NULL)
    o = *opts;
  else
    memset(&o, 0, sizeof(o));
  if (o.swap.default_timeout_ns == 0)
    o.swap.default_timeout_ns = UINT64_C(2000000000);
  rc = sr_uv_init(&f->loop, &f->h, f->image, &o);

  if (rc == 0) {
    f->h.data = f;
    f->open = true;
  }
  return rc;
}

static int setup(void** state) {
  fixture_t* f = calloc(1, sizeof(*f));
  sr_kit_opts_t ko;
  int i;

  assert_non_null(f);
  memset(&ko, 0, sizeof(ko));
  ko.size = 8u << 20;
  assert_int_equal(sr_kit_create(&f->kit, &ko), 0);
  assert_int_equal(sr_kit_new_space(f->kit, SR_PAGING_4LEVEL, &f->cr3), 0);
  assert_int_equal(sr_kit_map(f->kit, f->cr3, GVA, NPAGES * PAGE, SR_PAGE_4K,
                              SR_PROT_W | SR_PROT_U),
                   0);
  assert_int_equal(sr_kit_fill(f->kit, f->cr3, GVA, NPAGES * PAGE, SEED), 0);
  assert_int_equal(sr_kit_open_image(f->kit, &f->image), 0);
  loopfx_open(&f->loop, &f->watchdog);
  assert_int_equal(uv_timer_init(&f->loop, &f->t1), 0);
  assert_int_equal(uv_timer_init(&f->loop, &f->t2), 0);
  f->t1.data = f;
  f->t2.data = f;
  for (i = 0; i < NREQ; i++) {
    f->s[i].f = f;
    f->s[i].req.data = &f->s[i];
  }
  *state = f;
  return 0;
}

static int teardown(void** state) {
  fixture_t* f = *state;

  if (f->open) {
    sr_uv_close(&f->h, on_close);
    f->open = false;
  }
  uv_close((uv_handle_t*)&f->t1, NULL);
  uv_close((uv_handle_t*)&f->t2, NULL);
  loopfx_close(&f->loop, &f->watchdog);
  sr_image_close(f->image);
  sr_kit_destroy(f->kit);
  free(f);
  return 0;
}

/* Closes the handle and runs the loop until the close callback ran. */
static void close_handle(fixture_t* f) {
  int before = f->nclose;

  sr_uv_close(&f->h, on_close);
  f->open = false;
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->nclose, before + 1);
}

static void page_out(fixture_t* f, int page) {
  sr_pte_info_t as;

  memset(&as, 0, sizeof(as));
  as.kind = SR_PTE_LINUX_SWAP;
  as.swap_type = 1;
  as.swap_offset = 500 + (uint64_t)page;
  assert_int_equal(
      sr_kit_page_out(f->kit, f->cr3, GVA + (uint64_t)page * PAGE, 1, &as), 0);
}

static void page_in(fixture_t* f, int page) {
  assert_int_equal(
      sr_kit_page_in(f->kit, f->cr3, GVA + (uint64_t)page * PAGE, 1), 0);
}

static bool matches(const unsigned char* buf, uint64_t gva, size_t len) {
  size_t i;

  for (i = 0; i < len; i++)
    if (buf[i] != sr_kit_pattern(SEED, gva + i))
      return false;
  return true;
}

static int start(fixture_t* f, int i, uint64_t gva, size_t len, uint32_t flags,
                 uint64_t timeout_ms) {
  sr_uv_read_opts_t o;
  int rc;

  memset(&o, 0, sizeof(o));
  o.flags = flags;
  o.timeout_ms = timeout_ms;
  f->in_read = true;
  rc = sr_uv_read(&f->h, &f->s[i].req, f->cr3, gva, f->s[i].buf, len, &o,
                  on_read);
  f->in_read = false;
  return rc;
}

/* t1: pages in f->page_in_page, noting the ticks so far. */
static void on_t1_page_in(uv_timer_t* t) {
  fixture_t* f = t->data;
  sr_uv_stats_t st;

  sr_uv_stats(&f->h, &st);
  f->t1_ticks = st.ticks;
  f->t1_period = st.period_ms;
  f->t1_elapsed = uv_now(&f->loop) - f->start_ms;
  page_in(f, f->page_in_page);
}

static void test_uv_pending_completes_after_page_in(void** state) {
  fixture_t* f = *state;
  sr_uv_stats_t st;

  assert_int_equal(make_handle(f, NULL), 0);
  page_out(f, 3);
  assert_int_equal(start(f, 0, GVA, NPAGES * PAGE, 0, 0), SR_PENDING);
  assert_int_equal(f->ncb, 0);
  f->page_in_page = 3;
  assert_int_equal(uv_timer_start(&f->t1, on_t1_page_in, 20, 0), 0);
  /* Returns by itself: the handle's timer stops after the completion. */
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->ncb, 1);
  assert_int_equal(f->s[0].ncb, 1);
  assert_int_equal(f->s[0].status, 0);
  assert_true(f->s[0].done_flags & SR_DONE_ASYNC);
  assert_true(f->s[0].kinds & (1u << SR_PTE_LINUX_SWAP));
  assert_int_equal(f->s[0].req.status, 0);
  assert_int_equal(f->s[0].req.nchunks, NPAGES);
  assert_true(matches(f->s[0].buf, GVA, NPAGES * PAGE));
  sr_uv_stats(&f->h, &st);
  assert_true(st.ticks >= 1);
  assert_true(st.restart_checks >= 1);
  assert_int_equal(st.spaces_gone, 0);
  close_handle(f);
  assert_int_equal(f->ncb, 1);
}

static void test_uv_idle_returns_at_once(void** state) {
  fixture_t* f = *state;
  sr_uv_stats_t st;

  assert_int_equal(make_handle(f, NULL), 0);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  /* A synchronous read arms nothing either. */
  assert_int_equal(start(f, 0, GVA + 10, 3 * PAGE, 0, 0), 0);
  assert_true(matches(f->s[0].buf, GVA + 10, 3 * PAGE));
  assert_int_equal(f->s[0].req.status, 0);
  assert_int_equal(f->s[0].req.nchunks, 4);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  sr_uv_stats(&f->h, &st);
  assert_int_equal(st.ticks, 0);
  assert_int_equal(f->ncb, 0);
  close_handle(f);
  assert_int_equal(f->ncb, 0);
}

/* The most ticks the documented schedule allows in [start, start + end]
 * ms: the first tick min after the read starts; the base period is min
 * while less than `fast` has passed since the start (no progress), then
 * grows by half (at least 1 ms) per tick up to max; each sleep is at
 * least max(min, base - base / 10) (jitter is +-10%). Ticks are counted
 * with the shortest sleeps, so real ticks (never earlier) are at most
 * this many. */
static uint64_t backoff_bound(uint64_t min, uint64_t max, uint64_t fast,
                              uint64_t end) {
  uint64_t t = min, base = min, n = 0, sleep;

  while (t <= end) {
    n++;
    if (t < fast) {
      base = min;
    } else {
      base += base / 2 > 0 ? base / 2 : 1;
      if (base > max)
        base = max;
    }
    sleep = base - base / 10;
    t += sleep > min ? sleep : min;
  }
  return n;
}

static void test_uv_backoff_bound(void** state) {
  fixture_t* f = *state;
  sr_uv_opts_t o;
  uint64_t bound;

  memset(&o, 0, sizeof(o));
  o.min_period_ms = 1;
  o.max_period_ms = 20;
  o.fast_window_ms = 30;
  assert_int_equal(make_handle(f, &o), 0);
  page_out(f, 0);
  uv_update_time(&f->loop);
  f->start_ms = uv_now(&f->loop);
  assert_int_equal(start(f, 0, GVA, PAGE, 0, 0), SR_PENDING);
  f->page_in_page = 0;
  assert_int_equal(uv_timer_start(&f->t1, on_t1_page_in, 600, 0), 0);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->s[0].ncb, 1);
  assert_int_equal(f->s[0].status, 0);
  assert_true(matches(f->s[0].buf, GVA, PAGE));

  assert_true(f->t1_elapsed >= 600);
  bound = backoff_bound(1, 20, 30, f->t1_elapsed);
  print_message("ticks %llu in %llu ms, bound %llu\n",
                (unsigned long long)f->t1_ticks,
                (unsigned long long)f->t1_elapsed, (unsigned long long)bound);
  assert_true(f->t1_ticks <= bound);
  /* Nothing changed for 600 ms: the period backs off towards the maximum,
   * by 3/2 per idle tick. A loaded machine may run fewer ticks than that
   * (an overdue timer fires once), so the growth is checked per tick seen:
   * after n >= 8 ticks past the fast window it has reached 20. */
  if (f->t1_ticks >= 8 + 32) /* <= 31 ticks fit the 30 ms window */
    assert_int_equal(f->t1_period, 20);
  assert_true(f->t1_period >= 1 && f->t1_period <= 20);
  close_handle(f);
  assert_int_equal(f->ncb, 1);
}

static void test_uv_deadline(void** state) {
  fixture_t* f = *state;
  uint64_t t0;

  assert_int_equal(make_handle(f, NULL), 0);
  page_out(f, 1);
  uv_update_time(&f->loop);
  t0 = uv_now(&f->loop);
  assert_int_equal(start(f, 0, GVA, 2 * PAGE, 0, 30), SR_PENDING);
  assert_int_equal(start(f, 1, GVA, 2 * PAGE, SR_READ_PARTIAL, 30), SR_PENDING);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_true(uv_now(&f->loop) - t0 >= 30);
  assert_int_equal(f->ncb, 2);
  assert_int_equal(f->s[0].ncb, 1);
  assert_int_equal(f->s[0].status, SR_ETIMEDOUT);
  assert_int_equal(f->s[0].missing0, 2); /* chunk 1 */
  assert_true(matches(f->s[0].buf, GVA, PAGE));
  assert_int_equal(f->s[1].ncb, 1);
  assert_int_equal(f->s[1].status, SR_EPARTIAL);
  assert_true(f->s[1].done_flags & SR_DONE_PARTIAL);
  assert_int_equal(f->s[1].missing0, 2);
  assert_true(matches(f->s[1].buf, GVA, PAGE));
  for (size_t i = PAGE; i < 2 * PAGE; i++)
    assert_int_equal(f->s[1].buf[i], 0);
  close_handle(f);
  assert_int_equal(f->ncb, 2);
}

/* Runs one read with timeout_ms on a handle with opts o; returns how long
 * (loop ms) it took to time out. */
static uint64_t time_out_after(fixture_t* f, const sr_uv_opts_t* o,
                               uint64_t timeout_ms) {
  uint64_t t0;

  assert_int_equal(make_handle(f, o), 0);
  page_out(f, 0);
  uv_update_time(&f->loop);
  t0 = uv_now(&f->loop);
  assert_int_equal(start(f, 0, GVA, PAGE, 0, timeout_ms), SR_PENDING);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->s[0].ncb, 1);
  assert_int_equal(f->s[0].status, SR_ETIMEDOUT);
  close_handle(f);
  return uv_now(&f->loop) - t0;
}

/* A period backed off far beyond the deadline does not delay it. */
static void test_uv_deadline_caps_backoff(void** state) {
  fixture_t* f = *state;
  sr_uv_opts_t o;
  uint64_t dt;

  memset(&o, 0, sizeof(o));
  o.min_period_ms = 1;
  o.max_period_ms = 5000;
  o.fast_window_ms = 1;
  dt = time_out_after(f, &o, 300);
  assert_true(dt >= 300);
  assert_true(dt < 2500);
}

/* A minimum period longer than the deadline does not delay it either. */
static void test_uv_deadline_caps_min_period(void** state) {
  fixture_t* f = *state;
  sr_uv_opts_t o;
  uint64_t dt;

  memset(&o, 0, sizeof(o));
  o.min_period_ms = 5000;
  o.max_period_ms = 5000;
  dt = time_out_after(f, &o, 40);
  assert_true(dt >= 40);
  assert_true(dt < 2500);
}

static void hook_start_with_deadline(fixture_t* f, slot_t* s) {
  if (s == &f->s[0])
    f->hook_rc = start(f, 1, GVA, PAGE, 0, 40);
}

/* A read started from a callback of a tick is not delayed by a long
 * period either (its deadline postdates the poll's next deadline). */
static void test_uv_deadline_of_read_started_in_callback(void** state) {
  fixture_t* f = *state;
  sr_uv_opts_t o;
  uint64_t t0, dt;

  memset(&o, 0, sizeof(o));
  o.min_period_ms = 5000;
  o.max_period_ms = 5000;
  assert_int_equal(make_handle(f, &o), 0);
  page_out(f, 0);
  f->hook = hook_start_with_deadline;
  uv_update_time(&f->loop);
  t0 = uv_now(&f->loop);
  assert_int_equal(start(f, 0, GVA, PAGE, 0, 40), SR_PENDING);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  dt = uv_now(&f->loop) - t0;
  assert_int_equal(f->hook_rc, SR_PENDING);
  assert_int_equal(f->ncb, 2);
  assert_int_equal(f->s[0].status, SR_ETIMEDOUT);
  assert_int_equal(f->s[1].ncb, 1);
  assert_int_equal(f->s[1].status, SR_ETIMEDOUT);
  assert_true(dt >= 80);
  assert_true(dt < 2500);
  close_handle(f);
}

static void hook_cancel_self(fixture_t* f, slot_t* s) {
  f->hook_rc = sr_uv_cancel(&s->req);
}

static void test_uv_cancel(void** state) {
  fixture_t* f = *state;
  sr_uv_stats_t st;

  assert_int_equal(make_handle(f, NULL), 0);
  page_out(f, 0);
  assert_int_equal(start(f, 0, GVA, PAGE, 0, 0), SR_PENDING);
  assert_int_equal(start(f, 1, GVA, PAGE, 0, 0), SR_PENDING);
  f->hook = hook_cancel_self;
  f->hook_rc = 1;
  assert_int_equal(sr_uv_cancel(&f->s[0].req), 0);
  /* The callback ran before sr_uv_cancel returned; cancelling itself from
   * inside it is SR_EALREADY. */
  assert_int_equal(f->s[0].ncb, 1);
  assert_int_equal(f->s[0].status, SR_ECANCELED);
  assert_int_equal(f->hook_rc, SR_EALREADY);
  assert_int_equal(sr_uv_cancel(&f->s[0].req), SR_EINVAL);
  assert_int_equal(sr_uv_cancel(NULL), SR_EINVAL);
  assert_int_equal(f->s[1].ncb, 0);
  f->hook = NULL;
  assert_int_equal(sr_uv_cancel(&f->s[1].req), 0);
  assert_int_equal(f->s[1].ncb, 1);
  assert_int_equal(f->s[1].status, SR_ECANCELED);
  /* Nothing pending: the loop has nothing to wait for. */
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  sr_uv_stats(&f->h, &st);
  assert_int_equal(st.ticks, 0);
  close_handle(f);
  assert_int_equal(f->ncb, 2);
}

static void test_uv_close_with_pending(void** state) {
  fixture_t* f = *state;
  int i;

  assert_int_equal(make_handle(f, NULL), 0);
  page_out(f, 0);
  page_out(f, 1);
  for (i = 0; i < 3; i++)
    assert_int_equal(start(f, i, GVA + (uint64_t)i * 100, PAGE, 0, 0),
                     SR_PENDING);
  sr_uv_close(&f->h, on_close);
  f->open = false;
  /* New reads fail while closing; nothing is called back yet. */
  assert_int_equal(start(f, 3, GVA + 4 * PAGE, PAGE, 0, 0), SR_EINVAL);
  assert_int_equal(f->ncb, 0);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->nclose, 1);
  assert_int_equal(f->ncb_at_close, 3);
  for (i = 0; i < 3; i++) {
    assert_int_equal(f->s[i].ncb, 1);
    assert_int_equal(f->s[i].status, SR_ECANCELED);
  }
  assert_int_equal(f->s[3].ncb, 0);
}

/* The first of two reads completed by the same poll cancels the other,
 * whose completion is already under way in the engine (it drops it): the
 * other still gets exactly one callback, SR_ECANCELED, before
 * sr_uv_cancel returns. */
static void hook_cancel_sibling(fixture_t* f, slot_t* s) {
  slot_t* other = s == &f->s[0] ? &f->s[1] : &f->s[0];

  if (f->ncb == 1) {
    f->hook_rc = sr_uv_cancel(&other->req);
    f->ncb_at_close = other->ncb; /* reused: the sibling's count then */
  }
}

static void test_uv_cancel_sibling_in_same_poll(void** state) {
  fixture_t* f = *state;
  slot_t* first;
  slot_t* second;

  assert_int_equal(make_handle(f, NULL), 0);
  page_out(f, 0);
  assert_int_equal(start(f, 0, GVA, PAGE, 0, 0), SR_PENDING);
  assert_int_equal(start(f, 1, GVA + 8, 100, 0, 0), SR_PENDING);
  f->hook = hook_cancel_sibling;
  f->hook_rc = 1;
  f->page_in_page = 0;
  assert_int_equal(uv_timer_start(&f->t1, on_t1_page_in, 10, 0), 0);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  first = f->s[0].order == 1 ? &f->s[0] : &f->s[1];
  second = first == &f->s[0] ? &f->s[1] : &f->s[0];
  assert_int_equal(f->hook_rc, 0);
  assert_int_equal(f->ncb_at_close, 1);
  assert_int_equal(first->ncb, 1);
  assert_int_equal(first->status, 0);
  assert_int_equal(second->ncb, 1);
  assert_int_equal(second->status, SR_ECANCELED);
  assert_int_equal(second->order, 2);
  f->ncb_at_close = 0;
  close_handle(f);
  assert_int_equal(f->ncb, 2);
  assert_int_equal(f->ncb_at_close, 2);
}

static void hook_close(fixture_t* f, slot_t* s) {
  if (s == &f->s[0]) {
    sr_uv_close(&f->h, on_close);
    f->open = false;
    /* A read from a callback after close: rejected. */
    f->hook_rc = start(f, 3, GVA, PAGE, 0, 0);
  }
}

static void test_uv_close_in_callback(void** state) {
  fixture_t* f = *state;

  assert_int_equal(make_handle(f, NULL), 0);
  page_out(f, 0);
  page_out(f, 1);
  assert_int_equal(start(f, 0, GVA, PAGE, 0, 0), SR_PENDING);
  assert_int_equal(start(f, 1, GVA + PAGE, PAGE, 0, 0), SR_PENDING);
  f->hook = hook_close;
  f->page_in_page = 0;
  assert_int_equal(uv_timer_start(&f->t1, on_t1_page_in, 10, 0), 0);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->nclose, 1);
  assert_int_equal(f->ncb_at_close, 2);
  assert_int_equal(f->s[0].ncb, 1);
  assert_int_equal(f->s[0].status, 0);
  assert_true(matches(f->s[0].buf, GVA, PAGE));
  assert_int_equal(f->s[1].ncb, 1);
  assert_int_equal(f->s[1].status, SR_ECANCELED);
  assert_int_equal(f->hook_rc, SR_EINVAL);
  assert_int_equal(f->s[3].ncb, 0);
}

static void hook_read_again(fixture_t* f, slot_t* s) {
  if (s == &f->s[0]) {
    /* Pending (page 1 is out), and synchronous (page 2 is in). */
    f->hook_rc = start(f, 1, GVA + PAGE, PAGE, 0, 0);
    assert_int_equal(start(f, 2, GVA + 2 * PAGE, PAGE, 0, 0), 0);
    assert_true(matches(f->s[2].buf, GVA + 2 * PAGE, PAGE));
    f->page_in_page = 1;
    assert_int_equal(uv_timer_start(&f->t2, on_t1_page_in, 15, 0), 0);
  }
}

static void test_uv_read_in_callback(void** state) {
  fixture_t* f = *state;

  assert_int_equal(make_handle(f, NULL), 0);
  page_out(f, 0);
  page_out(f, 1);
  assert_int_equal(start(f, 0, GVA, PAGE, 0, 0), SR_PENDING);
  f->hook = hook_read_again;
  f->page_in_page = 0;
  assert_int_equal(uv_timer_start(&f->t1, on_t1_page_in, 10, 0), 0);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->hook_rc, SR_PENDING);
  assert_int_equal(f->ncb, 2);
  assert_int_equal(f->s[0].ncb, 1);
  assert_int_equal(f->s[0].status, 0);
  assert_int_equal(f->s[1].ncb, 1);
  assert_int_equal(f->s[1].status, 0);
  assert_true(f->s[1].order > f->s[0].order);
  assert_true(matches(f->s[1].buf, GVA + PAGE, PAGE));
  assert_int_equal(f->s[2].ncb, 0);
  close_handle(f);
  assert_int_equal(f->ncb, 2);
}

/* A callback starting another SR_UV_ALWAYS_CALLBACK read, synchronous. */
static void hook_always_again(fixture_t* f, slot_t* s) {
  if (s == &f->s[0])
    f->hook_rc = start(f, 1, GVA + PAGE, PAGE, SR_UV_ALWAYS_CALLBACK, 0);
}

static void test_uv_always_callback(void** state) {
  fixture_t* f = *state;

  assert_int_equal(make_handle(f, NULL), 0);
  f->hook = hook_always_again;
  assert_int_equal(start(f, 0, GVA, PAGE, SR_UV_ALWAYS_CALLBACK, 0),
                   SR_PENDING);
  assert_int_equal(f->ncb, 0);
  /* Rejected reads are not called back, with or without the flag. */
  assert_int_equal(
      start(f, 2, UINT64_C(0x800000000000), PAGE, SR_UV_ALWAYS_CALLBACK, 0),
      SR_ENONCANON);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->early, 0);
  assert_int_equal(f->hook_rc, SR_PENDING);
  assert_int_equal(f->ncb, 2);
  assert_int_equal(f->s[0].ncb, 1);
  assert_int_equal(f->s[0].status, 0);
  assert_false(f->s[0].done_flags & SR_DONE_ASYNC);
  assert_true(matches(f->s[0].buf, GVA, PAGE));
  assert_int_equal(f->s[1].ncb, 1);
  assert_int_equal(f->s[1].status, 0);
  assert_true(matches(f->s[1].buf, GVA + PAGE, PAGE));
  assert_int_equal(f->s[2].ncb, 0);
  close_handle(f);
  assert_int_equal(f->ncb, 2);
}

static void test_uv_always_callback_cancel_and_close(void** state) {
  fixture_t* f = *state;

  assert_int_equal(make_handle(f, NULL), 0);
  assert_int_equal(start(f, 0, GVA, PAGE, SR_UV_ALWAYS_CALLBACK, 0),
                   SR_PENDING);
  assert_int_equal(start(f, 1, GVA, PAGE, SR_UV_ALWAYS_CALLBACK, 0),
                   SR_PENDING);
  /* Cancel delivers a queued completion at once, as cancelled. */
  assert_int_equal(sr_uv_cancel(&f->s[0].req), 0);
  assert_int_equal(f->s[0].ncb, 1);
  assert_int_equal(f->s[0].status, SR_ECANCELED);
  /* Close delivers the other one, as completed, before close_cb. */
  close_handle(f);
  assert_int_equal(f->ncb_at_close, 2);
  assert_int_equal(f->s[1].ncb, 1);
  assert_int_equal(f->s[1].status, 0);
  assert_true(matches(f->s[1].buf, GVA, PAGE));
}

static void test_uv_invalid_args(void** state) {
  fixture_t* f = *state;
  sr_uv_read_opts_t ro;
  sr_uv_opts_t o;
  sr_uv_t h2;

  memset(&o, 0, sizeof(o));
  o.min_period_ms = 50;
  o.max_period_ms = 10;
  assert_int_equal(sr_uv_init(&f->loop, &h2, f->image, &o), SR_EINVAL);
  assert_int_equal(sr_uv_init(NULL, &h2, f->image, NULL), SR_EINVAL);
  assert_int_equal(sr_uv_init(&f->loop, NULL, f->image, NULL), SR_EINVAL);
  assert_int_equal(sr_uv_init(&f->loop, &h2, NULL, NULL), SR_EINVAL);
  assert_int_equal(make_handle(f, NULL), 0);
  assert_int_equal(start(f, 0, GVA, PAGE, 1u << 9, 0), SR_EINVAL);
  memset(&ro, 0, sizeof(ro));
  assert_int_equal(sr_uv_read(&f->h, &f->s[0].req, f->cr3, GVA, f->s[0].buf,
                              PAGE, &ro, NULL),
                   SR_EINVAL);
  assert_int_equal(sr_uv_read(NULL, &f->s[0].req, f->cr3, GVA, f->s[0].buf,
                              PAGE, NULL, on_read),
                   SR_EINVAL);
  assert_int_equal(start(f, 0, GVA, 0, 0, 0), SR_EINVAL);
  /* SR_CR3_KERNEL without a kernel CR3. */
  assert_int_equal(sr_uv_read(&f->h, &f->s[0].req, SR_CR3_KERNEL, GVA,
                              f->s[0].buf, PAGE, NULL, on_read),
                   SR_EINVAL);
  /* Unmapped: the walk stops at a non-present entry and waits; a deadline
   * of 1 ms ends it. */
  assert_int_equal(start(f, 1, GVA + 64 * PAGE, PAGE, 0, 1), SR_PENDING);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->s[1].status, SR_ETIMEDOUT);
  assert_int_equal(sr_uv_cancel_cr3(NULL, f->cr3), SR_EINVAL);
  assert_int_equal(sr_uv_set_probe(NULL, f->cr3, NULL, NULL), SR_EINVAL);
  close_handle(f);
  assert_int_equal(f->ncb, 1);
}

static void note_event(fixture_t* f, int kind, uint64_t va) {
  if (f->nev < 8) {
    f->ev_kind[f->nev] = kind;
    f->ev_va[f->nev] = va;
  }
  f->nev++;
}

/* A space monitor's callback: closes the handle at the first change. */
static void on_space_event(sr_spacemon_t* sm, const sr_spacemon_event_t* ev,
                           void* data) {
  fixture_t* f = data;
  (void)sm;
  note_event(f, (int)ev->kind, ev->va);
  if (ev->kind != SR_SPACEMON_CLOSED && f->open) {
    sr_uv_close(&f->h, on_close);
    f->open = false;
  }
}

static void on_t1_page_out(uv_timer_t* t) {
  fixture_t* f = t->data;
  page_out(f, f->page_in_page);
}

/* The handle's timer polls a space monitor made with sr_uv_spacemon_new
 * (no read pending): a page swapped out 20 ms in is reported from the
 * loop; closing the handle from the callback ends the monitor with
 * CLOSED before the close callback, and uv_run returns by itself. */
static void test_uv_spacemon_on_the_loop(void** state) {
  fixture_t* f = *state;

  assert_int_equal(make_handle(f, NULL), 0);
  assert_int_equal(
      sr_uv_spacemon_new(&f->h, &f->sm, f->cr3, NULL, on_space_event, f), 0);
  assert_int_equal(f->nev, 0);
  f->page_in_page = 2;
  assert_int_equal(uv_timer_start(&f->t1, on_t1_page_out, 20, 0), 0);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->nclose, 1);
  assert_int_equal(f->nev, 2);
  assert_int_equal(f->ev_kind[0], SR_SPACEMON_UNMAPPED);
  assert_int_equal(f->ev_va[0], GVA + 2 * PAGE);
  assert_int_equal(f->ev_kind[1], SR_SPACEMON_CLOSED);
}

static void on_va_event(sr_monitor_t* mon, const sr_monitor_event_t* ev,
                        void* data) {
  fixture_t* f = data;
  (void)mon;
  note_event(f, (int)ev->kind, ev->va);
}

static void on_t2_free_monitor(uv_timer_t* t) {
  fixture_t* f = t->data;
  assert_int_equal(sr_monitor_free(f->mon), 0);
  f->mon = NULL;
}

/* A VA monitor made with sr_uv_monitor_new keeps the timer running
 * while it exists: its PAGE_OUT comes from the loop, and once it is freed
 * (outside a callback) the timer stops and uv_run returns with the handle
 * still open. A closing handle refuses new monitors. */
static void test_uv_monitor_runs_while_it_exists(void** state) {
  fixture_t* f = *state;
  sr_monitor_t* m2 = (sr_monitor_t*)1;
  sr_spacemon_t* s2 = (sr_spacemon_t*)1;

  assert_int_equal(make_handle(f, NULL), 0);
  assert_int_equal(sr_uv_monitor_new(&f->h, &f->mon, on_va_event, f), 0);
  assert_int_equal(
      sr_monitor_watch(f->mon, f->cr3, GVA + 5 * PAGE, 1, NULL, NULL), 0);
  f->page_in_page = 5;
  assert_int_equal(uv_timer_start(&f->t1, on_t1_page_out, 20, 0), 0);
  assert_int_equal(uv_timer_start(&f->t2, on_t2_free_monitor, 300, 0), 0);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_null(f->mon);
  assert_true(f->open);
  assert_int_equal(f->nev, 1);
  assert_int_equal(f->ev_kind[0], SR_MONITOR_PAGE_OUT);
  assert_int_equal(f->ev_va[0], GVA + 5 * PAGE);

  sr_uv_close(&f->h, on_close);
  f->open = false;
  assert_int_equal(sr_uv_monitor_new(&f->h, &m2, on_va_event, f), SR_EINVAL);
  assert_null(m2);
  assert_int_equal(
      sr_uv_spacemon_new(&f->h, &s2, f->cr3, NULL, on_space_event, f),
      SR_EINVAL);
  assert_null(s2);
  assert_int_equal(sr_uv_monitor_new(NULL, &m2, on_va_event, f), SR_EINVAL);
  assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(f->nclose, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_uv_pending_completes_after_page_in,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_uv_spacemon_on_the_loop, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_uv_monitor_runs_while_it_exists,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_uv_idle_returns_at_once, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_uv_backoff_bound, setup, teardown),
      cmocka_unit_test_setup_teardown(test_uv_deadline, setup, teardown),
      cmocka_unit_test_setup_teardown(test_uv_deadline_caps_backoff, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_uv_deadline_caps_min_period, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_uv_deadline_of_read_started_in_callback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_uv_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_uv_cancel_sibling_in_same_poll,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_uv_close_with_pending, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_uv_close_in_callback, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_uv_read_in_callback, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_uv_always_callback, setup, teardown),
      cmocka_unit_test_setup_teardown(test_uv_always_callback_cancel_and_close,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_uv_invalid_args, setup, teardown),
  };

  return cmocka_run_group_tests(tests, NULL, NULL);
}
