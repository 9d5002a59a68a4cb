/* cmocka-side helpers shared by the loop suites: a fresh uv_loop_t with an
 * unref'd 5 s watchdog (a stuck loop fails the test instead of hanging it),
 * and the end of every test: the watchdog closed, the loop run dry, and
 * uv_loop_close() == 0 (every handle was closed). */
#ifndef SR_TESTS_LOOP_ASSERTS_H
#define SR_TESTS_LOOP_ASSERTS_H

#include <uv.h>

static void loopfx_on_watchdog(uv_timer_t* t) {
  (void)t;
  fail_msg("the loop is still running after 5 s");
}

static inline void loopfx_open(uv_loop_t* loop, uv_timer_t* watchdog) {
  assert_int_equal(uv_loop_init(loop), 0);
  assert_int_equal(uv_timer_init(loop, watchdog), 0);
  assert_int_equal(uv_timer_start(watchdog, loopfx_on_watchdog, 5000, 0), 0);
  uv_unref((uv_handle_t*)watchdog);
}

/* The caller has closed (uv_close) its own handles. */
static inline void loopfx_close(uv_loop_t* loop, uv_timer_t* watchdog) {
  uv_close((uv_handle_t*)watchdog, NULL);
  assert_int_equal(uv_run(loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(loop), 0);
}

#endif /* SR_TESTS_LOOP_ASSERTS_H */
