// lazy_lib.h: a shared library loaded on first use (dlopen), and wrappers
// that call its functions by the names they have in its headers.
//
// Why: libcurl and libarchive bring 40 shared libraries with them (TLS,
// Kerberos, LDAP, ICU, ...). Linked normally, every pachctl process maps
// them all at start, which costs 50-100 ms on a cold page cache, more than
// a whole local push (bench/replicate.sh). Only the remote client and tar
// streams need them, so they are loaded when those run first.
//
// Use, in the .cc that calls the library (inside namespace pfs::detail, so
// that an unqualified call finds the wrapper before the C function):
//   PFS_LAZY_FN(curl_lib, curl_easy_init)      // then curl_easy_init() as usual
// The C functions are named only in decltype, so nothing links against the
// library; a call that escaped a wrapper fails the link (-Wl,--no-undefined).
#pragma once

#include <mutex>
#include <string>
#include <utility>

namespace pfs::detail {

class LazyLib {
 public:
  // `soname` as dlopen takes it ("libcurl.so.4"); `needed_for` and
  // `package` say, if it cannot be loaded, what needs it and what to install.
  LazyLib(const char* soname, const char* needed_for, const char* package)
      : soname_(soname), needed_for_(needed_for), package_(package) {}
  // The address of `name`, loading the library first if need be; throws a
  // Fail (kUnsupported, saying what to install) when it cannot be loaded.
  void* symbol(const char* name);

 private:
  const char* soname_;
  const char* needed_for_;
  const char* package_;
  std::once_flag once_;
  void* handle_ = nullptr;
  std::string error_;
};

// The two libraries loaded this way: libcurl (the remote client, jobs'
// requests to containers, S3) and libarchive (tar streams, images).
LazyLib& curl_lib();
LazyLib& archive_lib();

}  // namespace pfs::detail

// A function `fn` of the library `lib()` (a LazyLib&), called as `fn(...)`.
// The address is looked up once, on the first call. NOTE: an object, not a
// function template: the C function would win overload resolution through
// argument-dependent lookup (its arguments are the library's own types),
// and finding an object by ordinary lookup turns that lookup off.
#define PFS_LAZY_FN(lib, fn)                                                      \
  constexpr struct {                                                              \
    template <class... A>                                                         \
    auto operator()(A&&... a) const {                                             \
      static auto* f = reinterpret_cast<decltype(&::fn)>(lib().symbol(#fn));        \
      return f(std::forward<A>(a)...);                                            \
    }                                                                             \
  } fn{};
