/* Coroutine context switching: see coro.h. */
#include "coro.h"

#include <stdint.h>
#include <string.h>

#include "sanitizer.h"

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h> /* tell memcheck where task stacks are */
#endif

#ifdef CF__ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom,
                                    size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save,
                                     const void **bottom_old, size_t *size_old);
#endif
#ifdef CF__TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

/* The context a new coroutine was switched from, for its first moments. */
static _Thread_local cf__coro_t *starting_from;

#ifdef CF__CORO_UCONTEXT

static _Thread_local cf__coro_t *starting;

static void raw_start(void);

static void raw_init(cf__coro_t *c) {
  getcontext(&c->uc);
  c->uc.uc_stack.ss_sp = c->stack;
  c->uc.uc_stack.ss_size = c->stack_size;
  c->uc.uc_link = NULL;
  makecontext(&c->uc, raw_start, 0);
}

static void raw_switch(cf__coro_t *from, cf__coro_t *to) {
  starting = to;
  swapcontext(&from->uc, &to->uc);
}

#else /* assembly */

void cf__coro_raw_switch(void **save_sp, void *load_sp);
void cf__coro_trampoline(void);
static void raw_start_c(cf__coro_t *c);

#if defined(__x86_64__)
/* Saves rbp, rbx, r12-r15, the MXCSR and the x87 control word on the old
 * stack, stores the stack pointer, loads the new one, restores the same. */
__asm__(".text\n"
        ".globl cf__coro_raw_switch\n"
        ".hidden cf__coro_raw_switch\n"
        ".type cf__coro_raw_switch,@function\n"
        "cf__coro_raw_switch:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  subq $8, %rsp\n"
        "  stmxcsr (%rsp)\n"
        "  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n"
        "  movq %rsi, %rsp\n"
        "  ldmxcsr (%rsp)\n"
        "  fldcw 4(%rsp)\n"
        "  addq $8, %rsp\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size cf__coro_raw_switch,.-cf__coro_raw_switch\n"
        /* First entry: r12 holds the context, r13 the C entry point. */
        ".globl cf__coro_trampoline\n"
        ".hidden cf__coro_trampoline\n"
        ".type cf__coro_trampoline,@function\n"
        "cf__coro_trampoline:\n"
        "  movq %r12, %rdi\n"
        "  callq *%r13\n"
        "  ud2\n"
        ".size cf__coro_trampoline,.-cf__coro_trampoline\n");

static void raw_init(cf__coro_t *c) {
  uintptr_t top = ((uintptr_t)c->stack + c->stack_size) & ~(uintptr_t)15;
  uint64_t *sp = (uint64_t *)top;
  *--sp = (uint64_t)(uintptr_t)cf__coro_trampoline; /* return address */
  *--sp = 0;                                        /* rbp */
  *--sp = 0;                                        /* rbx */
  *--sp = (uint64_t)(uintptr_t)c;                   /* r12 */
  *--sp = (uint64_t)(uintptr_t)raw_start_c;         /* r13 */
  *--sp = 0;                                        /* r14 */
  *--sp = 0;                                        /* r15 */
  *--sp = 0x037F00001F80ull; /* x87 control word 0x37f, MXCSR 0x1f80 */
  c->sp = sp;
}
#elif defined(__aarch64__)
/* Saves x19-x30 and d8-d15 below the stack pointer. */
__asm__(".text\n"
        ".globl cf__coro_raw_switch\n"
        ".hidden cf__coro_raw_switch\n"
        ".type cf__coro_raw_switch,%function\n"
        "cf__coro_raw_switch:\n"
        "  sub sp, sp, #160\n"
        "  stp x19, x20, [sp, #0]\n"
        "  stp x21, x22, [sp, #16]\n"
        "  stp x23, x24, [sp, #32]\n"
        "  stp x25, x26, [sp, #48]\n"
        "  stp x27, x28, [sp, #64]\n"
        "  stp x29, x30, [sp, #80]\n"
        "  stp d8, d9, [sp, #96]\n"
        "  stp d10, d11, [sp, #112]\n"
        "  stp d12, d13, [sp, #128]\n"
        "  stp d14, d15, [sp, #144]\n"
        "  mov x9, sp\n"
        "  str x9, [x0]\n"
        "  mov sp, x1\n"
        "  ldp x19, x20, [sp, #0]\n"
        "  ldp x21, x22, [sp, #16]\n"
        "  ldp x23, x24, [sp, #32]\n"
        "  ldp x25, x26, [sp, #48]\n"
        "  ldp x27, x28, [sp, #64]\n"
        "  ldp x29, x30, [sp, #80]\n"
        "  ldp d8, d9, [sp, #96]\n"
        "  ldp d10, d11, [sp, #112]\n"
        "  ldp d12, d13, [sp, #128]\n"
        "  ldp d14, d15, [sp, #144]\n"
        "  add sp, sp, #160\n"
        "  ret\n"
        ".size cf__coro_raw_switch,.-cf__coro_raw_switch\n"
        /* First entry: x19 holds the context, x20 the C entry point. */
        ".globl cf__coro_trampoline\n"
        ".hidden cf__coro_trampoline\n"
        ".type cf__coro_trampoline,%function\n"
        "cf__coro_trampoline:\n"
        "  mov x0, x19\n"
        "  blr x20\n"
        "  brk #0\n"
        ".size cf__coro_trampoline,.-cf__coro_trampoline\n");

static void raw_init(cf__coro_t *c) {
  uintptr_t top = ((uintptr_t)c->stack + c->stack_size) & ~(uintptr_t)15;
  uint64_t *frame = (uint64_t *)(top - 160);
  memset(frame, 0, 160);
  frame[0] = (uint64_t)(uintptr_t)c;           /* x19 */
  frame[1] = (uint64_t)(uintptr_t)raw_start_c; /* x20 */
  frame[11] = (uint64_t)(uintptr_t)cf__coro_trampoline; /* x30 */
  c->sp = frame;
}
#endif

static void raw_switch(cf__coro_t *from, cf__coro_t *to) {
  cf__coro_raw_switch(&from->sp, to->sp);
}

#endif

/* The first code a coroutine runs, on its own stack. */
static void begin(cf__coro_t *c) {
#ifdef CF__ASAN
  __sanitizer_finish_switch_fiber(NULL, &starting_from->asan_bottom,
                                  &starting_from->asan_size);
#endif
  c->entry(c->arg); /* never returns */
}

#ifdef CF__CORO_UCONTEXT
static void raw_start(void) { begin(starting); }
#else
static void raw_start_c(cf__coro_t *c) { begin(c); }
#endif

void cf__coro_init_main(cf__coro_t *main) {
  memset(main, 0, sizeof(*main));
#ifdef CF__TSAN
  main->tsan_fiber = __tsan_get_current_fiber();
#endif
}

int cf__coro_init(cf__coro_t *c, void *stack, size_t size,
                  void (*entry)(void *), void *arg) {
  memset(c, 0, sizeof(*c));
  c->stack = stack;
  c->stack_size = size;
  c->entry = entry;
  c->arg = arg;
  c->asan_bottom = stack;
  c->asan_size = size;
#ifdef CF__TSAN
  c->tsan_fiber = __tsan_create_fiber(0);
  if (c->tsan_fiber == NULL)
    return -1;
#endif
#ifdef HAVE_VALGRIND_VALGRIND_H
  c->valgrind_stack_id =
      VALGRIND_STACK_REGISTER(stack, (char *)stack + size);
#endif
  raw_init(c);
  return 0;
}

static void do_switch(cf__coro_t *from, cf__coro_t *to, bool exiting) {
  starting_from = from;
#ifdef CF__ASAN
  __sanitizer_start_switch_fiber(exiting ? NULL : &from->asan_fake_stack,
                                 to->asan_bottom, to->asan_size);
#else
  (void)exiting;
#endif
#ifdef CF__TSAN
  __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
  raw_switch(from, to);
#ifdef CF__ASAN
  __sanitizer_finish_switch_fiber(from->asan_fake_stack, NULL, NULL);
#endif
}

void cf__coro_switch(cf__coro_t *from, cf__coro_t *to) {
  do_switch(from, to, false);
}

void cf__coro_exit(cf__coro_t *c, cf__coro_t *to) { do_switch(c, to, true); }

void cf__coro_fini(cf__coro_t *c) {
#ifdef HAVE_VALGRIND_VALGRIND_H
  if (c->stack != NULL)
    VALGRIND_STACK_DEREGISTER(c->valgrind_stack_id);
#endif
#ifdef CF__TSAN
  if (c->stack != NULL && c->tsan_fiber != NULL)
    __tsan_destroy_fiber(c->tsan_fiber);
#endif
  c->tsan_fiber = NULL;
}
