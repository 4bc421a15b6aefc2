/*
 * Stackful coroutine contexts for the loop's tasks.
 *
 * Two back ends: a small assembly switch for x86-64 and aarch64 (it saves
 * only the callee-saved registers), and ucontext (swapcontext) for other
 * machines or when configure --with-coro=ucontext defines CF_CORO_UCONTEXT.
 * Sanitizer builds annotate every switch (AddressSanitizer's
 * start/finish_switch_fiber, ThreadSanitizer's fiber API) so that both
 * back ends run under them.
 */
#ifndef CF_CORO_H
#define CF_CORO_H

#include <stdbool.h>
#include <stddef.h>

#if defined(CF_CORO_UCONTEXT) || !(defined(__x86_64__) || defined(__aarch64__))
#define CF__CORO_UCONTEXT 1
#include <ucontext.h>
#endif

typedef struct cf__coro {
#ifdef CF__CORO_UCONTEXT
  ucontext_t uc;
#else
  void *sp; /* saved stack pointer */
#endif
  void (*entry)(void *);
  void *arg;
  void *stack; /* lowest usable address; NULL for a thread's own context */
  size_t stack_size;
  void *tsan_fiber;
  void *asan_fake_stack;
  const void *asan_bottom; /* where ASan believes this context's stack is */
  size_t asan_size;
  unsigned valgrind_stack_id;
} cf__coro_t;

/* Describe the calling thread's own context (the loop's). */
void cf__coro_init_main(cf__coro_t *main);

/* Prepare c to run entry(arg) on [stack, stack + size) at its first switch.
 * entry must never return: it ends with cf__coro_exit. */
int cf__coro_init(cf__coro_t *c, void *stack, size_t size,
                  void (*entry)(void *), void *arg);

/* Save the current context into from and resume to. */
void cf__coro_switch(cf__coro_t *from, cf__coro_t *to);

/* Leave c for good, resuming to; c may then be freed or reused. */
void cf__coro_exit(cf__coro_t *c, cf__coro_t *to);

/* Release what cf__coro_init took (the sanitizer fiber). */
void cf__coro_fini(cf__coro_t *c);


#endif /* CF_CORO_H */
