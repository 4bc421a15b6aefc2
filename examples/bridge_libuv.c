/*
 * bridge_libuv.c: keep a libuv loop free while a pool does blocking reads.
 *
 * The Python this mirrors (asyncio with run_in_executor):
 *
 *     async def main(paths):
 *         loop = asyncio.get_running_loop()
 *         with ThreadPoolExecutor(max_workers=2) as pool:
 *             jobs = [loop.run_in_executor(pool, hash_file, p) for p in paths]
 *             for done in asyncio.as_completed(jobs):
 *                 size, digest = await done
 *                 print(size, digest)
 *
 * Shows: cf_bridge_run_in_executor from the loop thread, the results
 * delivered on the loop thread through include/cfutures/uv.h, and a loop
 * that ends by itself once the last result stopped the bridge's handle.
 * The files are temporary ones (mkstemp), removed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfutures/uv.h"

#define NFILES 4

struct file {
  char path[256];
  struct app *app;
};

struct app {
  uv_loop_t loop;
  struct cf_uv_bridge ub;
  int pending; /* results not delivered yet */
  int failed;
};

/* What a job hands back: the file's size and FNV-1a 64 hash. */
struct digest {
  uint64_t size;
  uint64_t hash;
};

/* Job, on a worker: read the whole file (blocking) and hash it. */
static int hash_file(void *arg, cf_job_t *job) {
  const char *path = arg;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return cf_job_fail(job, errno, "open %s: %s", path, strerror(errno));
  struct digest *d = malloc(sizeof *d);
  if (d == NULL) {
    close(fd);
    return cf_job_fail(job, ENOMEM, "out of memory");
  }
  d->size = 0;
  d->hash = 0xcbf29ce484222325u; /* FNV-1a 64 offset basis */
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
    for (ssize_t i = 0; i < n; i++) {
      d->hash ^= buf[i];
      d->hash *= 0x100000001b3u; /* FNV 64 prime */
    }
    d->size += (uint64_t)n;
  }
  close(fd);
  cf_job_return(job, d, free); /* the future owns d from here */
  return 0;
}

/* Delivery, on the loop thread. After the last one, stop the bridge's
 * handle: with no active handle left, uv_run returns. */
static void on_hashed(cf_future_t *f, int status, void *data) {
  struct file *file = data;
  struct app *app = file->app;
  void *value = NULL;
  if (status == 0 && cf_future_result(f, 0, &value) == 0) {
    const struct digest *d = value;
    printf("%s  %8" PRIu64 " bytes  fnv1a64 %016" PRIx64 "\n", file->path,
           d->size, d->hash);
  } else {
    int code = 0;
    const char *message = NULL;
    if (status == CF_EFAILED &&
        cf_future_exception(f, 0, &code, &message) != 0)
      message = NULL;
    fprintf(stderr, "%s: %s (%s)\n", file->path, cf_err_name(status),
            message != NULL ? message : cf_strerror(status));
    app->failed = 1;
  }
  if (--app->pending == 0) {
    int rc = cf_uv_bridge_stop(&app->ub, NULL);
    if (rc != 0) {
      fprintf(stderr, "cf_uv_bridge_stop: %s\n", cf_strerror(rc));
      app->failed = 1;
    }
  }
}

/* Create a temporary file of `size` bytes of reproducible content. */
static int make_file(struct file *file, size_t size, uint32_t seed) {
  const char *dir = getenv("TMPDIR");
  int len = snprintf(file->path, sizeof file->path, "%s/cfutures-uv-XXXXXX",
                     dir != NULL && *dir != '\0' ? dir : "/tmp");
  if (len < 0 || (size_t)len >= sizeof file->path) {
    fprintf(stderr, "TMPDIR is too long\n");
    file->path[0] = '\0';
    return -1;
  }
  int fd = mkstemp(file->path);
  if (fd < 0) {
    perror("mkstemp");
    file->path[0] = '\0';
    return -1;
  }
  unsigned char buf[4096];
  uint32_t x = seed;
  for (size_t done = 0; done < size;) {
    size_t chunk = size - done < sizeof buf ? size - done : sizeof buf;
    for (size_t i = 0; i < chunk; i++) {
      x ^= x << 13; /* xorshift32 */
      x ^= x >> 17;
      x ^= x << 5;
      buf[i] = (unsigned char)x;
    }
    for (size_t off = 0; off < chunk;) {
      ssize_t n = write(fd, buf + off, chunk - off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0) {
        perror("write");
        close(fd);
        return -1;
      }
      off += (size_t)n;
    }
    done += chunk;
  }
  if (close(fd) != 0) {
    perror("close");
    return -1;
  }
  return 0;
}

int main(void) {
  struct app app = {.pending = 0};
  struct file files[NFILES];
  cf_executor_t *ex = NULL;
  cf_bridge_t *bridge = NULL;
  int loop_ready = 0, status = EXIT_FAILURE, rc;

  memset(files, 0, sizeof files);
  for (int i = 0; i < NFILES; i++) {
    files[i].app = &app;
    if (make_file(&files[i], (size_t)(i + 1) * 300000, (uint32_t)i + 1) != 0)
      goto out;
  }

  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = 2;
  if ((rc = cf_executor_create(&ex, &opts)) != 0 ||
      (rc = cf_bridge_create(&bridge)) != 0) {
    fprintf(stderr, "setup: %s\n", cf_strerror(rc));
    goto out;
  }
  if ((rc = uv_loop_init(&app.loop)) != 0) {
    fprintf(stderr, "uv_loop_init: %s\n", uv_strerror(rc));
    goto out;
  }
  loop_ready = 1;
  if ((rc = cf_uv_bridge_start(&app.ub, &app.loop, bridge)) != 0) {
    fprintf(stderr, "cf_uv_bridge_start: %s\n", cf_strerror(rc));
    goto out;
  }

  /* This thread runs the loop, so it is the bridge's loop thread. */
  for (int i = 0; i < NFILES; i++) {
    rc = cf_bridge_run_in_executor(bridge, ex, hash_file, files[i].path, NULL,
                                   on_hashed, &files[i], NULL);
    if (rc != 0) {
      fprintf(stderr, "run_in_executor: %s\n", cf_strerror(rc));
      app.failed = 1;
      break;
    }
    app.pending++;
  }
  if (app.pending == 0)
    (void)cf_uv_bridge_stop(&app.ub, NULL);
  rc = uv_run(&app.loop, UV_RUN_DEFAULT);
  if (rc != 0)
    fprintf(stderr, "uv_run: %d handles still active\n", rc);
  else if (!app.failed)
    status = EXIT_SUCCESS;

out:
  if (app.ub.active)
    (void)cf_uv_bridge_stop(&app.ub, NULL);
  if (loop_ready) {
    (void)uv_run(&app.loop, UV_RUN_DEFAULT); /* finish the close */
    if ((rc = uv_loop_close(&app.loop)) != 0) {
      fprintf(stderr, "uv_loop_close: %s\n", uv_strerror(rc));
      status = EXIT_FAILURE;
    }
  }
  cf_bridge_destroy(bridge); /* after the handle stopped watching its fd */
  if (cf_executor_destroy(ex) != 0)
    status = EXIT_FAILURE;
  for (int i = 0; i < NFILES; i++) {
    if (files[i].path[0] != '\0' && unlink(files[i].path) != 0) {
      perror("unlink");
      status = EXIT_FAILURE;
    }
  }
  return status;
}
