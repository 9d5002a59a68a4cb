/* loop/ private structures: the handle's private state, request states, the
 * intrusive queues, and the functions the loop/ files share.
 *
 * The public sr_uv_t keeps a pointer to a private block (spaces_) holding
 * what does not fit its fixed members: the image (for root checks), the
 * allocator, the per-CR3 liveness records (an array of nspaces_ slots,
 * cap_spaces_ allocated; a slot is free when !used and is reused by the
 * next record), a scratch page, and the stack of read callbacks running
 * now. Requests are linked through their queue_ members, libuv style
 * (void* [2]: next, prev), into the handle's queue_ (pending in the
 * engine) or done_ (SR_UV_ALWAYS_CALLBACK completions waiting for a tick).
 *
 * Request states (req->flags_, above the option flags):
 *
 *   sr_uv_read --(engine: SR_PENDING)--> PENDING --(engine cb / drop)--.
 *        |                                                             |
 *        '--(engine: 0, ALWAYS_CALLBACK)--> DONEQ --(tick / close)-----+
 *                                                                      v
 *                                                        callback, idle
 * STARTING is set while sr_uv_read finishes queuing a pending read; an
 * engine callback seen then (only from our own abort) sets ABORTED.
 */
#ifndef SR_LOOP_UV_INTERNAL_H
#define SR_LOOP_UV_INTERNAL_H

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "swapread/uv.h"

#define SR__UV_CR3_MASK UINT64_C(0x000ffffffffff000)
#define SR__UV_PAGE 4096u
#define SR__UV_HALF 256u /* first entry of the root's kernel half */

/* Handle flags (h->flags_). */
enum {
  SR__UV_CLOSING = 1u << 0, /* sr_uv_close called: new reads fail */
  SR__UV_INVALID = 1u << 1, /* sr_uv_invalidate called, no new image yet */
  SR__UV_IN_TICK = 1u << 2  /* inside the timer callback */
};

/* Request flags (req->flags_): option flags below bit 24, state above. */
#define SR__UVR_OPTS (SR_READ_PARTIAL | SR_READ_JOIN | SR_UV_ALWAYS_CALLBACK)
enum {
  SR__UVR_PENDING = 1u << 24,  /* in h->queue_, live in the engine */
  SR__UVR_DONEQ = 1u << 25,    /* in h->done_, completed synchronously */
  SR__UVR_STARTING = 1u << 26, /* inside sr_uv_read, after the engine */
  SR__UVR_ABORTED = 1u << 27   /* engine callback seen while STARTING */
};

/* One address space with pending reads (or a probe). */
typedef struct sr__uv_space_s {
  uint64_t cr3;    /* masked root GPA */
  uint64_t nreads; /* pending reads of this CR3 */
  sr_uv_probe_cb probe;
  void* probe_arg;
  bool used;
  bool ref_ok;      /* the reference was read (root readable then) */
  bool ref_nonzero; /* the root had a non-zero entry then */
  bool ref_user;    /* ... in its user half (entries 0..255) */
  uint64_t kernel[SR__UV_PAGE / 8 - SR__UV_HALF]; /* reference copy */
} sr__uv_space_t;

/* A read callback running now (a stack of them: callbacks nest). */
typedef struct sr__uv_frame_s {
  const sr_uv_read_t* req;
  struct sr__uv_frame_s* prev;
} sr__uv_frame_t;

typedef struct sr__uv_state_s {
  sr_allocator_t alloc;
  sr_image_t* image;
  uint64_t kernel_cr3;         /* masked; 0: none */
  uint64_t default_timeout_ns; /* the engine's, for reads giving 0 */
  uint64_t kick_due_ms; /* earliest deadline of reads started in a tick */
  sr__uv_space_t* spaces;
  sr__uv_frame_t* frames;
  sr_uv_read_t* cancel_target;    /* see sr_uv_cancel */
  uint64_t page[SR__UV_PAGE / 8]; /* scratch for root checks */
} sr__uv_state_t;

static inline sr__uv_state_t* sr__uv_state(const sr_uv_t* h) {
  return (sr__uv_state_t*)h->spaces_;
}

/* --- intrusive queues (libuv's QUEUE: q[0] next, q[1] prev) ------------ */

static inline void sr__uvq_init(void** q) {
  q[0] = q;
  q[1] = q;
}

static inline bool sr__uvq_empty(void* const* q) {
  return q[0] == (const void*)q;
}

static inline void sr__uvq_insert_tail(void** head, void** q) {
  void** last = head[1];

  q[0] = head;
  q[1] = last;
  last[0] = q;
  head[1] = q;
}

static inline void sr__uvq_insert_head(void** head, void** q) {
  void** first = head[0];

  q[0] = first;
  q[1] = head;
  first[1] = q;
  head[0] = q;
}

static inline void sr__uvq_remove(void** q) {
  void** next = q[0];
  void** prev = q[1];

  prev[0] = next;
  next[1] = prev;
  q[0] = q;
  q[1] = q;
}

/* Moves every element of `from` to `to` (which is overwritten). */
static inline void sr__uvq_move(void** from, void** to) {
  if (sr__uvq_empty((void* const*)from)) {
    sr__uvq_init(to);
    return;
  }
  to[0] = from[0];
  to[1] = from[1];
  ((void**)to[0])[1] = to;
  ((void**)to[1])[0] = to;
  sr__uvq_init(from);
}

static inline sr_uv_read_t* sr__uvq_req(void** q) {
  return (sr_uv_read_t*)(void*)((char*)q - offsetof(sr_uv_read_t, queue_));
}

/* --- uv.c ---------------------------------------------------------------- */

/* Memory through the engine's allocator (malloc when none was given). */
void* sr__uv_alloc(sr_uv_t* h, size_t size);
void* sr__uv_realloc(sr_uv_t* h, void* p, size_t old_size, size_t new_size);
void sr__uv_free(sr_uv_t* h, void* p, size_t size);
/* A read with a deadline timeout_ms from now (SR_TIMEOUT_NONE: none)
 * became pending: polls restart at the minimum period, and the next tick
 * comes no later than the deadline. 0 or a libuv error. */
int sr__uv_kick_pending(sr_uv_t* h, uint64_t timeout_ms);
/* A completion was queued on done_: a tick on a later loop iteration. */
int sr__uv_kick_done(sr_uv_t* h);
/* Reads ended outside a tick: stop the timer if nothing is left. */
void sr__uv_settle(sr_uv_t* h);

/* --- uv_read.c ------------------------------------------------------------ */

/* Runs req's callback with status (nesting tracked for SR_EALREADY). */
void sr__uv_deliver(sr_uv_t* h, sr_uv_read_t* req, int status);
/* Delivers the completions queued before this tick (those in `batch`);
 * if the handle starts closing meanwhile, puts the rest back on done_. */
void sr__uv_deliver_batch(sr_uv_t* h, void** batch);
/* Delivers every queued completion (close). */
void sr__uv_deliver_all(sr_uv_t* h);

/* --- restart.c ------------------------------------------------------------ */

/* The record key of a request's cr3 (SR_CR3_KERNEL resolved, masked). */
uint64_t sr__uv_key(const sr_uv_t* h, uint64_t cr3);
/* One more pending read of key; the first takes the reference copy.
 * 0 or SR_ENOMEM. */
int sr__uv_space_acquire(sr_uv_t* h, uint64_t key);
/* One pending read of key ended; the record goes with its last read
 * unless a probe is set. */
void sr__uv_space_release(sr_uv_t* h, uint64_t key);
/* The restart check of every address space with pending reads. */
void sr__uv_check_spaces(sr_uv_t* h);
/* Frees the records (close). */
void sr__uv_spaces_free(sr_uv_t* h);

#endif /* SR_LOOP_UV_INTERNAL_H */
