/* x86-64 address translation: one walk of the guest's paging structures.
 *
 * sr_translate walks from CR3 down to the leaf that maps a GVA (Intel SDM
 * vol. 3A, 4.5: 4-level and 5-level paging, 4K / 2M / 1G pages), reading
 * every entry out of the image with sr__image_load64 and deciding what it
 * means with sr__entry_decode (walk.c). A walk does at most one load per
 * level, so entries that loop back to a table already visited, point at
 * the root, into a hole or past the end of the file all end in a bounded
 * number of steps with a result, never with a read outside the image. The
 * whole walk runs inside one fault scope: if the file shrinks under us the
 * SIGBUS is caught and the walk ends with SR_EBEYOND. Limits: no TLB, no
 * A/D-bit updates, no SMEP/SMAP/PKU or EPT; protection is the accumulated
 * W/U/NX only. Tight loop, no allocation, no system calls.
 */
#include <assert.h>
#include <string.h>

#include "fault.h"
#include "image_internal.h"
#include "pgtable.h"
#include "walk.h"

bool sr_gva_canonical(uint64_t gva, sr_paging_t paging) {
  return sr__gva_canonical(gva, paging == SR_PAGING_5LEVEL ? 5 : 4);
}

/* Walks from the table at `table` (level cfg->top_level) for out->gva and
 * fills *out. Before every load, out->stop_level and
 * out->entry_gpa[level - 1] name the entry being loaded, so that a caught
 * fault can report where the walk was from *out alone. */
/* Not inlined: the loads must not share a frame with SR__FAULT_CATCH (see
 * core/fault.h). */
__attribute__((noinline)) static int walk(const sr_image_t* image,
                                          const sr__walk_cfg_t* cfg,
                                          uint64_t table,
                                          sr_translation_t* out) {
  uint64_t gva = out->gva;
  uint32_t prot = SR_PROT_W | SR_PROT_U;
  bool resident = false;
  uint64_t entry, egpa, addr, size;
  bool res;
  int level, rc;

  for (level = cfg->top_level; level >= 1; level--) {
    egpa = table + SR__INDEX(gva, level) * 8;
    out->stop_level = level;
    out->entry_gpa[level - 1] = egpa;
    rc = sr__image_load64(image, egpa, &entry);
    if (rc != 0) {
      out->fail_entry_gpa = egpa;
      break;
    }
    out->entry[level - 1] = entry;

    switch (sr__entry_decode(cfg, entry, level, &addr, &size, &res)) {
      case SR__ENTRY_TABLE:
        assert(level > 1);
        prot = sr__prot_accumulate(prot, sr__entry_prot(entry));
        resident = resident || res;
        table = addr;
        continue;
      case SR__ENTRY_LEAF:
        prot = sr__prot_accumulate(prot, sr__entry_prot(entry));
        resident = resident || res;
        out->gpa = addr | (gva & (size - 1));
        out->page_size = size;
        rc = 0;
        break;
      case SR__ENTRY_NOTPRESENT:
        rc = SR_ENOTPRESENT;
        break;
      case SR__ENTRY_BAD:
      default:
        rc = SR_EBADENTRY;
        break;
    }
    if (rc != 0) {
      out->fail_entry = entry;
      out->fail_entry_gpa = egpa;
      sr_pte_classify(entry, level, cfg->os, &out->pte);
    }
    break;
  }
  assert(level >= 1);
  out->prot = prot;
  out->resident = resident;
  return rc;
}

/* Validates the arguments other than out (opts, CR3 within MAXPHYADDR,
 * canonical gva), then walks inside one fault scope. */
static int translate(const sr_image_t* image, uint64_t cr3,
                     const sr_walk_opts_t* opts, sr_translation_t* out) {
  sr__walk_cfg_t cfg;
  sr__fault_scope_t scope;
  int rc;

  if (image == NULL || sr__walk_config(opts, &cfg) != 0)
    return SR_EINVAL;
  out->top_level = cfg.top_level;
  if (((cr3 & SR__CR3_MASK) & ~cfg.phys_mask) != 0)
    return SR_EINVAL;
  if (!sr__gva_canonical(out->gva, cfg.top_level))
    return SR_ENONCANON;

  if (SR__FAULT_CATCH(&scope)) {
    /* The file shrank under a load: *out says which entry was loading. */
    assert(out->stop_level >= 1);
    sr__image_note_fault(image);
    out->fail_entry = 0;
    out->fail_entry_gpa = out->entry_gpa[out->stop_level - 1];
    out->entry[out->stop_level - 1] = 0;
    return SR_EBEYOND;
  }
  sr__fault_enter(&scope);
  rc = walk(image, &cfg, cr3 & SR__CR3_MASK, out);
  sr__fault_leave(&scope);
  return rc;
}

/* Fills *out and returns out->status: 0, SR_EINVAL, SR_ENONCANON,
 * SR_ENOTPRESENT, SR_EBADENTRY, SR_EHOLE or SR_EBEYOND (see
 * sr_translation_t for which fields each outcome sets). */
int sr_translate(const sr_image_t* image, uint64_t cr3, uint64_t gva,
                 const sr_walk_opts_t* opts, sr_translation_t* out) {
  if (out == NULL)
    return SR_EINVAL;
  memset(out, 0, sizeof(*out));
  out->gva = gva;
  out->status = translate(image, cr3, opts, out);
  if (out->status == SR_EINVAL || out->status == SR_ENONCANON)
    out->stop_level = 0;
  return out->status;
}
