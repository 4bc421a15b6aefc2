/*
 * cfutures/event.h: run a cf_bridge on a libevent event_base. Header only:
 * include it in a file that links libevent and libcfutures.
 *
 *   struct event *ev = cf_event_bridge_new(base, bridge);
 *   event_base_dispatch(base);         // completions run in the loop
 *   cf_event_bridge_free(ev);          // then cf_bridge_destroy(bridge)
 *
 * No evthread_use_pthreads() is needed for the bridge: workers only write
 * the bridge's fd, and libevent is used on the loop thread alone, which is
 * the bridge's loop thread.
 */
#ifndef CFUTURES_EVENT_H
#define CFUTURES_EVENT_H

#include <stdlib.h>

#include <event2/event.h>

#include <cfutures.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What the event's callback gets. */
struct cf__event_bridge {
  struct event *ev;
  cf_bridge_t *bridge;
};

/* The read callback. A dispatch error (CF_EFORKED: a loop run in a forked
 * child) deletes the event rather than spinning on an fd that stays
 * readable. */
static inline void cf__event_bridge_on_read(evutil_socket_t fd, short what,
                                            void *arg) {
  struct cf__event_bridge *eb = (struct cf__event_bridge *)arg;
  (void)fd;
  (void)what;
  if (cf_bridge_dispatch(eb->bridge) < 0)
    event_del(eb->ev);
}

/* Watch bridge's fd on base: each time it is readable, cf_bridge_dispatch
 * runs in the loop. Returns a persistent event, already added, or NULL:
 * base or bridge NULL, a bridge made with a wake-up function, out of memory
 * or libevent failed. The event holds the bridge borrowed. Loop thread (or
 * before the loop runs). */
static inline struct event *cf_event_bridge_new(struct event_base *base,
                                                cf_bridge_t *bridge) {
  if (base == NULL || bridge == NULL)
    return NULL;
  int fd = cf_bridge_fd(bridge);
  if (fd < 0)
    return NULL;
  struct cf__event_bridge *eb =
      (struct cf__event_bridge *)malloc(sizeof(*eb));
  if (eb == NULL)
    return NULL;
  eb->bridge = bridge;
  eb->ev = event_new(base, fd, EV_READ | EV_PERSIST, cf__event_bridge_on_read,
                     eb);
  if (eb->ev == NULL || event_add(eb->ev, NULL) != 0) {
    if (eb->ev != NULL)
      event_free(eb->ev);
    free(eb);
    return NULL;
  }
  return eb->ev;
}

/* Delete and free an event made by cf_event_bridge_new (NULL is a no-op).
 * The bridge may be destroyed once this returned, not before. Loop thread,
 * also from inside a delivery callback, or after the loop stopped. */
static inline void cf_event_bridge_free(struct event *ev) {
  if (ev == NULL)
    return;
  struct cf__event_bridge *eb =
      (struct cf__event_bridge *)event_get_callback_arg(ev);
  event_free(ev);
  free(eb);
}

#ifdef __cplusplus
}
#endif

#endif /* CFUTURES_EVENT_H */
