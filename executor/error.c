/* Error codes, their messages and names; failure messages; the library
 * version. */
#include "internal.h"

#include <stdio.h> /* vasprintf */
#include <stdlib.h>

#define CF__STR(x) #x
#define CF__XSTR(x) CF__STR(x)

const char *cf_version(void) {
  return CF__XSTR(CF_VERSION_MAJOR) "." CF__XSTR(CF_VERSION_MINOR) "." CF__XSTR(
      CF_VERSION_PATCH);
}

const char *cf_strerror(int err) {
  switch (err) {
  case 0:
    return "success";
#define CF__ERR_MSG(name, value, msg)                                          \
  case CF_##name:                                                              \
    return msg;
    CF_ERRNO_MAP(CF__ERR_MSG)
#undef CF__ERR_MSG
  default:
    return "unknown error";
  }
}

const char *cf_err_name(int err) {
  switch (err) {
  case 0:
    return "0";
#define CF__ERR_NAME(name, value, msg)                                         \
  case CF_##name:                                                              \
    return "CF_" #name;
    CF_ERRNO_MAP(CF__ERR_NAME)
#undef CF__ERR_NAME
  default:
    return "CF_UNKNOWN";
  }
}

void cf__message_set(char **slot, const char *fmt, va_list ap) {
  char *message = NULL;
  if (fmt != NULL && cf__vasprintf(&message, fmt, ap) < 0)
    message = NULL; /* out of memory: fail without a message */
  free(*slot);
  *slot = message;
}
