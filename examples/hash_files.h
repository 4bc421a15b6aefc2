/*
 * hash_files.h: the work the bridge examples hand to a pool, kept out of
 * the way so each example shows only its event loop and the bridge.
 *
 * make_temp_file() writes a temporary file of reproducible bytes and notes
 * their size and FNV-1a 64 hash; hash_file_job() is the blocking job that
 * reads a file back and hashes it on a pool thread; print_digest() reports
 * what a delivery brought and checks it against what was written;
 * remove_temp_file() cleans up.
 */
#ifndef CF_EXAMPLE_HASH_FILES_H
#define CF_EXAMPLE_HASH_FILES_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfutures.h"

#define FNV1A64_INIT UINT64_C(14695981039346656037)

static inline uint64_t fnv1a64(uint64_t h, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) {
    h ^= p[i];
    h *= UINT64_C(1099511628211);
  }
  return h;
}

/* A temporary file and what was written to it. */
struct temp_file {
  char path[256]; /* "" when there is no file */
  uint64_t size;
  uint64_t hash;
};

/* Write `size` bytes of xorshift32 output, seeded with `seed` (not 0), to a
 * new file "$TMPDIR/<name>-XXXXXX" (TMPDIR defaults to /tmp). Returns 0, or
 * -1 after printing why; then no file is left and path is "". */
static inline int make_temp_file(struct temp_file *t, const char *name,
                                 uint64_t size, uint32_t seed) {
  const char *dir = getenv("TMPDIR");
  int len = snprintf(t->path, sizeof t->path, "%s/%s-XXXXXX",
                     dir != NULL && *dir != '\0' ? dir : "/tmp", name);
  if (len < 0 || (size_t)len >= sizeof t->path) {
    fprintf(stderr, "TMPDIR is too long\n");
    t->path[0] = '\0';
    return -1;
  }
  int fd = mkstemp(t->path);
  if (fd < 0) {
    perror("mkstemp");
    t->path[0] = '\0';
    return -1;
  }
  unsigned char buf[4096];
  uint32_t x = seed;
  t->size = size;
  t->hash = FNV1A64_INIT;
  for (uint64_t done = 0; done < size;) {
    size_t chunk = sizeof buf;
    if (size - done < chunk)
      chunk = (size_t)(size - done);
    for (size_t i = 0; i < chunk; i++) {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      buf[i] = (unsigned char)x;
    }
    t->hash = fnv1a64(t->hash, buf, chunk);
    for (size_t off = 0; off < chunk;) {
      ssize_t n = write(fd, buf + off, chunk - off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0) {
        fprintf(stderr, "write %s: %s\n", t->path, strerror(errno));
        close(fd);
        unlink(t->path);
        t->path[0] = '\0';
        return -1;
      }
      off += (size_t)n;
    }
    done += chunk;
  }
  if (close(fd) != 0) {
    fprintf(stderr, "close %s: %s\n", t->path, strerror(errno));
    unlink(t->path);
    t->path[0] = '\0';
    return -1;
  }
  return 0;
}

/* Remove t's file, if it has one. Returns 0, or -1 after printing why. */
static inline int remove_temp_file(struct temp_file *t) {
  if (t->path[0] == '\0')
    return 0;
  if (unlink(t->path) != 0) {
    fprintf(stderr, "unlink %s: %s\n", t->path, strerror(errno));
    return -1;
  }
  t->path[0] = '\0';
  return 0;
}

/* What hash_file_job returns; its future owns it. */
struct digest {
  uint64_t size;
  uint64_t hash;
};

/* The job, on a pool thread: read the file at path `arg` (blocking) and
 * hash it. Fails with the errno value and a message if it cannot. */
static inline int hash_file_job(void *arg, cf_job_t *job) {
  const char *path = arg;
  int fd;
  do
    fd = open(path, O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return cf_job_fail(job, errno, "open %s: %s", path, strerror(errno));
  struct digest *d = malloc(sizeof *d);
  if (d == NULL) {
    close(fd);
    return cf_job_fail(job, ENOMEM, "out of memory");
  }
  d->size = 0;
  d->hash = FNV1A64_INIT;
  unsigned char buf[8192];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) != 0) {
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      int err = errno;
      close(fd);
      free(d);
      return cf_job_fail(job, err, "read %s: %s", path, strerror(err));
    }
    d->hash = fnv1a64(d->hash, buf, (size_t)n);
    d->size += (uint64_t)n;
  }
  close(fd);
  cf_job_return(job, d, free); /* the future owns d from here */
  return 0;
}

/* For a delivery callback (f and status as it got them): print the digest
 * of t's file and return 0 if f brought one that matches what was written;
 * otherwise print what went wrong to stderr and return -1. */
static inline int print_digest(const struct temp_file *t, cf_future_t *f,
                               int status) {
  void *value = NULL;
  if (status == 0 && cf_future_result(f, 0, &value) == 0) {
    const struct digest *d = value;
    printf("%s  %8" PRIu64 " bytes  fnv1a64 %016" PRIx64 "\n", t->path,
           d->size, d->hash);
    if (d->size == t->size && d->hash == t->hash)
      return 0;
    fprintf(stderr, "%s: wrote %" PRIu64 " bytes, fnv1a64 %016" PRIx64 "\n",
            t->path, t->size, t->hash);
    return -1;
  }
  int code = 0;
  const char *message = NULL;
  if (status == CF_EFAILED && cf_future_exception(f, 0, &code, &message) != 0)
    message = NULL;
  fprintf(stderr, "%s: %s (%s)\n", t->path, cf_err_name(status),
          message != NULL ? message : cf_strerror(status));
  return -1;
}

#endif /* CF_EXAMPLE_HASH_FILES_H */
