// curl_lazy.h: libcurl as libpfs calls it (the remote client, jobs'
// requests into containers, S3): its header, and each function it uses as
// a wrapper of the same name that loads the library on first use
// (lazy_lib.h says why). Include this, never <curl/curl.h> alone.
#pragma once

// GCC's type-checking macros of curl_easy_setopt would call the C
// functions directly, past the wrappers.
#ifndef CURL_DISABLE_TYPECHECK
#define CURL_DISABLE_TYPECHECK 1
#endif
#include <curl/curl.h>

#include "lazy_lib.h"

// curl.h defines these two as macros of themselves; the wrappers take the names.
#undef curl_easy_setopt
#undef curl_easy_getinfo

namespace pfs::detail {

PFS_LAZY_FN(curl_lib, curl_easy_cleanup)
PFS_LAZY_FN(curl_lib, curl_easy_getinfo)
PFS_LAZY_FN(curl_lib, curl_easy_init)
PFS_LAZY_FN(curl_lib, curl_easy_perform)
PFS_LAZY_FN(curl_lib, curl_easy_reset)
PFS_LAZY_FN(curl_lib, curl_easy_setopt)
PFS_LAZY_FN(curl_lib, curl_easy_strerror)
PFS_LAZY_FN(curl_lib, curl_global_init)
PFS_LAZY_FN(curl_lib, curl_mime_addpart)
PFS_LAZY_FN(curl_lib, curl_mime_data_cb)
PFS_LAZY_FN(curl_lib, curl_mime_filename)
PFS_LAZY_FN(curl_lib, curl_mime_free)
PFS_LAZY_FN(curl_lib, curl_mime_init)
PFS_LAZY_FN(curl_lib, curl_mime_name)
PFS_LAZY_FN(curl_lib, curl_mime_type)
PFS_LAZY_FN(curl_lib, curl_slist_append)
PFS_LAZY_FN(curl_lib, curl_slist_free_all)

// A new easy handle (nullptr when libcurl cannot make one), after
// curl_global_init, which must run once per process before any handle.
inline CURL* new_curl_handle() {
  static const bool once = (curl_global_init(CURL_GLOBAL_DEFAULT), true);
  (void)once;
  return curl_easy_init();
}

}  // namespace pfs::detail
