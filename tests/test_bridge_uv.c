/*
 * include/cfutures/uv.h: the bridge on a libuv loop. The standard cases
 * are in bridge_harness.h; this file wires a uv_loop_t into them and tests
 * the adapter's own argument and lifecycle rules.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cfutures/uv.h"

#include "bridge_harness.h"

struct libuv_ctx {
  uv_loop_t loop;
  struct cf_uv_bridge ub;
  uv_timer_t limit;
};

static void on_limit(uv_timer_t *timer) {
  harness_timed_out(timer->data);
}

static void loop_setup(struct harness *h) {
  struct libuv_ctx *c = h->ctx;
  assert_int_equal(uv_loop_init(&c->loop), 0);
  assert_int_equal(cf_uv_bridge_start(&c->ub, &c->loop, h->bridge), 0);
  assert_int_equal(uv_timer_init(&c->loop, &c->limit), 0);
  c->limit.data = h;
  assert_int_equal(
      uv_timer_start(&c->limit, on_limit, HARNESS_LIMIT_SECONDS * 1000, 0), 0);
}

static void loop_run(struct harness *h) {
  struct libuv_ctx *c = h->ctx;
  (void)uv_run(&c->loop, UV_RUN_DEFAULT); /* non-zero after uv_stop */
}

static void loop_quit(struct harness *h) {
  struct libuv_ctx *c = h->ctx;
  uv_stop(&c->loop);
}

static void loop_detach(struct harness *h) {
  struct libuv_ctx *c = h->ctx;
  harness_record(h, cf_uv_bridge_stop(&c->ub, NULL));
}

/* Close what is still open and let the loop finish the closes: a loop that
 * closes cleanly has no handle left behind. */
static void loop_teardown(struct harness *h) {
  struct libuv_ctx *c = h->ctx;
  if (c->ub.active)
    assert_int_equal(cf_uv_bridge_stop(&c->ub, NULL), 0);
  uv_close((uv_handle_t *)&c->limit, NULL);
  assert_int_equal(uv_run(&c->loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&c->loop), 0);
  assert_int_equal(c->ub.uv_error, 0);
  assert_int_equal(c->ub.dispatch_error, 0);
}

static void wakeup_nothing(void *data) {
  (void)data;
}

static void count_close(uv_handle_t *handle) {
  ++*(int *)handle->data;
}

/* Bad arguments, a second watcher on the same fd, stop rules, and the
 * close callback running on a later iteration. */
static void test_start_stop_errors(void **state) {
  (void)state;
  uv_loop_t loop;
  cf_bridge_t *b, *no_fd;
  struct cf_uv_bridge ub, twin, never = {0};
  int closed = 0;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cf_bridge_create(&b), 0);
  assert_int_equal(
      cf_bridge_create_with_wakeup(&no_fd, wakeup_nothing, NULL, NULL), 0);

  assert_int_equal(cf_uv_bridge_start(NULL, &loop, b), CF_EINVAL);
  assert_int_equal(cf_uv_bridge_start(&ub, NULL, b), CF_EINVAL);
  assert_int_equal(cf_uv_bridge_start(&ub, &loop, NULL), CF_EINVAL);
  assert_int_equal(cf_uv_bridge_start(&ub, &loop, no_fd), CF_EINVAL);
  assert_int_equal(cf_uv_bridge_stop(NULL, NULL), CF_EINVAL);
  assert_int_equal(cf_uv_bridge_stop(&never, NULL), CF_EINVALID_STATE);

  assert_int_equal(cf_uv_bridge_start(&ub, &loop, b), 0);
  assert_int_equal(ub.active, 1);
  assert_int_equal(cf_uv_bridge_start(&twin, &loop, b), CF_ESYSTEM);
  assert_int_equal(twin.uv_error, UV_EEXIST);
  assert_int_equal(twin.active, 0);
  assert_int_equal(cf_uv_bridge_stop(&twin, NULL), CF_EINVALID_STATE);

  ub.poll.data = &closed;
  assert_int_equal(cf_uv_bridge_stop(&ub, count_close), 0);
  assert_int_equal(cf_uv_bridge_stop(&ub, count_close), CF_EINVALID_STATE);
  assert_int_equal(closed, 0); /* not before the loop ran */
  cf_bridge_destroy(b);         /* allowed once stop returned */
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(closed, 1);
  assert_int_equal(uv_loop_close(&loop), 0);
  cf_bridge_destroy(no_fd);
}

/* harness_loop_t.forked_child: one iteration on a new loop. */
static int forked_child(cf_bridge_t *b) {
  uv_loop_t loop;
  struct cf_uv_bridge ub;
  if (uv_loop_init(&loop) != 0 || cf_uv_bridge_start(&ub, &loop, b) != 0)
    return 2;
  (void)uv_run(&loop, UV_RUN_NOWAIT);
  int stopped = ub.dispatch_error == CF_EFORKED &&
                !uv_is_active((uv_handle_t *)&ub.poll) &&
                !uv_is_active((uv_handle_t *)&ub.prepare);
  if (cf_uv_bridge_stop(&ub, NULL) != 0 ||
      uv_run(&loop, UV_RUN_DEFAULT) != 0 || uv_loop_close(&loop) != 0)
    return 3;
  return stopped ? 0 : 1;
}

/* The prepare handle keeps no loop alive: with the poll handle
 * unreferenced, uv_run has nothing to wait for (NOWAIT returns 0). */
static void test_prepare_handle_unreferenced(void **state) {
  (void)state;
  uv_loop_t loop;
  cf_bridge_t *b;
  struct cf_uv_bridge ub;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(cf_bridge_create(&b), 0);
  assert_int_equal(cf_uv_bridge_start(&ub, &loop, b), 0);
  assert_true(uv_is_active((uv_handle_t *)&ub.prepare));
  assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 1); /* the poll handle */
  uv_unref((uv_handle_t *)&ub.poll);
  assert_int_equal(uv_run(&loop, UV_RUN_NOWAIT), 0);
  assert_int_equal(cf_uv_bridge_stop(&ub, NULL), 0);
  cf_bridge_destroy(b);
  assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
  assert_int_equal(uv_loop_close(&loop), 0);
}

static const harness_loop_t libuv_loop = HARNESS_LOOP(struct libuv_ctx, NULL);

int main(void) {
  const struct CMUnitTest tests[] = {
      HARNESS_STANDARD_TESTS("test_", &libuv_loop),
      HARNESS_TEST("test_forked_child_stops", harness_test_forked_child_stops,
                   &libuv_loop),
      cmocka_unit_test(test_start_stop_errors),
      cmocka_unit_test(test_prepare_handle_unreferenced),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
