/* The restart scenario's reader with a caller's probe, through the public
 * API only (<swapread.h>, libswapread.a, libuv): a waiting read of guest
 * memory (sr_uv_read) under the CR3 of guestprog, plus a liveness probe
 * (sr_uv_set_probe) that knows what the caller knows about its producer:
 * guestprog's header page at HDR_VA names its pid. The probe says ALIVE
 * while the header translates and names PID (or is swapped out: still
 * mapped), GONE once the header's mapping is gone or names another pid.
 * The library's own restart checks run too; whichever sees the exit first
 * ends the read with SR_EGONE.
 *
 * usage: restart_probe IMAGE CR3 HDR_VA VA LEN PID TIMEOUT_MS OUTFILE
 * stdout: "pending" (or "complete"), then "done STATUS MS PROBES GONE_BY"
 * where GONE_BY is "probe" when the probe said GONE. OUTFILE gets the LEN
 * bytes of the buffer as they were when the read ended. Exit 0 when the
 * read ended with SR_EGONE, 1 otherwise.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <swapread.h>

typedef struct probe_s {
  sr_image_t* image;
  uint64_t hdr_va, pid;
  unsigned calls, said_gone;
} probe_t;

static sr_uv_liveness_t probe(sr_uv_t* handle, uint64_t cr3, void* arg) {
  probe_t* p = arg;
  sr_translation_t t;
  uint64_t hdr[4];

  (void)handle;
  p->calls++;
  if (sr_translate(p->image, cr3, p->hdr_va, NULL, &t) == 0) {
    if (sr_image_read(p->image, t.gpa, hdr, sizeof(hdr), NULL) != 0)
      return SR_UV_UNKNOWN;
    if (hdr[3] == p->pid)
      return SR_UV_ALIVE;
  } else if (t.status == SR_ENOTPRESENT && t.stop_level == SR_LEVEL_PT &&
             t.pte.kind == SR_PTE_LINUX_SWAP) {
    return SR_UV_ALIVE; /* swapped out, still mapped */
  }
  p->said_gone++;
  return SR_UV_GONE;
}

typedef struct result_s {
  int done, status;
} result_t;

static void on_read(sr_uv_read_t* req, int status) {
  result_t* r = req->data;

  r->done = 1;
  r->status = status;
  sr_uv_close(req->handle, NULL);
}

int main(int argc, char** argv) {
  sr_image_t* img = NULL;
  uv_loop_t loop;
  sr_uv_t h;
  sr_uv_read_t req;
  sr_uv_read_opts_t ro;
  probe_t pr;
  result_t res = {0, 0};
  uint64_t cr3, va, len, t0;
  void* buf;
  FILE* f;
  int rc;

  if (argc != 9) {
    fprintf(stderr, "usage: restart_probe IMAGE CR3 HDR_VA VA LEN PID "
                    "TIMEOUT_MS OUTFILE\n");
    return 2;
  }
  memset(&pr, 0, sizeof(pr));
  cr3 = strtoull(argv[2], NULL, 0);
  pr.hdr_va = strtoull(argv[3], NULL, 0);
  va = strtoull(argv[4], NULL, 0);
  len = strtoull(argv[5], NULL, 0);
  pr.pid = strtoull(argv[6], NULL, 0);
  memset(&ro, 0, sizeof(ro));
  ro.timeout_ms = strtoull(argv[7], NULL, 0);
  if ((buf = calloc(1, len)) == NULL ||
      (rc = sr_image_open(&img, argv[1], NULL)) != 0) {
    fprintf(stderr, "restart_probe: %s: cannot open\n", argv[1]);
    return 1;
  }
  pr.image = img;
  uv_loop_init(&loop);
  if ((rc = sr_uv_init(&loop, &h, img, NULL)) != 0 ||
      (rc = sr_uv_set_probe(&h, cr3, probe, &pr)) != 0) {
    fprintf(stderr, "restart_probe: %s\n", sr_strerror(rc));
    return 1;
  }
  req.data = &res;
  t0 = uv_now(&loop);
  rc = sr_uv_read(&h, &req, cr3, va, buf, len, &ro, on_read);
  if (rc == SR_PENDING) {
    printf("pending\n");
    fflush(stdout);
    uv_run(&loop, UV_RUN_DEFAULT);
  } else {
    printf("complete\n");
    res.status = rc;
    sr_uv_close(&h, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
  }
  uv_update_time(&loop);
  printf("done %s %" PRIu64 " %u %s\n",
         res.status == 0 ? "OK" : sr_err_name(res.status), uv_now(&loop) - t0,
         pr.calls, pr.said_gone ? "probe" : "library");
  if ((f = fopen(argv[8], "wb")) != NULL) {
    fwrite(buf, 1, len, f);
    fclose(f);
  }
  uv_loop_close(&loop);
  sr_image_close(img);
  free(buf);
  return res.status == SR_EGONE ? 0 : 1;
}
