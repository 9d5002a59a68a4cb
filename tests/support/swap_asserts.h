/* cmocka-side helpers shared by the swap suites: the fixture's setup and
 * teardown, and the one check of "this read ended exactly once". Included
 * by cmocka test files only (the fixture itself stays cmocka-free). */
#ifndef SR_TESTS_SWAP_ASSERTS_H
#define SR_TESTS_SWAP_ASSERTS_H

#include "swap_fixture.h"

static inline int swapfx_setup(void** state) {
  swapfx_t* fx;
  if (swapfx_new(&fx, 0, NULL) != 0)
    return -1;
  *state = fx;
  return 0;
}

static inline int swapfx_teardown(void** state) {
  swapfx_free(*state);
  return 0;
}

/* The read recorded in rec ended exactly once with `status`, its callback
 * from the engine (ASYNC) before its dtor, reporting the caller's own
 * request (cr3, gva, buf, len, chunks). */
static inline void assert_once(const swapfx_rec_t* rec, int status) {
  assert_int_equal(rec->ncb, 1);
  assert_int_equal(rec->ndtor, 1);
  assert_true(rec->dtor_seq > rec->cb_seq);
  assert_int_equal(swapfx_violations(rec), 0);
  assert_int_equal(rec->done.status, status);
  assert_true(rec->done.flags & SR_DONE_ASYNC);
  assert_int_equal(rec->done.cr3, rec->cr3);
  assert_int_equal(rec->done.gva, rec->gva);
  if (rec->buf != NULL) /* a test may free it in the callback */
    assert_ptr_equal(rec->done.buf, rec->buf);
  assert_int_equal(rec->done.len, rec->len);
  assert_int_equal(rec->done.nchunks, swapfx_nchunks(rec->gva, rec->len));
}

#endif /* SR_TESTS_SWAP_ASSERTS_H */
