/*
 * include/cfutures/glib.h: the bridge as a GSource. The standard cases
 * are in bridge_harness.h; this file runs them on the default main context
 * in the test thread, and on a private GMainContext run by its own
 * GMainLoop in a thread of its own (which is then the bridge's loop
 * thread), and tests the source's own rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cfutures/glib.h"

#include "bridge_harness.h"

struct glib_ctx {
  int own_thread;          /* a private context, run by a thread of its own */
  GMainContext *context;   /* NULL: the default context */
  GMainLoop *loop;
  GSource *bridge_source;  /* NULL once detached */
  GSource *limit;
  pthread_t thread;
};

static gboolean on_limit(gpointer data) {
  harness_timed_out(data);
  return G_SOURCE_REMOVE;
}

static void loop_setup(struct harness *h) {
  struct glib_ctx *c = h->ctx;
  c->context = c->own_thread ? g_main_context_new() : NULL;
  c->loop = g_main_loop_new(c->context, FALSE);
  c->bridge_source = cf_glib_bridge_source_new(h->bridge);
  assert_non_null(c->bridge_source);
  assert_true(g_source_attach(c->bridge_source, c->context) > 0);
  c->limit = g_timeout_source_new_seconds(HARNESS_LIMIT_SECONDS);
  g_source_set_callback(c->limit, on_limit, h, NULL);
  assert_true(g_source_attach(c->limit, c->context) > 0);
}

static void *loop_thread(void *arg) {
  struct glib_ctx *c = arg;
  g_main_context_push_thread_default(c->context);
  g_main_loop_run(c->loop);
  g_main_context_pop_thread_default(c->context);
  return NULL;
}

static void loop_run(struct harness *h) {
  struct glib_ctx *c = h->ctx;
  if (!c->own_thread) {
    g_main_loop_run(c->loop);
    return;
  }
  assert_int_equal(pthread_create(&c->thread, NULL, loop_thread, c), 0);
  assert_int_equal(pthread_join(c->thread, NULL), 0);
}

static void loop_quit(struct harness *h) {
  struct glib_ctx *c = h->ctx;
  g_main_loop_quit(c->loop);
}

static void loop_detach(struct harness *h) {
  struct glib_ctx *c = h->ctx;
  g_source_destroy(c->bridge_source); /* from inside its own dispatch */
  g_source_unref(c->bridge_source);
  c->bridge_source = NULL;
}

static void loop_teardown(struct harness *h) {
  struct glib_ctx *c = h->ctx;
  if (c->bridge_source != NULL) {
    g_source_destroy(c->bridge_source);
    g_source_unref(c->bridge_source);
  }
  g_source_destroy(c->limit);
  g_source_unref(c->limit);
  g_main_loop_unref(c->loop);
  if (c->context != NULL)
    g_main_context_unref(c->context);
}

static void wakeup_nothing(void *data) {
  (void)data;
}

static void set_flag(void *arg) {
  *(int *)arg = 1;
}

/* The source's callback: count, and end the source. */
static gboolean count_and_remove(gpointer data) {
  ++*(int *)data;
  return G_SOURCE_REMOVE;
}

/* NULL and a bridge without an fd give NULL; the source is named; a
 * callback set on it runs after the dispatch, and G_SOURCE_REMOVE from it
 * ends the source. */
static void test_source_rules(void **state) {
  (void)state;
  cf_bridge_t *b, *no_fd;
  int ran = 0, callbacks = 0;
  assert_int_equal(cf_bridge_create(&b), 0);
  assert_int_equal(
      cf_bridge_create_with_wakeup(&no_fd, wakeup_nothing, NULL, NULL), 0);
  assert_null(cf_glib_bridge_source_new(NULL));
  assert_null(cf_glib_bridge_source_new(no_fd));

  GMainContext *context = g_main_context_new();
  GSource *src = cf_glib_bridge_source_new(b);
  assert_non_null(src);
  assert_string_equal(g_source_get_name(src), "cfutures bridge");
  g_source_set_callback(src, count_and_remove, &callbacks, NULL);
  assert_true(g_source_attach(src, context) > 0);
  assert_int_equal(cf_bridge_call_threadsafe(b, set_flag, &ran), 0);
  /* The fd is readable already: one non-blocking iteration dispatches. */
  assert_true(g_main_context_iteration(context, FALSE));
  assert_true(g_source_is_destroyed(src));
  assert_int_equal(ran, 1);
  assert_int_equal(callbacks, 1);

  g_source_unref(src);
  cf_bridge_destroy(b);
  g_main_context_unref(context);
  cf_bridge_destroy(no_fd);
}

/* harness_loop_t.forked_child: one iteration on a new context. */
static int forked_child(cf_bridge_t *b) {
  GMainContext *context = g_main_context_new();
  GSource *src = cf_glib_bridge_source_new(b);
  if (src == NULL || g_source_attach(src, context) == 0)
    return 2;
  g_main_context_iteration(context, FALSE);
  int stopped = g_source_is_destroyed(src);
  g_source_destroy(src);
  g_source_unref(src);
  g_main_context_unref(context);
  return stopped ? 0 : 1;
}

static const harness_loop_t default_context_loop =
    HARNESS_LOOP(struct glib_ctx, NULL);

static const struct glib_ctx private_context = {.own_thread = 1};
static const harness_loop_t private_context_loop =
    HARNESS_LOOP(struct glib_ctx, &private_context);

int main(void) {
  const struct CMUnitTest tests[] = {
      HARNESS_STANDARD_TESTS("test_", &default_context_loop),
      HARNESS_STANDARD_TESTS("test_private_context_", &private_context_loop),
      HARNESS_TEST("test_forked_child_stops", harness_test_forked_child_stops,
                   &default_context_loop),
      cmocka_unit_test(test_source_rules),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
