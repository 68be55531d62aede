// lazy_lib.cc: shared libraries loaded on first use (lazy_lib.h).
#include "lazy_lib.h"

#include <dlfcn.h>

#include "fail.h"

namespace pfs::detail {

void* LazyLib::symbol(const char* name) {
  std::call_once(once_, [&] {
    handle_ = ::dlopen(soname_, RTLD_NOW | RTLD_LOCAL);
    if (!handle_) error_ = ::dlerror();
  });
  if (!handle_)
    failf(ErrorCode::kUnsupported, "{} needs {}, which cannot be loaded ({}); install it: apt-get install {}",
          needed_for_, soname_, error_, package_);
  ::dlerror();
  void* p = ::dlsym(handle_, name);
  if (!p)
    failf(ErrorCode::kUnsupported, "{} lacks {}: it is too old for pfs; install a newer {}", soname_, name,
          package_);
  return p;
}

LazyLib& curl_lib() {
  static LazyLib lib("libcurl.so.4",
                     "the HTTP client (pachctl --address, pfs::connect; jobs talk to containers with it)",
                     "libcurl4");
  return lib;
}

LazyLib& archive_lib() {
  static LazyLib lib("libarchive.so.13",
                     "reading and writing tar streams (put-file -r or get-file -r over HTTP, ?format=tar; "
                     "container images)",
                     "libarchive13");
  return lib;
}

}  // namespace pfs::detail
