/* cf_wait: concurrent.futures.wait over a waiter (see waiter.c). */
#include "internal.h"

#include <stdlib.h>

static bool satisfied(struct cf__waiter *w, size_t n, int return_when) {
  size_t pending = atomic_load(&w->pending);
  switch (return_when) {
  case CF_FIRST_COMPLETED:
    return n == 0 || pending < n;
  case CF_FIRST_EXCEPTION:
    return pending == 0 || atomic_load(&w->failed);
  default:
    return pending == 0;
  }
}

int cf_wait(cf_future_t *const *fs, size_t n, double timeout, int return_when,
            cf_future_t **done, size_t *ndone, cf_future_t **not_done,
            size_t *nnot_done) {
  cf__deadline_t deadline;
  if ((fs == NULL && n > 0) || return_when < CF_FIRST_COMPLETED ||
      return_when > CF_ALL_COMPLETED ||
      cf__deadline_init(&deadline, timeout) != 0)
    return CF_EINVAL;
  cf_future_t **unique;
  size_t m;
  int rc = cf__dedup(fs, n, &unique, &m);
  if (rc != 0)
    return rc;
  struct cf__waiter w;
  rc = cf__waiter_install(&w, (cf__wait_kind_t)return_when, unique, m, NULL,
                          NULL);
  if (rc != 0) {
    free(unique);
    return rc;
  }
  for (;;) {
    uint32_t seen = cf__event_seq(&w.event);
    if (satisfied(&w, m, return_when) ||
        cf__event_wait(&w.event, seen, &deadline) == CF_ETIMEDOUT)
      break;
  }
  cf__waiter_remove(&w);
  size_t nd = 0, nn = 0;
  for (size_t i = 0; i < m; i++) {
    if (cf_future_done(unique[i])) {
      if (done != NULL)
        done[nd] = unique[i];
      nd++;
    } else {
      if (not_done != NULL)
        not_done[nn] = unique[i];
      nn++;
    }
  }
  free(unique);
  if (ndone != NULL)
    *ndone = nd;
  if (nnot_done != NULL)
    *nnot_done = nn;
  return 0;
}
