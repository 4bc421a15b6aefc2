/*
 * bridge_epoll: an epoll event loop that offloads blocking work.
 *
 * The loop thread must never block on disk I/O, so reading and hashing
 * files goes to a thread pool with cf_bridge_run_in_executor (asyncio's
 * loop.run_in_executor). The bridge's one fd sits in the epoll set next to
 * whatever else the loop watches; when it turns readable, the loop calls
 * cf_bridge_dispatch and the results arrive as callbacks on the loop
 * thread, where they can touch loop state without any lock.
 *
 * The program writes a few temporary files of a few hundred KB, hashes
 * them (FNV-1a 64) in the pool, checks each hash against the one computed
 * while writing, cancels one job while it is still queued, prints what
 * came back, removes its files and exits. The files and the hashing job
 * are in hash_files.h.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* mkstemp, O_CLOEXEC */
#endif
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "cfutures.h"
#include "example_util.h"
#include "hash_files.h"

#define NFILES 5

/* One file: what the loop knows about it. Only the loop thread writes
 * here; a job gets the path only. */
struct file {
  struct temp_file tmp; /* path, and the size and hash of what we wrote */
  cf_then_t *then;      /* the pending delivery, NULL once delivered */
};

/* Loop state, touched by delivery callbacks on the loop thread only. */
struct loop {
  int remaining; /* deliveries not yet called back */
  int failures;
};

struct delivery {
  struct loop *loop;
  struct file *file;
};

/* The delivery callback: runs on the loop thread, inside dispatch. */
static void on_hashed(cf_future_t *f, int status, void *data) {
  struct delivery *dl = data;
  struct file *file = dl->file;
  struct loop *loop = dl->loop;
  file->then = NULL; /* the handle is dead once this returns */
  loop->remaining--;
  if (status == CF_ECANCELLED) {
    printf("%-26s cancelled (%s)\n", file->tmp.path,
           cf_future_cancelled(f) ? "its job never ran"
                                  : "its job ran, its result was dropped");
    return;
  }
  if (status == CF_EFAILED) {
    int code = 0;
    const char *msg = NULL;
    if (cf_future_exception(f, 0, &code, &msg) != 0)
      msg = "?";
    printf("%-26s failed: %s (%d)\n", file->tmp.path, msg ? msg : "", code);
    loop->failures++;
    return;
  }
  void *value = NULL;
  int rc = cf_future_result(f, 0, &value);
  if (rc != 0) {
    printf("%-26s result: %s\n", file->tmp.path, cf_strerror(rc));
    loop->failures++;
    return;
  }
  const struct digest *d = value;
  bool ok = d->size == file->tmp.size && d->hash == file->tmp.hash;
  printf("%-26s %8" PRIu64 " bytes  fnv1a64 %016" PRIx64 "  %s\n",
         file->tmp.path, d->size, d->hash, ok ? "ok" : "MISMATCH");
  if (!ok)
    loop->failures++;
}

int main(void) {
  struct file files[NFILES];
  struct delivery deliveries[NFILES];
  struct loop loop = {0, 0};
  int made = 0, status = EXIT_FAILURE;
  cf_bridge_t *bridge = NULL;
  cf_executor_t *pool = NULL;
  int ep = -1, bfd;
  struct epoll_event ev;

  for (; made < NFILES; made++)
    if (make_temp_file(&files[made].tmp, "cf-bridge-epoll",
                       200000 + (uint64_t)made * 50000,
                       (uint32_t)made + 1) != 0)
      goto out;

  /* The loop: an epoll set with the bridge's fd in it. */
  if (check(cf_bridge_create(&bridge), "cf_bridge_create") != 0)
    goto out;
  bfd = check(cf_bridge_fd(bridge), "cf_bridge_fd");
  if (bfd < 0)
    goto out;
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) {
    fprintf(stderr, "epoll_create1: %s\n", strerror(errno));
    goto out;
  }
  ev = (struct epoll_event){.events = EPOLLIN, .data.fd = bfd};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, bfd, &ev) != 0) {
    fprintf(stderr, "epoll_ctl: %s\n", strerror(errno));
    goto out;
  }

  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = 2;
  opts.thread_name_prefix = "hash";
  if (check(cf_executor_create(&pool, &opts), "cf_executor_create") != 0)
    goto out;

  /* Offload one job per file; the results come back to on_hashed. */
  printf("hashing %d files on %d pool threads; results on the loop thread:\n",
         NFILES, opts.max_workers);
  for (int i = 0; i < NFILES; i++) {
    deliveries[i] = (struct delivery){&loop, &files[i]};
    int rc = cf_bridge_run_in_executor(bridge, pool, hash_file_job,
                                       files[i].tmp.path, NULL, on_hashed,
                                       &deliveries[i], &files[i].then);
    if (check(rc, "cf_bridge_run_in_executor") != 0)
      goto out;
    loop.remaining++;
  }
  /* Changed our mind about the last file. The two workers are busy with
   * the first files, so its job is still queued: cancelling the delivery
   * cancels the job too (a job that had started would finish and its
   * result would be dropped). Either way the callback comes, at the next
   * dispatch, with CF_ECANCELLED; it never runs inside cf_then_cancel. */
  if (check(cf_then_cancel(files[NFILES - 1].then), "cf_then_cancel") != 1) {
    fprintf(stderr, "cf_then_cancel: the delivery was cancelled already\n");
    goto out;
  }

  while (loop.remaining > 0) {
    /* Before blocking: spin a little if a job may finish soon. */
    int ready = cf_bridge_prepare(bridge);
    struct epoll_event got[4];
    int n = epoll_wait(ep, got, 4, ready > 0 ? 0 : 5000);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0) {
      fprintf(stderr, "epoll_wait: %s\n", strerror(errno));
      goto out;
    }
    if (n == 0 && ready <= 0) {
      fprintf(stderr, "no progress in 5 s\n");
      goto out;
    }
    for (int i = 0; i < n; i++)
      if (got[i].data.fd == bfd &&
          check(cf_bridge_dispatch(bridge), "cf_bridge_dispatch") < 0)
        goto out;
  }
  status = loop.failures == 0 ? EXIT_SUCCESS : EXIT_FAILURE;

out:
  /* The pool first: it waits for running jobs, which read our files. */
  if (pool != NULL && check(cf_executor_destroy(pool), "cf_executor_destroy"))
    status = EXIT_FAILURE;
  if (ep >= 0)
    close(ep);
  cf_bridge_destroy(bridge); /* runs any callback still pending, cancelled */
  for (int i = 0; i < made; i++)
    if (remove_temp_file(&files[i].tmp) != 0)
      status = EXIT_FAILURE;
  return status;
}
