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
 * The temporary files, the hashing job and the printing of a result are
 * in hash_files.h.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* mkstemp, O_CLOEXEC */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfutures/uv.h"
#include "example_util.h"
#include "hash_files.h"

#define NFILES 4

struct app {
  uv_loop_t loop;
  struct cf_uv_bridge ub;
  int pending; /* results not delivered yet */
  int failed;
};

struct file {
  struct temp_file tmp;
  struct app *app;
};

/* Delivery, on the loop thread. After the last one, stop the bridge's
 * handle: with no active handle left, uv_run returns. */
static void on_hashed(cf_future_t *f, int status, void *data) {
  struct file *file = data;
  struct app *app = file->app;
  if (print_digest(&file->tmp, f, status) != 0)
    app->failed = 1;
  if (--app->pending == 0 &&
      check(cf_uv_bridge_stop(&app->ub, NULL), "cf_uv_bridge_stop") != 0)
    app->failed = 1;
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
    if (make_temp_file(&files[i].tmp, "cfutures-uv", (uint64_t)(i + 1) * 300000,
                       (uint32_t)i + 1) != 0)
      goto out;
  }

  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = 2;
  if (check(cf_executor_create(&ex, &opts), "cf_executor_create") != 0 ||
      check(cf_bridge_create(&bridge), "cf_bridge_create") != 0)
    goto out;
  if ((rc = uv_loop_init(&app.loop)) != 0) {
    fprintf(stderr, "uv_loop_init: %s\n", uv_strerror(rc));
    goto out;
  }
  loop_ready = 1;
  if (check(cf_uv_bridge_start(&app.ub, &app.loop, bridge),
            "cf_uv_bridge_start") != 0)
    goto out;

  /* This thread runs the loop, so it is the bridge's loop thread. */
  for (int i = 0; i < NFILES; i++) {
    rc = cf_bridge_run_in_executor(bridge, ex, hash_file_job, files[i].tmp.path,
                                   NULL, on_hashed, &files[i], NULL);
    if (check(rc, "cf_bridge_run_in_executor") != 0) {
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
  if (check(cf_executor_destroy(ex), "cf_executor_destroy") != 0)
    status = EXIT_FAILURE;
  for (int i = 0; i < NFILES; i++)
    if (remove_temp_file(&files[i].tmp) != 0)
      status = EXIT_FAILURE;
  return status;
}
