/* swapread — x86-64 address translation and non-present entry classes.
 *
 * sr_translate walks the guest's paging structures under a CR3 in the
 * image: 4-level or 5-level (LA57) paging, 4 KiB / 2 MiB / 1 GiB leaves.
 * It never reads outside the image whatever the entries say, and it reports
 * where a failed walk stopped (level, raw entry, GPA of the entry) so a
 * caller can watch that entry. A non-present entry is classified (Linux
 * swap, PROT_NONE, Windows transition/prototype/pagefile, ...); resident
 * kinds are treated as present only when SR_WALK_RESIDENT is given.
 */
#ifndef SWAPREAD_TRANSLATE_H
#define SWAPREAD_TRANSLATE_H

#include "swapread/image.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SR_PAGE_4K (UINT64_C(1) << 12)
#define SR_PAGE_2M (UINT64_C(1) << 21)
#define SR_PAGE_1G (UINT64_C(1) << 30)

/* Paging levels, numbered as the SDM counts them from the leaf. */
typedef enum sr_level_e {
  SR_LEVEL_PT = 1,
  SR_LEVEL_PD = 2,
  SR_LEVEL_PDPT = 3,
  SR_LEVEL_PML4 = 4,
  SR_LEVEL_PML5 = 5
} sr_level_t;

typedef enum sr_paging_e {
  SR_PAGING_4LEVEL = 0, /* default */
  SR_PAGING_5LEVEL = 1  /* LA57 */
} sr_paging_t;

/* Which guest OS encodes the non-present entries (classification only). */
typedef enum sr_os_e {
  SR_OS_LINUX = 0, /* default */
  SR_OS_WINDOWS = 1
} sr_os_t;

/* Walk option flags (input). */
enum {
  /* Treat resident-but-not-present leaves (Linux PROT_NONE, Windows
   * transition) as readable, at the frame they name. Off by default. */
  SR_WALK_RESIDENT = 1u << 0
};

/* Accumulated protection (output): writable and user need every level to
 * allow it; NX is set if any level forbids execution. */
enum { SR_PROT_W = 1u << 0, SR_PROT_U = 1u << 1, SR_PROT_NX = 1u << 2 };

typedef struct sr_walk_opts_s {
  sr_paging_t paging;
  sr_os_t os;
  uint32_t flags;     /* SR_WALK_* */
  uint8_t maxphyaddr; /* 0: 52 */
} sr_walk_opts_t;

/* Kinds of a non-present entry. */
typedef enum sr_pte_kind_e {
  SR_PTE_PRESENT = 0,    /* not a non-present entry at all */
  SR_PTE_NONE,           /* zero (Windows: demand-zero, no pagefile) */
  SR_PTE_LINUX_SWAP,     /* swp entry: type and (un-inverted) offset */
  SR_PTE_LINUX_PROTNONE, /* resident; frame = inverted PFN */
  SR_PTE_WIN_TRANSITION, /* resident; frame = PFN field */
  SR_PTE_WIN_PROTOTYPE,  /* refers to a prototype PTE */
  SR_PTE_WIN_PAGEFILE,   /* pagefile number and page offset */
  SR_PTE_UNKNOWN
} sr_pte_kind_t;

typedef struct sr_pte_info_s {
  sr_pte_kind_t kind;
  bool resident;        /* PROTNONE / TRANSITION: the data is in `frame` */
  uint64_t frame;       /* GPA of the frame for resident kinds */
  uint32_t swap_type;   /* LINUX_SWAP: type; WIN_PAGEFILE: file number */
  uint64_t swap_offset; /* LINUX_SWAP / WIN_PAGEFILE: offset in pages */
  uint64_t proto_addr;  /* WIN_PROTOTYPE: address of the prototype PTE */
} sr_pte_info_t;

/* The result of a walk. entry[i] / entry_gpa[i] describe level i + 1 for
 * every level read (top level first down to `stop_level`). */
typedef struct sr_translation_s {
  int status; /* 0, or the error sr_translate returned */
  uint64_t gva;
  uint64_t gpa;       /* of gva, when status == 0 */
  uint64_t page_size; /* SR_PAGE_4K / 2M / 1G, when status == 0 */
  uint32_t prot;      /* SR_PROT_* accumulated over the levels read */
  bool resident;      /* status 0 through SR_WALK_RESIDENT */
  int top_level;      /* 4 or 5 */
  int stop_level;     /* leaf level, or the level that stopped the walk */
  uint64_t entry[5];
  uint64_t entry_gpa[5];
  /* For a failed walk: the entry that stopped it (also in entry[]), or for
   * SR_EHOLE/SR_EBEYOND on the root or a table, 0 and the GPA of the entry
   * whose load failed (table + 8 * index). */
  uint64_t fail_entry;
  uint64_t fail_entry_gpa;
  sr_pte_info_t pte; /* classification of fail_entry (ENOTPRESENT) */
} sr_translation_t;

/* Sync. Translates gva under cr3 (low 12 bits masked); opts NULL means
 * defaults. Fills *out and returns out->status: 0, SR_ENONCANON,
 * SR_ENOTPRESENT, SR_EBADENTRY, SR_EHOLE, SR_EBEYOND, SR_EINVAL. */
SR_EXTERN int sr_translate(const sr_image_t* image, uint64_t cr3, uint64_t gva,
                           const sr_walk_opts_t* opts, sr_translation_t* out);

/* What one paging-structure entry is, as a walk would take it. */
typedef enum sr_entry_class_e {
  SR_ENTRY_TABLE = 0,      /* present, points at the next table (addr) */
  SR_ENTRY_LEAF = 1,       /* maps a page of `size` bytes at addr */
  SR_ENTRY_NOTPRESENT = 2, /* not present (not followed as resident) */
  SR_ENTRY_BAD = 3         /* reserved bits, PS in a PML4E/PML5E, ... */
} sr_entry_class_t;

typedef struct sr_entry_info_s {
  sr_entry_class_t cls;
  uint64_t addr;  /* TABLE: GPA of the table; LEAF: GPA of the page */
  uint64_t size;  /* bytes one entry of `level` maps (4K, 2M, 1G, ...) */
  uint32_t prot;  /* SR_PROT_* of this entry alone (not accumulated) */
  bool resident;  /* reached through SR_WALK_RESIDENT */
} sr_entry_info_t;

/* Sync, pure. Decodes `entry` found at `level` (1..5) with the walk
 * options (NULL: defaults) into *out. 0, or SR_EINVAL (bad level or
 * options). */
SR_EXTERN int sr_entry_decode(uint64_t entry, int level,
                              const sr_walk_opts_t* opts,
                              sr_entry_info_t* out);
/* Sync, pure. Classifies a non-present entry of the given level as `os`
 * encodes it; a present entry yields SR_PTE_PRESENT. */
SR_EXTERN sr_pte_kind_t sr_pte_classify(uint64_t entry, int level, sr_os_t os,
                                        sr_pte_info_t* info);
/* Sync. "none", "linux-swap", "linux-protnone", "win-transition",
 * "win-prototype", "win-pagefile", "unknown", "present". */
SR_EXTERN const char* sr_pte_kind_name(sr_pte_kind_t kind);
/* Sync, pure. Whether gva is canonical for the paging mode. */
SR_EXTERN bool sr_gva_canonical(uint64_t gva, sr_paging_t paging);

#ifdef __cplusplus
}
#endif
#endif /* SWAPREAD_TRANSLATE_H */
