/*
 * include/cfutures/event.h: the bridge on a libevent event_base. The
 * standard cases are in bridge_harness.h; this file wires an event_base
 * into them and tests the adapter's own argument rules. No evthread setup:
 * the adapter must work without it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cfutures/event.h"

#include "bridge_harness.h"

struct event_ctx {
  struct event_base *base;
  struct event *bridge_ev; /* NULL once detached */
  struct event *limit;
};

static void on_limit(evutil_socket_t fd, short what, void *arg) {
  (void)fd;
  (void)what;
  harness_timed_out(arg);
}

static void loop_setup(struct harness *h) {
  struct event_ctx *c = h->ctx;
  c->base = event_base_new();
  assert_non_null(c->base);
  c->bridge_ev = cf_event_bridge_new(c->base, h->bridge);
  assert_non_null(c->bridge_ev);
  c->limit = evtimer_new(c->base, on_limit, h);
  assert_non_null(c->limit);
  struct timeval limit = {HARNESS_LIMIT_SECONDS, 0};
  assert_int_equal(evtimer_add(c->limit, &limit), 0);
}

static void loop_run(struct harness *h) {
  struct event_ctx *c = h->ctx;
  /* 0 after loopbreak, 1 when no event is left; -1 is a libevent error. */
  harness_record(h, event_base_dispatch(c->base) < 0 ? CF_ESYSTEM : 0);
}

static void loop_quit(struct harness *h) {
  struct event_ctx *c = h->ctx;
  harness_record(h, event_base_loopbreak(c->base) != 0 ? CF_ESYSTEM : 0);
}

static void loop_detach(struct harness *h) {
  struct event_ctx *c = h->ctx;
  cf_event_bridge_free(c->bridge_ev); /* from inside its own callback */
  c->bridge_ev = NULL;
}

static void loop_teardown(struct harness *h) {
  struct event_ctx *c = h->ctx;
  cf_event_bridge_free(c->bridge_ev);
  event_free(c->limit);
  event_base_free(c->base);
}

static void wakeup_nothing(void *data) {
  (void)data;
}

/* NULL arguments and a bridge without an fd give NULL; freeing NULL is a
 * no-op; an event freed before the loop runs leaves no event behind. */
static void test_bad_arguments(void **state) {
  (void)state;
  struct event_base *base = event_base_new();
  cf_bridge_t *b, *no_fd;
  assert_non_null(base);
  assert_int_equal(cf_bridge_create(&b), 0);
  assert_int_equal(
      cf_bridge_create_with_wakeup(&no_fd, wakeup_nothing, NULL, NULL), 0);

  assert_null(cf_event_bridge_new(NULL, b));
  assert_null(cf_event_bridge_new(base, NULL));
  assert_null(cf_event_bridge_new(base, no_fd));
  cf_event_bridge_free(NULL);

  struct event *ev = cf_event_bridge_new(base, b);
  assert_non_null(ev);
  assert_int_equal(event_get_fd(ev), cf_bridge_fd(b));
  assert_true(event_pending(ev, EV_READ, NULL));
  cf_event_bridge_free(ev);
  cf_bridge_destroy(b);
  assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 1); /* none */
  event_base_free(base);
  cf_bridge_destroy(no_fd);
}

/* harness_loop_t.forked_child: one iteration on a new base. */
static int forked_child(cf_bridge_t *b) {
  struct event_base *base = event_base_new();
  struct event *ev = base != NULL ? cf_event_bridge_new(base, b) : NULL;
  if (ev == NULL)
    return 2;
  int rc = event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
  int stopped = rc == 0 && !event_pending(ev, EV_READ, NULL);
  cf_event_bridge_free(ev);
  event_base_free(base);
  return stopped ? 0 : 1;
}

static const harness_loop_t libevent_loop = HARNESS_LOOP(struct event_ctx, NULL);

int main(void) {
  const struct CMUnitTest tests[] = {
      HARNESS_STANDARD_TESTS("test_", &libevent_loop),
      HARNESS_TEST("test_forked_child_stops", harness_test_forked_child_stops,
                   &libevent_loop),
      cmocka_unit_test(test_bad_arguments),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
