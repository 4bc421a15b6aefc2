/*
 * Error codes and version: cf_strerror, cf_err_name and cf_version against
 * the one list in CF_ERRNO_MAP and the CF_VERSION_* macros.
 */

/* cmocka.h needs these first, in this order. */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cfutures.h"

typedef struct err_entry {
  const char *name; /* "CF_ETIMEDOUT" */
  int value;
  const char *message;
} err_entry_t;

/* Stringify with # directly: the names (EINVAL, EOF, ...) are also libc
 * macros and must not be expanded. */
#define ERR_ENTRY(name, value, msg) {"CF_" #name, (value), (msg)},
static const err_entry_t all_errors[] = {CF_ERRNO_MAP(ERR_ENTRY)};
#undef ERR_ENTRY

#define N_ERRORS (sizeof all_errors / sizeof all_errors[0])

static void test_strerror_every_code(void **state) {
  (void)state;
  assert_true(N_ERRORS >= 12);
  for (size_t i = 0; i < N_ERRORS; i++) {
    const char *s = cf_strerror(all_errors[i].value);
    assert_non_null(s);
    assert_string_equal(s, all_errors[i].message);
    /* A static string: the same pointer every time. */
    assert_ptr_equal(cf_strerror(all_errors[i].value), s);
  }
}

static void test_err_name_every_code(void **state) {
  (void)state;
  for (size_t i = 0; i < N_ERRORS; i++) {
    const char *s = cf_err_name(all_errors[i].value);
    assert_non_null(s);
    assert_string_equal(s, all_errors[i].name);
  }
}

static void test_zero_is_success(void **state) {
  (void)state;
  assert_non_null(cf_strerror(0));
  assert_string_equal(cf_strerror(0), "success");
  assert_non_null(cf_err_name(0));
  assert_string_equal(cf_err_name(0), "0");
}

static void test_unknown_values(void **state) {
  (void)state;
  const int unknown[] = {1, 2, 42, -99, -100, -1000, INT_MAX, INT_MIN};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    const char *s = cf_strerror(unknown[i]);
    const char *n = cf_err_name(unknown[i]);
    assert_non_null(s);
    assert_non_null(n);
    assert_string_equal(s, "unknown error");
    assert_string_equal(n, "CF_UNKNOWN");
  }
}

static void test_codes_distinct_and_negative(void **state) {
  (void)state;
  for (size_t i = 0; i < N_ERRORS; i++) {
    assert_true(all_errors[i].value < 0);
    for (size_t j = i + 1; j < N_ERRORS; j++) {
      assert_int_not_equal(all_errors[i].value, all_errors[j].value);
      assert_string_not_equal(all_errors[i].name, all_errors[j].name);
      assert_string_not_equal(all_errors[i].message, all_errors[j].message);
    }
  }
  /* The enum constants carry the values of the map. */
  assert_int_equal(CF_ECANCELLED, -1);
  assert_int_equal(CF_ETIMEDOUT, -2);
  assert_int_equal(CF_EINVALID_STATE, -3);
  assert_int_equal(CF_EBROKEN, -4);
  assert_int_equal(CF_ESHUTDOWN, -5);
  assert_int_equal(CF_EINVAL, -6);
  assert_int_equal(CF_ENOMEM, -7);
  assert_int_equal(CF_EDEADLK, -8);
  assert_int_equal(CF_EFAILED, -9);
  assert_int_equal(CF_EOF, -10);
  assert_int_equal(CF_EAGAIN, -11);
  assert_int_equal(CF_EFORKED, -12);
}

static void test_enum_names_match(void **state) {
  (void)state;
  /* Spot-check the enum against cf_err_name through the typed constants. */
  cf_errno_t e = CF_ETIMEDOUT;
  assert_string_equal(cf_err_name(e), "CF_ETIMEDOUT");
  assert_string_equal(cf_err_name(CF_EOF), "CF_EOF");
  assert_string_equal(cf_err_name(CF_EINVAL), "CF_EINVAL");
  assert_string_equal(cf_strerror(CF_ESHUTDOWN),
                      "cannot schedule new futures after shutdown");
}

static void test_version(void **state) {
  (void)state;
  char expect[64];
  snprintf(expect, sizeof expect, "%d.%d.%d", CF_VERSION_MAJOR,
           CF_VERSION_MINOR, CF_VERSION_PATCH);
  assert_non_null(cf_version());
  assert_string_equal(cf_version(), expect);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_strerror_every_code),
      cmocka_unit_test(test_err_name_every_code),
      cmocka_unit_test(test_zero_is_success),
      cmocka_unit_test(test_unknown_values),
      cmocka_unit_test(test_codes_distinct_and_negative),
      cmocka_unit_test(test_enum_names_match),
      cmocka_unit_test(test_version),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
