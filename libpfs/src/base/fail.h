// fail.h: how errors travel inside libpfs.
//
// NOTE: inside libpfs/src an error is thrown as a Fail (carrying the public
// pfs::Error) and caught once, at the public boundary (guard()), where it
// becomes a Result. This keeps the many-step storage code readable; nothing
// ever throws across the public API.
#pragma once

#include <exception>
#include <new>
#include <string>
#include <utility>

#include <fmt/format.h>

#include <pfs/result.h>

namespace pfs::detail {

struct Fail {
  Error error;
};

[[noreturn]] inline void fail(ErrorCode code, std::string message) {
  throw Fail{Error{code, std::move(message)}};
}

template <class... Args>
[[noreturn]] void failf(ErrorCode code, fmt::format_string<Args...> f, Args&&... args) {
  fail(code, fmt::format(f, std::forward<Args>(args)...));
}

// Runs fn, turning a Fail (or any stray exception) into an Error.
template <class Fn>
auto guard(Fn&& fn) -> Result<decltype(fn())> {
  try {
    if constexpr (std::is_void_v<decltype(fn())>) {
      fn();
      return {};
    } else {
      return fn();
    }
  } catch (Fail& f) {
    return std::move(f.error);
  } catch (const std::bad_alloc&) {
    return Error{ErrorCode::kInternal, "out of memory"};
  } catch (const std::exception& e) {
    return Error{ErrorCode::kInternal, std::string("internal error: ") + e.what()};
  }
}

// Unwraps a Result inside libpfs, throwing its error.
template <class T>
T unwrap(Result<T>&& r) {
  if (!r) throw Fail{std::move(r).error()};
  if constexpr (!std::is_void_v<T>) return std::move(r).value();
}

// Test hook: when the environment variable PFS_CRASH_AT equals `point`, the
// process dies on the spot (_exit(99)), as if the power failed there. Crash
// tests use it to check that every operation is all-or-nothing.
void crash_point(const char* point);

}  // namespace pfs::detail
