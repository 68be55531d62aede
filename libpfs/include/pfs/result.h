// pfs/result.h: error codes and Result<T>, the return type of every fallible
// libpfs call. No libpfs function throws across the public API.
#pragma once

#include <pfs/export.h>

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace pfs {

// The small, closed set of failure kinds. Scripts see them as exit statuses
// (exit_status()) and HTTP clients as statuses (added with the server).
enum class ErrorCode {
  kInvalidArgument,   // bad path, name, option or input; nothing was changed
  kNotFound,          // no such store, branch, commit or file
  kAlreadyExists,     // a branch or store of that name exists
  kConflict,          // state moved or disagrees: merge conflict, dirty branch, ...
  kBusy,              // a lock could not be taken in time
  kPermissionDenied,  // the OS refused (not root, read-only file system, ...)
  kCorruption,        // the store's on-disk data is inconsistent
  kIo,                // an operating-system I/O error
  kUnsupported,       // the backend or file system cannot do this
  kInternal,          // a bug in pfs
};

// Stable lower-case name of a code ("not_found"), used in JSON output.
PFS_EXPORT std::string_view code_name(ErrorCode code);
// The code of a name code_name() returns, or nullopt.
PFS_EXPORT std::optional<ErrorCode> code_from_name(std::string_view name);

// The code of an operating-system error number (errno): the one table the
// library and pachctl share. ENOENT: kNotFound; EEXIST, ENOTEMPTY:
// kAlreadyExists; EACCES, EPERM, EROFS: kPermissionDenied; ENOTDIR, EISDIR,
// ENAMETOOLONG, ELOOP, EXDEV, EINVAL: kInvalidArgument; anything else
// (ENOSPC, EDQUOT, EIO, ...): kIo.
PFS_EXPORT ErrorCode code_of_errno(int err);
// What a user can do about an errno, to end a message with ("" if nothing
// useful): ENOSPC "the file system is full: free space, then retry", ...
PFS_EXPORT std::string_view errno_advice(int err);
// "WHAT: <strerror> (<advice>)": how libpfs and pachctl word an OS error.
PFS_EXPORT std::string errno_message(std::string_view what, int err);

// The exit status pachctl uses for a code. 0 is success; 1 is reserved for
// "fsck found problems"; usage errors are 2 like invalid arguments.
PFS_EXPORT int exit_status(ErrorCode code);

// A failure: what kind, and a message a user can act on ("branch \"dev\" not
// found (list branches with: pachctl list-branch)").
struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

// Result<T> is a value or an Error: a small subset of C++23 std::expected.
// Check it (if (!r) ...) before using value(); value() on an error asserts.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Error& error() const& {
    assert(!ok());
    return std::get<1>(v_);
  }
  Error&& error() && {
    assert(!ok());
    return std::get<1>(std::move(v_));
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), ok_(false) {}

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const& {
    assert(!ok_);
    return err_;
  }
  Error&& error() && {
    assert(!ok_);
    return std::move(err_);
  }

 private:
  Error err_;
  bool ok_ = true;
};

}  // namespace pfs
