/* Test support for the swap engine suites: a kit image, a reader image and
 * an engine per test, a fake clock, a callback recorder, and a counting
 * allocator. No cmocka here: helpers return codes and record what they see;
 * the tests assert. Everything a fixture hands out (records, buffers) lives
 * until swapfx_free, which frees the engine first so that callbacks of reads
 * still pending land in live records.
 */
#ifndef SWAP_FIXTURE_H
#define SWAP_FIXTURE_H

#include <swapread/kit.h>
#include <swapread/swap.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* x86-64 entry bits (Intel SDM vol 3A 4.5), for entries tests build. */
#define SWAPFX_P UINT64_C(0x1)
#define SWAPFX_RW UINT64_C(0x2)
#define SWAPFX_US UINT64_C(0x4)
#define SWAPFX_PS UINT64_C(0x80)
#define SWAPFX_NX (UINT64_C(1) << 63)
#define SWAPFX_ADDR UINT64_C(0x000ffffffffff000)
#define SWAPFX_TABLE (SWAPFX_P | SWAPFX_RW | SWAPFX_US)

/* Handy user-space VAs, 1 GiB aligned and far apart. */
#define SWAPFX_VA UINT64_C(0x00007f0000000000)
#define SWAPFX_KVA UINT64_C(0xffff888000000000)

/* Chunks a recorder copies of done->missing. */
#define SWAPFX_MAX_CHUNKS 1024
#define SWAPFX_MISSING_WORDS (SWAPFX_MAX_CHUNKS / 64)

/* A read's buffer is pre-filled with this byte. */
#define SWAPFX_SENTINEL 0xee

typedef struct swapfx_s swapfx_t;
typedef struct swapfx_rec_s swapfx_rec_t;

/* Runs inside the recorder's callback, after it recorded the completion. */
typedef void (*swapfx_hook)(swapfx_rec_t* rec, sr_swap_t* swap,
                            const sr_swap_done_t* done);

/* One read as the test sees it: what it asked for, and every call back. */
struct swapfx_rec_s {
  swapfx_t* fx;
  /* the request */
  uint64_t cr3, gva;
  size_t len;
  uint32_t flags;
  uint8_t* buf;
  int rc;                  /* what sr_swap_read returned */
  sr_swap_handle_t handle; /* when rc == SR_PENDING */
  sr_swap_done_t sync;     /* *sync of sr_swap_read */
  /* what happened since */
  int ncb;                   /* callback calls */
  int ndtor;                 /* dtor calls */
  uint64_t cb_seq, dtor_seq; /* fx->seq when they ran (0: never) */
  int in_read;               /* inside the sr_swap_read that started it */
  int in_cb;                 /* inside its own callback */
  int cb_in_own_read;        /* violations: callback inside its read */
  int cb_after_dtor;         /* violations: callback after the dtor */
  int cb_wrong_swap;         /* violations: callback got another engine */
  sr_swap_done_t done;       /* the last completion (missing: NULL) */
  bool had_missing;          /* done->missing was not NULL */
  uint64_t missing[SWAPFX_MISSING_WORDS];
  /* re-entrancy: what the callback does, with what */
  swapfx_hook hook;
  void* hook_arg;
  swapfx_rec_t* other;
  int hook_rc; /* what the hook's engine call returned */
  int hook_rc2;
};

/* A counting allocator for opts.allocator: checks the sizes handed back,
 * counts live bytes and blocks, and fails call number fail_at (1-based). */
typedef struct swapfx_alloc_s {
  sr_allocator_t hook;
  uint64_t calls;     /* alloc + realloc calls */
  uint64_t fail_at;   /* fail call number fail_at (1-based); 0: never */
  bool fail_all;      /* fail every call */
  size_t cap;         /* fail requests larger than this; 0: no cap */
  uint64_t failed;    /* calls failed */
  size_t max_request; /* largest size asked for */
  size_t live_bytes;
  size_t live_blocks;
  uint64_t size_mismatch; /* free/realloc told a size the block lacks */
} swapfx_alloc_t;

struct swapfx_s {
  sr_kit_t* kit;
  sr_image_t* image;
  sr_swap_t* swap;
  sr_swap_opts_t opts;
  uint64_t cr3; /* a 4-level address space made at creation */
  uint64_t now; /* the fake clock */
  uint64_t seq; /* bumped by every callback and dtor */
  void* user;   /* a test's own state; free()d after the engine */
  swapfx_rec_t** recs;
  size_t nrecs, cap_recs;
  void** bufs;
  size_t nbufs, cap_bufs;
};

/* Creates a kit of kit_size bytes (0: 64 MiB), its image, one address space
 * and an engine with opts (NULL: defaults). 0 or an error code. */
int swapfx_new(swapfx_t** out, uint64_t kit_size, const sr_swap_opts_t* opts);
/* Frees the engine (pending reads end with callbacks), the image, the kit,
 * then every record and buffer. NULL is allowed. */
void swapfx_free(swapfx_t* fx);
/* Frees the engine only (pending reads end with callbacks). */
void swapfx_close_engine(swapfx_t* fx);
/* Frees the engine, re-opens the image (seeing holes punched since) and
 * creates a new engine with opts (NULL: the previous ones). */
int swapfx_reopen(swapfx_t* fx, const sr_swap_opts_t* opts);

/* Maps [gva, gva + len) with page_size pages under cr3 and fills it with
 * the kit pattern of seed. */
int swapfx_map(swapfx_t* fx, uint64_t cr3, uint64_t gva, uint64_t len,
               uint64_t page_size, uint32_t prot, uint64_t seed);
/* Pages the entry for gva at level out as a Linux swap entry (type 1,
 * offset), or as a zero entry, and back in. */
int swapfx_out_swap(swapfx_t* fx, uint64_t cr3, uint64_t gva, int level,
                    uint64_t offset);
int swapfx_out_none(swapfx_t* fx, uint64_t cr3, uint64_t gva, int level);
int swapfx_out_as(swapfx_t* fx, uint64_t cr3, uint64_t gva, int level,
                  sr_pte_kind_t kind, uint64_t offset);
int swapfx_in(swapfx_t* fx, uint64_t cr3, uint64_t gva, int level);
/* The frame (GPA) the present leaf for gva at level maps; 0 on error. */
uint64_t swapfx_frame(swapfx_t* fx, uint64_t cr3, uint64_t gva, int level);

/* A zeroed record / a buffer of len bytes filled with SWAPFX_SENTINEL,
 * owned by the fixture. NULL on allocation failure. */
swapfx_rec_t* swapfx_rec(swapfx_t* fx);
uint8_t* swapfx_buf(swapfx_t* fx, size_t len);

/* sr_swap_read at fx->now with the recorder as callback/dtor (buf NULL:
 * a fresh sentinel-filled buffer). Fills the record's request fields and
 * returns (and stores) the engine's answer. */
int swapfx_read(swapfx_t* fx, swapfx_rec_t* rec, uint64_t cr3, uint64_t gva,
                size_t len, uint32_t flags, uint64_t timeout_ns);
/* As swapfx_read with a record made here; *out gets it. */
int swapfx_read_new(swapfx_t* fx, swapfx_rec_t** out, uint64_t cr3,
                    uint64_t gva, size_t len, uint32_t flags,
                    uint64_t timeout_ns);
/* sr_swap_poll at fx->now. */
int swapfx_poll(swapfx_t* fx, uint64_t* next_ns);
sr_swap_stats_t swapfx_stats(const swapfx_t* fx);

/* The recorder's callback and dtor (data: a swapfx_rec_t). */
void swapfx_cb(sr_swap_t* swap, const sr_swap_done_t* done, void* data);
void swapfx_dtor(void* data);

/* Offset of the first byte of buf that differs from the kit pattern of
 * seed at gva.., or SIZE_MAX if all match. */
size_t swapfx_mismatch(const void* buf, uint64_t gva, size_t len,
                       uint64_t seed);
/* Whether every byte of buf is `byte`. */
bool swapfx_all(const void* buf, size_t len, uint8_t byte);
/* Number of 4 KiB chunks of [gva, gva + len); the byte range of chunk i
 * relative to gva in *off, *n. */
size_t swapfx_nchunks(uint64_t gva, size_t len);
void swapfx_chunk(uint64_t gva, size_t len, size_t i, size_t* off, size_t* n);
/* Bit i of a recorded missing bitmap. */
bool swapfx_missing(const swapfx_rec_t* rec, size_t i);
/* Number of set bits in the recorded missing bitmap (first nchunks). */
size_t swapfx_missing_count(const swapfx_rec_t* rec);

/* The violations a record collected (0: none). */
int swapfx_violations(const swapfx_rec_t* rec);

void swapfx_alloc_init(swapfx_alloc_t* a);
/* Fails the k-th allocation from now (k >= 1); disarm stops failing. */
void swapfx_alloc_arm(swapfx_alloc_t* a, uint64_t k);
void swapfx_alloc_disarm(swapfx_alloc_t* a);

/* A small deterministic generator (splitmix64). */
uint64_t swapfx_rand(uint64_t* state);
/* The seed to run with: SR_SEED from the environment, else from the time. */
uint64_t swapfx_seed(void);

#endif /* SWAP_FIXTURE_H */
