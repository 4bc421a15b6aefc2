/*
 * cfutures/uv.h: run a cf_bridge on a libuv loop. Header only: include it
 * in a file that links libuv and libcfutures.
 *
 *   struct cf_uv_bridge ub;
 *   cf_uv_bridge_start(&ub, loop, bridge);  // completions now run in uv_run
 *   ...
 *   cf_uv_bridge_stop(&ub, on_closed);      // then cf_bridge_destroy(bridge)
 *
 * Everything here runs on the loop thread, which is the bridge's loop
 * thread. A started handle keeps uv_run going like any active handle; call
 * uv_unref(&ub.poll) if it should not.
 */
#ifndef CFUTURES_UV_H
#define CFUTURES_UV_H

#include <stddef.h>

#include <uv.h>

#include <cfutures.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A poll handle on one bridge's fd, and a prepare handle that calls
 * cf_bridge_prepare before the loop blocks (unreferenced: it does not keep
 * uv_run going). The caller owns the memory: it must stay at the same
 * address from start until the close callback ran. poll.data is the
 * caller's; the other fields are read-only. */
struct cf_uv_bridge {
  uv_poll_t poll;
  uv_prepare_t prepare;
  cf_bridge_t *bridge; /* borrowed */
  int active;          /* 1 from a successful start until stop */
  int uv_error;        /* the last libuv error (start or poll), 0 if none */
  int dispatch_error;  /* the last negative cf_bridge_dispatch, 0 if none */
  int closing;         /* handles whose close callback has not run */
  uv_close_cb close_cb;
};

/* The prepare callback: spin briefly for a job that may finish soon; if
 * one does, the bridge's fd is readable and libuv's poll returns at once. */
static inline void cf__uv_bridge_on_prepare(uv_prepare_t *prepare) {
  struct cf_uv_bridge *self = (struct cf_uv_bridge *)(void *)((char *)prepare -
      offsetof(struct cf_uv_bridge, prepare));
  (void)cf_bridge_prepare(self->bridge);
}

/* Each handle's close callback: the caller's runs after the last one. */
static inline void cf__uv_bridge_on_close(uv_handle_t *handle) {
  size_t at = handle->type == UV_POLL ? offsetof(struct cf_uv_bridge, poll)
                                      : offsetof(struct cf_uv_bridge, prepare);
  struct cf_uv_bridge *self = (struct cf_uv_bridge *)(void *)((char *)handle -
                                                               at);
  if (--self->closing == 0 && self->close_cb != NULL)
    self->close_cb((uv_handle_t *)&self->poll);
}

/* The poll callback. An error stops the watchers rather than spinning on
 * an fd that stays readable: CF_EFORKED from dispatch (a loop run in a forked
 * child), or a libuv poll error (libuv has stopped the handle then). */
static inline void cf__uv_bridge_on_poll(uv_poll_t *poll, int status,
                                         int events) {
  struct cf_uv_bridge *self = (struct cf_uv_bridge *)(void *)((char *)poll -
      offsetof(struct cf_uv_bridge, poll));
  (void)events;
  if (status < 0)
    self->uv_error = status;
  int rc = cf_bridge_dispatch(self->bridge);
  if (rc < 0) {
    self->dispatch_error = rc;
    if (!uv_is_closing((uv_handle_t *)poll)) {
      uv_poll_stop(poll);
      uv_prepare_stop(&self->prepare);
    }
  }
}

/* Watch bridge's fd on loop (self must not be in use): each time the fd is
 * readable, cf_bridge_dispatch runs inside uv_run. Loop thread. Returns 0,
 * CF_EINVAL (a NULL argument, or a bridge made with a wake-up function) or
 * CF_ESYSTEM: libuv refused, self->uv_error has its code (UV_EEXIST: the
 * loop polls that fd already); a handle libuv had initialized is closing:
 * keep *self valid until the loop ran once more. */
static inline int cf_uv_bridge_start(struct cf_uv_bridge *self,
                                     uv_loop_t *loop, cf_bridge_t *bridge) {
  if (self == NULL || loop == NULL || bridge == NULL)
    return CF_EINVAL;
  int fd = cf_bridge_fd(bridge);
  if (fd < 0)
    return CF_EINVAL;
  self->bridge = bridge;
  self->active = 0;
  self->uv_error = 0;
  self->dispatch_error = 0;
  self->closing = 0;
  self->close_cb = NULL;
  int rc = uv_poll_init(loop, &self->poll, fd);
  if (rc == 0) {
    rc = uv_poll_start(&self->poll, UV_READABLE, cf__uv_bridge_on_poll);
    if (rc == 0) {
      (void)uv_prepare_init(loop, &self->prepare); /* cannot fail */
      uv_unref((uv_handle_t *)&self->prepare);
      rc = uv_prepare_start(&self->prepare, cf__uv_bridge_on_prepare);
      if (rc != 0)
        uv_close((uv_handle_t *)&self->prepare, NULL);
    }
    if (rc != 0)
      uv_close((uv_handle_t *)&self->poll, NULL);
  }
  if (rc != 0) {
    self->uv_error = rc;
    return CF_ESYSTEM;
  }
  self->active = 1;
  return 0;
}

/* Stop watching and close the handles; close_cb (may be NULL; given the
 * poll handle) runs once both are closed, on a later loop iteration, and
 * only then may *self be freed. The bridge may be destroyed as soon as this returns (libuv no longer watches its fd), not
 * before. Loop thread, also from inside a delivery callback. Returns 0,
 * CF_EINVAL (self NULL) or CF_EINVALID_STATE (start failed, or stopped). */
static inline int cf_uv_bridge_stop(struct cf_uv_bridge *self,
                                    uv_close_cb close_cb) {
  if (self == NULL)
    return CF_EINVAL;
  if (!self->active)
    return CF_EINVALID_STATE;
  self->active = 0;
  self->closing = 2;
  self->close_cb = close_cb;
  uv_poll_stop(&self->poll);
  uv_close((uv_handle_t *)&self->prepare, cf__uv_bridge_on_close);
  uv_close((uv_handle_t *)&self->poll, cf__uv_bridge_on_close);
  return 0;
}

#ifdef __cplusplus
}
#endif

#endif /* CFUTURES_UV_H */
