/*
 * Which sanitizer the library is built with, for the code that tells it
 * about memory and stacks it cannot see on its own: CF__ASAN for
 * AddressSanitizer, CF__TSAN for ThreadSanitizer (GCC and clang spellings).
 */
#ifndef CF_SANITIZER_H
#define CF_SANITIZER_H

#if defined(__SANITIZE_ADDRESS__)
#define CF__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CF__ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define CF__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CF__TSAN 1
#endif
#endif

#endif /* CF_SANITIZER_H */
