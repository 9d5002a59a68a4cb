/* Error codes: messages and names, generated from SR_ERRNO_MAP so the
 * constants, sr_strerror and sr_err_name can never disagree. */
#include "swapread/common.h"

const char* sr_strerror(int err) {
  switch (err) {
#define SR__XX(name, value, msg) \
  case SR_##name:                \
    return msg;
    SR_ERRNO_MAP(SR__XX)
#undef SR__XX
    case 0:
      return "success";
    case SR_PENDING:
      return "pending";
    default:
      return "unknown error";
  }
}

const char* sr_err_name(int err) {
  switch (err) {
#define SR__XX(name, value, msg) \
  case SR_##name:                \
    return #name;
    SR_ERRNO_MAP(SR__XX)
#undef SR__XX
    case 0:
      return "OK";
    case SR_PENDING:
      return "PENDING";
    default:
      return "UNKNOWN";
  }
}

#define SR__STR2(x) #x
#define SR__STR(x) SR__STR2(x)

const char* sr_version_string(void) {
  return SR__STR(SR_VERSION_MAJOR) "." SR__STR(SR_VERSION_MINOR) "." SR__STR(
      SR_VERSION_PATCH);
}
