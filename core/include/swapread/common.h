/* swapread — common definitions: export macro, error codes, version.
 *
 * Every public function returns an int: 0 on success, < 0 on error (a
 * negated errno where POSIX has a fitting code, else one of swapread's own
 * codes in the reserved range -4000..-4099), and positive only for the
 * documented non-error status SR_PENDING. sr_strerror() and sr_err_name()
 * are generated from the same table as the constants.
 */
#ifndef SWAPREAD_COMMON_H
#define SWAPREAD_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SR_EXTERN __attribute__((visibility("default")))
#else
#define SR_EXTERN
#endif

#define SR_VERSION_MAJOR 0
#define SR_VERSION_MINOR 1
#define SR_VERSION_PATCH 0

/* Status of a read that will complete later through its callback. */
#define SR_PENDING 1

/* Linux errno values, spelled out so that this header needs no <errno.h>. */
#define SR__EIO 5
#define SR__EBADF 9
#define SR__ENOMEM 12
#define SR__EFAULT 14
#define SR__EBUSY 16
#define SR__EEXIST 17
#define SR__ENODEV 19
#define SR__EISDIR 21
#define SR__EINVAL 22
#define SR__EFBIG 27
#define SR__ENOSPC 28
#define SR__ESPIPE 29
#define SR__ERANGE 34
#define SR__ENOSYS 38
#define SR__EOVERFLOW 75
#define SR__ENOTSUP 95
#define SR__ETIMEDOUT 110
#define SR__EALREADY 114
#define SR__ESTALE 116
#define SR__ECANCELED 125
#define SR__ENOENT 2
#define SR__EACCES 13
#define SR__ENXIO 6
#define SR__ENOTDIR 20
#define SR__ENFILE 23
#define SR__EMFILE 24
#define SR__ENAMETOOLONG 36
#define SR__ELOOP 40

/* XX(name, value, message). POSIX codes first, then swapread's own. */
#define SR_ERRNO_MAP(XX)                                           \
  XX(ENOENT, -SR__ENOENT, "no such file or directory")             \
  XX(EIO, -SR__EIO, "i/o error")                                   \
  XX(EBADF, -SR__EBADF, "bad file descriptor")                     \
  XX(ENOMEM, -SR__ENOMEM, "not enough memory")                     \
  XX(EACCES, -SR__EACCES, "permission denied")                     \
  XX(EFAULT, -SR__EFAULT, "bad address")                           \
  XX(EBUSY, -SR__EBUSY, "resource busy")                           \
  XX(EEXIST, -SR__EEXIST, "already exists")                        \
  XX(ENODEV, -SR__ENODEV, "not a regular file or memory file")     \
  XX(EISDIR, -SR__EISDIR, "is a directory")                        \
  XX(ENOTDIR, -SR__ENOTDIR, "not a directory")                     \
  XX(ENXIO, -SR__ENXIO, "no such device or address")               \
  XX(ENFILE, -SR__ENFILE, "too many open files in system")         \
  XX(EMFILE, -SR__EMFILE, "too many open files")                   \
  XX(ENAMETOOLONG, -SR__ENAMETOOLONG, "file name too long")        \
  XX(ELOOP, -SR__ELOOP, "too many levels of symbolic links")       \
  XX(EINVAL, -SR__EINVAL, "invalid argument")                      \
  XX(EFBIG, -SR__EFBIG, "file too large")                          \
  XX(ENOSPC, -SR__ENOSPC, "no space left")                         \
  XX(ESPIPE, -SR__ESPIPE, "not seekable (a pipe or socket)")       \
  XX(ERANGE, -SR__ERANGE, "out of range")                          \
  XX(ENOSYS, -SR__ENOSYS, "not implemented")                       \
  XX(EOVERFLOW, -SR__EOVERFLOW, "value too large (address wraps)") \
  XX(ENOTSUP, -SR__ENOTSUP, "not supported")                       \
  XX(ETIMEDOUT, -SR__ETIMEDOUT, "timed out")                       \
  XX(EALREADY, -SR__EALREADY, "already completed")                 \
  XX(ESTALE, -SR__ESTALE, "stale handle")                          \
  XX(ECANCELED, -SR__ECANCELED, "cancelled")                       \
  XX(EHOLE, -4000, "physical address in a hole")                   \
  XX(EBEYOND, -4001, "physical address beyond end of file")        \
  XX(ENOTPRESENT, -4002, "page not present")                       \
  XX(EBADENTRY, -4003, "bad paging-structure entry")               \
  XX(ENONCANON, -4004, "non-canonical virtual address")            \
  XX(EBADLAYOUT, -4005, "bad physical layout")                     \
  XX(EBADELF, -4006, "malformed ELF core")                         \
  XX(EGONE, -4007, "address space gone")                           \
  XX(EIMAGEGONE, -4008, "image gone")                              \
  XX(EPARTIAL, -4009, "completed with missing chunks")

enum {
#define SR__XX(name, value, msg) SR_##name = (value),
  SR_ERRNO_MAP(SR__XX)
#undef SR__XX
};

/* Sync. A static message for an error code ("unknown error" otherwise). */
SR_EXTERN const char* sr_strerror(int err);
/* Sync. The constant's name without prefix ("EINVAL"), or "UNKNOWN". */
SR_EXTERN const char* sr_err_name(int err);
/* Sync. "major.minor.patch". */
SR_EXTERN const char* sr_version_string(void);

#ifdef __cplusplus
}
#endif
#endif /* SWAPREAD_COMMON_H */
