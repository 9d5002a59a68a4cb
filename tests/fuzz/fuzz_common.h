/* Shared helpers of the libFuzzer targets: a cursor that decodes integers
 * from the fuzz input (reading past the end yields zeros, so every input is
 * valid), a memfd holding bytes, and FUZZ_CHECK, which prints the broken
 * property and traps so libFuzzer saves the input. Header-only: each
 * target is one translation unit linked with the sanitized library.
 */
#ifndef SWAPREAD_FUZZ_COMMON_H
#define SWAPREAD_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUZZ_CHECK(cond)                                                    \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "%s:%d: fuzz check failed: %s\n", __FILE__, __LINE__, \
              #cond);                                                       \
      __builtin_trap();                                                     \
    }                                                                       \
  } while (0)

typedef struct fuzz_in_s {
  const uint8_t* data;
  size_t size;
  size_t pos;
} fuzz_in_t;

static inline void fuzz_in_init(fuzz_in_t* in, const uint8_t* data,
                                size_t size) {
  in->data = data;
  in->size = size;
  in->pos = 0;
}

static inline int fuzz_in_left(const fuzz_in_t* in) {
  return in->pos < in->size;
}

/* Little-endian integer of n bytes (zeros past the end of the input). */
static inline uint64_t fuzz_in_bytes(fuzz_in_t* in, int n) {
  uint64_t v = 0;
  int i;

  for (i = 0; i < n; i++) {
    uint64_t b = in->pos < in->size ? in->data[in->pos] : 0;
    if (in->pos < in->size)
      in->pos++;
    v |= b << (8 * i);
  }
  return v;
}

static inline uint8_t fuzz_u8(fuzz_in_t* in) {
  return (uint8_t)fuzz_in_bytes(in, 1);
}
static inline uint16_t fuzz_u16(fuzz_in_t* in) {
  return (uint16_t)fuzz_in_bytes(in, 2);
}
static inline uint32_t fuzz_u32(fuzz_in_t* in) {
  return (uint32_t)fuzz_in_bytes(in, 4);
}
static inline uint64_t fuzz_u64(fuzz_in_t* in) {
  return fuzz_in_bytes(in, 8);
}

/* A memfd holding data[0..size); -1 on failure. */
static inline int fuzz_memfd(const char* name, const uint8_t* data,
                             size_t size) {
  int fd = memfd_create(name, MFD_CLOEXEC);
  size_t off = 0;

  if (fd < 0)
    return -1;
  while (off < size) {
    ssize_t n = write(fd, data + off, size - off);
    if (n <= 0) {
      close(fd);
      return -1;
    }
    off += (size_t)n;
  }
  return fd;
}

#endif /* SWAPREAD_FUZZ_COMMON_H */
