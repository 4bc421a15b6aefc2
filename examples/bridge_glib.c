/*
 * bridge_glib.c: keep a GLib main loop free while a pool does blocking
 * reads.
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
 * delivered on the loop thread by the GSource of include/cfutures/glib.h,
 * and a loop that ends by itself (g_main_loop_quit) after the last result.
 * The temporary files, the hashing job and the printing of a result are
 * in hash_files.h.
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* mkstemp, O_CLOEXEC */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfutures/glib.h"
#include "example_util.h"
#include "hash_files.h"

#define NFILES 4

struct app {
  GMainLoop *loop;
  int pending; /* results not delivered yet */
  int failed;
};

struct file {
  struct temp_file tmp;
  struct app *app;
};

/* Delivery, on the loop thread. After the last one, quit the loop. */
static void on_hashed(cf_future_t *f, int status, void *data) {
  struct file *file = data;
  struct app *app = file->app;
  if (print_digest(&file->tmp, f, status) != 0)
    app->failed = 1;
  if (--app->pending == 0)
    g_main_loop_quit(app->loop);
}

int main(void) {
  struct app app = {.pending = 0};
  struct file files[NFILES];
  cf_executor_t *ex = NULL;
  cf_bridge_t *bridge = NULL;
  GSource *source = NULL;
  int status = EXIT_FAILURE, rc;

  memset(files, 0, sizeof files);
  for (int i = 0; i < NFILES; i++) {
    files[i].app = &app;
    if (make_temp_file(&files[i].tmp, "cfutures-glib",
                       (uint64_t)(i + 1) * 300000, (uint32_t)i + 1) != 0)
      goto out;
  }

  cf_executor_options_t opts;
  cf_executor_options_init(&opts);
  opts.max_workers = 2;
  if (check(cf_executor_create(&ex, &opts), "cf_executor_create") != 0 ||
      check(cf_bridge_create(&bridge), "cf_bridge_create") != 0)
    goto out;
  /* The default main context; any GMainContext works the same way. */
  app.loop = g_main_loop_new(NULL, FALSE);
  source = cf_glib_bridge_source_new(bridge);
  if (source == NULL) {
    fprintf(stderr, "cf_glib_bridge_source_new failed\n");
    goto out;
  }
  if (g_source_attach(source, NULL) == 0) {
    fprintf(stderr, "g_source_attach failed\n");
    goto out;
  }

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
  if (app.pending > 0)
    g_main_loop_run(app.loop);
  if (!app.failed)
    status = EXIT_SUCCESS;

out:
  if (source != NULL) {
    g_source_destroy(source);
    g_source_unref(source);
  }
  if (app.loop != NULL)
    g_main_loop_unref(app.loop);
  cf_bridge_destroy(bridge); /* after its source is gone */
  if (check(cf_executor_destroy(ex), "cf_executor_destroy") != 0)
    status = EXIT_FAILURE;
  for (int i = 0; i < NFILES; i++)
    if (remove_temp_file(&files[i].tmp) != 0)
      status = EXIT_FAILURE;
  return status;
}
