/*
 * cfutures/glib.h: run a cf_bridge as a GSource, on any GMainContext.
 * Header only: include it in a file that links GLib and libcfutures.
 *
 *   GSource *src = cf_glib_bridge_source_new(bridge);
 *   g_source_attach(src, ctx);         // NULL: the default context
 *   g_main_loop_run(loop);             // completions run in the loop
 *   g_source_destroy(src);
 *   g_source_unref(src);               // then cf_bridge_destroy(bridge)
 *
 * The thread that runs the context is the bridge's loop thread.
 */
#ifndef CFUTURES_GLIB_H
#define CFUTURES_GLIB_H

#include <glib.h>

#include <cfutures.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cf__glib_source {
  GSource source;
  cf_bridge_t *bridge;
};

/* GSourceFuncs.prepare: before the context blocks, spin briefly for a
 * job that may finish soon (cf_bridge_prepare); ready if one did. */
static inline gboolean cf__glib_source_prepare(GSource *source,
                                               gint *timeout) {
  struct cf__glib_source *s = (struct cf__glib_source *)(void *)source;
  *timeout = -1;
  return cf_bridge_prepare(s->bridge) > 0;
}

/* GSourceFuncs.dispatch: GLib calls it when the bridge's fd is readable.
 * A dispatch error (CF_EFORKED: a loop run in a forked child) removes the
 * source rather than spinning on an fd that stays readable. */
static inline gboolean cf__glib_source_dispatch(GSource *source,
                                                GSourceFunc callback,
                                                gpointer user_data) {
  struct cf__glib_source *s = (struct cf__glib_source *)(void *)source;
  if (cf_bridge_dispatch(s->bridge) < 0)
    return G_SOURCE_REMOVE;
  return callback != NULL ? callback(user_data) : G_SOURCE_CONTINUE;
}

/* A new source (the caller's reference) that runs cf_bridge_dispatch when
 * the bridge's fd is readable (and cf_bridge_prepare before the context
 * blocks), named "cfutures bridge": g_source_attach it
 * to the context that the bridge's loop thread runs. A callback given with
 * g_source_set_callback runs after each dispatch. NULL for a NULL bridge or
 * one made with a wake-up function. Holds bridge borrowed: g_source_destroy
 * it (loop thread, or after the loop stopped), then destroy the bridge. */
static inline GSource *cf_glib_bridge_source_new(cf_bridge_t *bridge) {
  static GSourceFuncs funcs = {
      cf__glib_source_prepare, NULL, cf__glib_source_dispatch, NULL, NULL,
      NULL};
  if (bridge == NULL)
    return NULL;
  int fd = cf_bridge_fd(bridge);
  if (fd < 0)
    return NULL;
  GSource *source = g_source_new(&funcs, sizeof(struct cf__glib_source));
  ((struct cf__glib_source *)(void *)source)->bridge = bridge;
  g_source_add_unix_fd(source, fd, G_IO_IN);
  g_source_set_name(source, "cfutures bridge");
  return source;
}

#ifdef __cplusplus
}
#endif

#endif /* CFUTURES_GLIB_H */
