/*
 * Fault injection for tests (STYLE.md point 26).
 *
 * The library calls cf__malloc, cf__pthread_create, cf__eventfd ... where
 * it would call malloc, pthread_create, eventfd ... Normally these names
 * are macros for the libc calls: zero cost. Built with CF_FAULT_INJECTION
 * (the libcfutures-fault.la convenience library that tests/test_faults
 * links), they are functions that count every call and can make one chosen
 * call fail as the real one would when out of memory, threads or fds:
 *
 *   allocations   malloc calloc realloc strdup vasprintf mmap
 *                 (NULL, -1 or MAP_FAILED with errno ENOMEM)
 *   threads       pthread_create (returns EAGAIN)
 *   fds           eventfd pipe epoll_create1 (-1 with errno EMFILE)
 *
 * Each class has its own counter and trigger. cf__fault_fail_*_at(n) makes
 * the n-th call of that class from now fail, once (0: never);
 * cf__fault_fail_*_from(n) makes the n-th and every later one fail, until
 * the next reset or trigger. Counters and triggers are atomic: worker
 * threads allocate too. Never installed.
 */
#ifndef CF_FAULT_H
#define CF_FAULT_H

#ifdef CF_FAULT_INJECTION

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

void *cf__malloc(size_t size);
void *cf__calloc(size_t n, size_t size);
void *cf__realloc(void *ptr, size_t size);
char *cf__strdup(const char *s);
int cf__vasprintf(char **strp, const char *fmt, va_list ap);
int cf__pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                       void *(*start)(void *), void *arg);
int cf__eventfd(unsigned int initval, int flags);
int cf__pipe(int fds[2]);
int cf__epoll_create1(int flags);
void *cf__mmap(void *addr, size_t length, int prot, int flags, int fd,
               off_t offset);

/* Zero every counter and disarm every trigger. */
void cf__fault_reset(void);

/* Arm a one-shot trigger: the n-th call of the class from now fails
 * (n <= 0 disarms). */
void cf__fault_fail_alloc_at(long n);
void cf__fault_fail_thread_at(long n);
void cf__fault_fail_fd_at(long n);

/* Arm a sticky trigger: the n-th call from now and all later ones fail. */
void cf__fault_fail_alloc_from(long n);
void cf__fault_fail_thread_from(long n);
void cf__fault_fail_fd_from(long n);

/* Calls made (failed ones included) since the last reset. */
long cf__fault_alloc_count(void);
long cf__fault_thread_count(void);
long cf__fault_fd_count(void);

/* Failures injected since the last reset, all classes together. */
long cf__fault_injected(void);

/* Runs at each injected failure: `break cf__fault_hit` in a debugger. */
void cf__fault_hit(void);

/* Schedule injection: when set (before the pool starts its threads), a
 * pool worker calls it after a pop that found the queue empty, before it
 * looks whether the queue is closed: a test can land a submit and a
 * shutdown in that window. */
extern void (*cf__fault_idle_hook)(void);

/* cf_bridge_prepare's spin, made observable and its time test-driven:
 * when set, cf__fault_spin_hook gets the budget (ns, 0: no spin) each time
 * prepare is about to spin (deliveries in flight or a signal being sent),
 * and cf__fault_clock_hook replaces the monotonic clock of that spin and of
 * its adaptation (it must advance, or the spin never ends). Loop thread. */
extern void (*cf__fault_spin_hook)(int64_t budget_ns);
extern int64_t (*cf__fault_clock_hook)(void);

#else /* !CF_FAULT_INJECTION: the libc calls themselves */

#define cf__malloc malloc
#define cf__calloc calloc
#define cf__realloc realloc
#define cf__strdup strdup
#define cf__vasprintf vasprintf
#define cf__pthread_create pthread_create
#define cf__eventfd eventfd
#define cf__pipe pipe
#define cf__epoll_create1 epoll_create1
#define cf__mmap mmap

#endif /* CF_FAULT_INJECTION */

#endif /* CF_FAULT_H */
