/* sr_swap_read, and the chunk walker it shares with the poll.
 *
 * A read is validated (length, wrap, canonical range, CR3), then every
 * 4 KiB chunk is walked: a present chunk is copied straight into the
 * caller's buffer and accepted only if a second walk after the copy finds
 * the same leaf (same GPA, same leaf entry); a chunk blocked by a
 * non-present entry is filed in the watch index under that entry (with
 * the entries above it on the walk as its parents), together with every
 * following chunk the same entry blocks (one walk per blocked 2 MiB or
 * 1 GiB region, not per chunk). If all chunks are in, the read
 * completes synchronously; if some are missing it becomes PENDING; any
 * permanent failure (hole, beyond the file, bad entry) or SR_ENOMEM undoes
 * everything it filed: nothing queued, no callback, no dtor. A read inside
 * one chunk (without SR_READ_JOIN) first tries one sr_read_virt, before
 * validation and before any transaction exists (no allocation): a present
 * chunk completes there; otherwise the usual path validates it and its
 * walk takes that chunk with sr_translate at once (it is not copied a
 * second time). Limits: at most UINT32_MAX - 1 chunks per read; the buffer may
 * hold bytes of chunks that were copied but not accepted until the read
 * completes.
 */
#include <string.h>

#include "internal.h"
#include "swapread/read.h"

#if defined(__GNUC__)
#define NOINLINE __attribute__((noinline))
#else
#define NOINLINE
#endif

static bool same_leaf(const sr_translation_t* a, const sr_translation_t* b) {
  return a->status == 0 && b->status == 0 && a->gpa == b->gpa &&
         a->stop_level == b->stop_level &&
         a->entry[a->stop_level - 1] == b->entry[b->stop_level - 1];
}

/* The last chunk (<= hi) that the entry which stopped walk `tr` at va
 * blocks as well: every chunk in the same aligned region of that level. */
static uint32_t blocked_last(const sr__txn_t* t, const sr_translation_t* tr,
                             uint64_t va, uint32_t hi) {
  unsigned shift = 12 + 9 * (unsigned)(tr->stop_level - 1);
  uint64_t span = UINT64_C(1) << shift;
  uint64_t last = (va & ~(span - 1)) + (span - 1);
  uint64_t end = t->gva + (t->len - 1);
  uint32_t c;

  assert(tr->stop_level >= 1 && tr->stop_level <= 5);
  if (last > end)
    last = end;
  c = sr__chunk_of(t, last);
  return c < hi ? c : hi;
}

static void accept(sr_swap_t* swap, sr__txn_t* t, uint32_t i,
                   const sr_translation_t* tr) {
  assert(sr__bit_get(t->bits, i) && t->npending > 0);
  t->bits[i / 64] &= ~(UINT64_C(1) << (i % 64));
  t->npending--;
  if (t->state == SR__TXN_PENDING) {
    assert(swap->st.pending_chunks > 0);
    swap->st.pending_chunks--;
  }
  swap->st.chunks_copied++;
  if (tr->prot & SR_PROT_NX)
    t->done_flags |= SR_DONE_NX;
  if (tr->resident)
    t->done_flags |= SR_DONE_RESIDENT;
  if (i == 0)
    t->gpa = tr->gpa;
}

/* The fast path: sr_read_virt copies chunks i.. up to hi (whole runs of
 * contiguous frames at once, each revalidated) and accepts every chunk it
 * copied in full. Returns the first chunk not accepted (hi + 1 if all
 * were); if that chunk's walk failed, *a is that walk and *rc its status,
 * else *rc is 1 (walk it the usual way). */
static uint32_t fast_copy(sr_swap_t* swap, sr__txn_t* t, uint32_t i,
                          uint32_t hi, sr_translation_t* a, int* rc) {
  sr_vread_t vr;
  uint64_t va, end;
  uint32_t k, stop;
  size_t n;
  int err;

  va = sr__chunk_va(t, i, &n);
  end = t->gva + (t->len - 1);
  if (hi + 1 < t->nchunks)
    end = sr__chunk_va(t, hi + 1, &n) - 1;
  err =
      sr_read_virt(swap->image, t->root, &swap->opts.walk, va,
                   (char*)t->buf + (va - t->gva), (size_t)(end - va + 1), &vr);
  stop = err == 0 ? hi + 1 : sr__chunk_of(t, va + vr.done);
  for (k = i; k < stop; k++) {
    assert(sr__bit_get(t->bits, k) && t->npending > 0);
    t->bits[k / 64] &= ~(UINT64_C(1) << (k % 64));
    t->npending--;
    if (t->state == SR__TXN_PENDING) {
      assert(swap->st.pending_chunks > 0);
      swap->st.pending_chunks--;
    }
    swap->st.chunks_copied++;
  }
  if (stop > i) {
    if (vr.prot & SR_PROT_NX)
      t->done_flags |= SR_DONE_NX;
    if (vr.resident)
      t->done_flags |= SR_DONE_RESIDENT;
    if (i == 0)
      t->gpa = vr.gpa;
  }
  *rc = 1;
  if (err != 0 && vr.stop.status != 0 && vr.stop.status != SR_EINVAL) {
    *a = vr.stop;
    *rc = vr.stop.status;
  }
  return stop;
}

int sr__txn_walk(sr_swap_t* swap, sr__txn_t* t, uint32_t lo, uint32_t hi,
                 uint32_t* stop, bool lo_failed) {
  sr_translation_t a, b;
  uint32_t i, next, last;
  unsigned attempts;
  uint64_t va;
  size_t n;
  int rc;

  assert(t->role != SR__ROLE_FOLLOWER && lo <= hi && hi < t->nchunks);
  for (i = lo; i <= hi; i = next) {
    assert(sr__bit_get(t->bits, i));
    rc = 1;
    if (swap->copy_hook == NULL && !(lo_failed && i == lo)) {
      i = fast_copy(swap, t, i, hi, &a, &rc);
      if (i > hi)
        break;
    }
    va = sr__chunk_va(t, i, &n);
    if (rc == 1)
      rc = sr_translate(swap->image, t->root, va, &swap->opts.walk, &a);
    for (attempts = 0;;) {
      if (rc == SR_ENOTPRESENT) {
        last = blocked_last(t, &a, va, hi);
        assert(a.entry_gpa[a.stop_level - 1] == a.fail_entry_gpa);
        if (sr__watch_file(swap, t, i, last, &a, a.stop_level, false) != 0)
          goto err_nomem;
        t->kinds |= 1u << a.pte.kind;
        next = last + 1;
        break;
      }
      if (rc != 0)
        goto err_permanent;
      rc = sr_image_read(swap->image, a.gpa, (char*)t->buf + (va - t->gva), n,
                         NULL);
      if (rc != 0)
        goto err_permanent;
      if (swap->copy_hook != NULL)
        swap->copy_hook(swap, swap->copy_hook_arg, va);
      rc = sr_translate(swap->image, t->root, va, &swap->opts.walk, &b);
      if (same_leaf(&a, &b)) {
        accept(swap, t, i, &b);
        next = i + 1;
        break;
      }
      swap->st.chunks_rejected++;
      a = b;
      if (++attempts == SR__COPY_ATTEMPTS && rc == 0) {
        /* Still moving: watch the leaf and re-walk at the next poll. */
        if (sr__watch_file(swap, t, i, i, &a, a.stop_level, true) != 0)
          goto err_nomem;
        next = i + 1;
        break;
      }
    }
  }
  return 0;

err_permanent:
  t->fail_gva = va;
  return rc;
err_nomem:
  *stop = i;
  return SR_ENOMEM;
}

/* Checks the request: 0 with *root and *nchunks, or SR_EINVAL (length 0,
 * wrap past 2^64, unknown flags, too many chunks, no kernel CR3) or
 * SR_ENONCANON (either end non-canonical, or across the canonical hole). */
static int validate(const sr_swap_t* swap, const sr_swap_req_t* req,
                    uint64_t* root, uint32_t* nchunks) {
  sr_paging_t paging = swap->opts.walk.paging;
  uint64_t last, n;

  if (req->buf == NULL || req->len == 0 ||
      (req->flags & ~(uint32_t)(SR_READ_PARTIAL | SR_READ_JOIN)) != 0)
    return SR_EINVAL;
  if ((uint64_t)req->len - 1 > UINT64_MAX - req->gva)
    return SR_EINVAL;
  last = req->gva + ((uint64_t)req->len - 1);
  if (!sr_gva_canonical(req->gva, paging) || !sr_gva_canonical(last, paging) ||
      (req->gva >> 63) != (last >> 63))
    return SR_ENONCANON;
  n = (last >> SR__CHUNK_SHIFT) - (req->gva >> SR__CHUNK_SHIFT) + 1;
  if (n >= SR__NIL)
    return SR_EINVAL;
  *nchunks = (uint32_t)n;
  *root = req->cr3;
  if (req->cr3 == SR_CR3_KERNEL) {
    if (swap->opts.kernel_cr3 == 0)
      return SR_EINVAL;
    *root = swap->opts.kernel_cr3;
  }
  return 0;
}

static void fill_sync(sr_swap_done_t* sync, const sr_swap_req_t* req,
                      const sr__txn_t* t, int status) {
  if (sync == NULL)
    return;
  memset(sync, 0, sizeof(*sync));
  sync->status = status;
  sync->cr3 = req->cr3;
  sync->gva = req->gva;
  sync->buf = req->buf;
  sync->len = req->len;
  if (t != NULL) {
    sync->flags = t->done_flags;
    sync->gpa = t->gpa;
    sync->kinds_seen = t->kinds;
    sync->nchunks = t->nchunks;
    sync->fail_gva = t->fail_gva;
  } else if (status < 0) {
    sync->fail_gva = req->gva;
  }
}

/* The stats of a read that completed inside sr_swap_read without a
 * transaction (one chunk, copied). */
static void count_read_now(sr_swap_t* swap) {
  swap->st.reads++;
  swap->st.sync_completions++;
  swap->st.chunks_copied++;
}

/* read_now with *sync to fill: as a transaction fills it. Not inlined:
 * its sr_vread_t stays off sr_swap_read's frame. */
static NOINLINE bool read_now_sync(sr_swap_t* swap, const sr_swap_req_t* req,
                                   uint64_t root, sr_swap_done_t* sync) {
  sr_vread_t vr;

  if (sr_read_virt(swap->image, root, &swap->opts.walk, req->gva, req->buf,
                   req->len, &vr) != 0)
    return false;
  count_read_now(swap);
  fill_sync(sync, req, NULL, 0);
  sync->flags = ((vr.prot & SR_PROT_NX) ? SR_DONE_NX : 0) |
                (vr.resident ? SR_DONE_RESIDENT : 0);
  sync->gpa = vr.gpa;
  sync->nchunks = 1;
  return true;
}

/* A read inside one chunk, without SR_READ_JOIN, tried before validation
 * and before any transaction exists: one sr_read_virt (its lean path
 * walks, copies and revalidates the chunk; it rejects a non-canonical
 * address itself). true if it completed (stats counted, *sync filled as
 * the transaction path fills it): 1; -1 if it was tried and did not
 * complete (a chunk not present, an error); 0 if it was not tried (a
 * longer read, a join, a bad argument, a test's copy hook). Nothing is
 * counted unless it completed: the usual path then decides. */
static inline int read_now(sr_swap_t* swap, const sr_swap_req_t* req,
                           sr_swap_done_t* sync) {
  uint64_t root = req->cr3;

  if (req->buf == NULL ||
      (uint64_t)req->len - 1 >= SR__CHUNK - (req->gva & (SR__CHUNK - 1)) ||
      (req->flags & ~(uint32_t)SR_READ_PARTIAL) != 0 || swap->copy_hook != NULL)
    return 0;
  if (root == SR_CR3_KERNEL) {
    root = swap->opts.kernel_cr3;
    if (root == 0)
      return 0;
  }
  if (sync != NULL)
    return read_now_sync(swap, req, root, sync) ? 1 : -1;
  if (sr_read_virt(swap->image, root, &swap->opts.walk, req->gva, req->buf,
                   req->len, NULL) != 0)
    return -1;
  count_read_now(swap);
  return 1;
}

/* Sets the caller's fields of NEW txn t from the request. */
static void set_caller(sr__txn_t* t, const sr_swap_req_t* req, uint64_t root,
                       sr_swap_cb cb, void* data, sr_swap_dtor dtor,
                       uint64_t now_ns) {
  t->cr3 = req->cr3;
  t->root = root;
  t->gva = req->gva;
  t->len = req->len;
  t->buf = req->buf;
  t->rflags = req->flags;
  t->cb = cb;
  t->data = data;
  t->dtor = dtor;
  t->start_ns = now_ns;
}

/* NEW txn slot becomes PENDING: deadline armed (room reserved). */
static int go_pending(sr_swap_t* swap, uint32_t slot, const sr_swap_req_t* req,
                      uint64_t now_ns, sr_swap_handle_t* handle) {
  sr__txn_t* t = sr__txn_at(swap, slot);

  t->state = SR__TXN_PENDING;
  t->deadline_ns = sr__deadline(swap, now_ns, req->timeout_ns);
  if (t->deadline_ns != SR_TIMEOUT_NONE)
    sr__heap_insert(swap, slot);
  swap->st.pending++;
  swap->st.reads++;
  if (handle != NULL)
    handle->id = sr__txn_handle(swap, slot);
  assert(sr__txn_check(swap, t));
  return SR_PENDING;
}

static int join(sr_swap_t* swap, uint32_t leader, const sr_swap_req_t* req,
                uint64_t root, uint32_t nchunks, uint64_t now_ns, sr_swap_cb cb,
                void* data, sr_swap_dtor dtor, sr_swap_handle_t* handle) {
  uint32_t slot;
  int rc;

  if (sr__heap_reserve(swap, 1) != 0)
    return SR_ENOMEM;
  rc = sr__txn_new(swap, nchunks, &slot);
  if (rc != 0)
    return rc;
  set_caller(sr__txn_at(swap, slot), req, root, cb, data, dtor, now_ns);
  sr__join_follow(swap, leader, slot);
  swap->st.joined++;
  return go_pending(swap, slot, req, now_ns, handle);
}

/* sr_swap_read without an engine, a request or a callback: SR_EINVAL.
 * Not inlined (its empty request stays off sr_swap_read's frame). */
static NOINLINE int reject_null(const sr_swap_req_t* req,
                                sr_swap_done_t* sync) {
  fill_sync(sync, req != NULL ? req : &(sr_swap_req_t){0}, NULL, SR_EINVAL);
  return SR_EINVAL;
}

/* sr_swap_read for what read_now did not complete: validation, a join,
 * or a transaction (reserved, walked, then completed or pending); tried:
 * read_now's sr_read_virt of it failed. Not inlined: sr_swap_read stays
 * small for the one-chunk reads. */
static NOINLINE int read_txn(sr_swap_t* swap, const sr_swap_req_t* req,
                             uint64_t now_ns, sr_swap_cb cb, void* data,
                             sr_swap_dtor dtor, sr_swap_handle_t* handle,
                             sr_swap_done_t* sync, bool tried) {
  uint32_t nchunks, slot, leader, stop;
  uint64_t root;
  sr__txn_t* t;
  int rc;

  rc = validate(swap, req, &root, &nchunks);
  if (rc != 0)
    goto err_count;

  if (req->flags & SR_READ_JOIN) {
    leader = sr__join_find(swap, root, req->gva, req->len, req->flags);
    if (leader != SR__NIL) {
      rc = join(swap, leader, req, root, nchunks, now_ns, cb, data, dtor,
                handle);
      if (rc < 0)
        goto err_count;
      fill_sync(sync, req, NULL, rc);
      return rc;
    }
  }

  /* Reserve what committing needs, so that only the walk can fail. */
  if (sr__heap_reserve(swap, 1) != 0 ||
      ((req->flags & SR_READ_JOIN) &&
       sr__htab_reserve(swap, &swap->join, 1, sr__join_hash) != 0)) {
    rc = SR_ENOMEM;
    goto err_count;
  }
  rc = sr__txn_new(swap, nchunks, &slot);
  if (rc != 0)
    goto err_count;
  t = sr__txn_at(swap, slot);
  set_caller(t, req, root, cb, data, dtor, now_ns);

  rc = sr__txn_walk(swap, t, 0, nchunks - 1, &stop, tried);
  if (rc != 0)
    goto err_unfile;
  assert(sr__txn_check(swap, t));
  if (t->npending == 0) {
    fill_sync(sync, req, t, 0);
    sr__txn_release(swap, slot);
    swap->st.reads++;
    swap->st.sync_completions++;
    return 0;
  }
  swap->st.pending_chunks += t->npending;
  if (req->flags & SR_READ_JOIN) {
    t->role = SR__ROLE_LEADER;
    sr__htab_insert(&swap->join, sr__join_hash(swap, slot), slot);
  }
  fill_sync(sync, req, NULL, SR_PENDING);
  return go_pending(swap, slot, req, now_ns, handle);

err_unfile:
  fill_sync(sync, req, t, rc);
  sr__watch_unfile_txn(swap, t);
  sr__txn_release(swap, slot);
  swap->st.rejected++;
  return rc;
err_count:
  fill_sync(sync, req, NULL, rc);
  swap->st.rejected++;
  return rc;
}

int sr_swap_read(sr_swap_t* swap, const sr_swap_req_t* req, uint64_t now_ns,
                 sr_swap_cb cb, void* data, sr_swap_dtor dtor,
                 sr_swap_handle_t* handle, sr_swap_done_t* sync) {
  int tried;

  if (handle != NULL)
    handle->id = 0;
  if (swap == NULL || req == NULL || cb == NULL)
    return reject_null(req, sync);
  /* One chunk, present: done without a transaction. Otherwise the
   * transaction's walk goes straight to sr_translate for it. */
  tried = read_now(swap, req, sync);
  if (tried > 0)
    return 0;
  return read_txn(swap, req, now_ns, cb, data, dtor, handle, sync, tried < 0);
}
