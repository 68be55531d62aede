#include <pfs/result.h>

#include <cerrno>
#include <cstring>

namespace pfs {

std::string_view code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kAlreadyExists:
      return "already_exists";
    case ErrorCode::kConflict:
      return "conflict";
    case ErrorCode::kBusy:
      return "busy";
    case ErrorCode::kPermissionDenied:
      return "permission_denied";
    case ErrorCode::kCorruption:
      return "corruption";
    case ErrorCode::kIo:
      return "io";
    case ErrorCode::kUnsupported:
      return "unsupported";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "internal";
}

// The one table of exit statuses; man/pachctl.1 (EXIT STATUS) mirrors it.
std::optional<ErrorCode> code_from_name(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(ErrorCode::kInternal); i++) {
    auto c = static_cast<ErrorCode>(i);
    if (code_name(c) == name) return c;
  }
  return std::nullopt;
}

ErrorCode code_of_errno(int err) {
  switch (err) {
    case ENOENT:
      return ErrorCode::kNotFound;
    case EEXIST:
    case ENOTEMPTY:
      return ErrorCode::kAlreadyExists;
    case EACCES:
    case EPERM:
    case EROFS:
      return ErrorCode::kPermissionDenied;
    case ENOTDIR:
    case EISDIR:
    case ENAMETOOLONG:
    case ELOOP:
    case EXDEV:
    case EINVAL:
      return ErrorCode::kInvalidArgument;
    default:
      return ErrorCode::kIo;
  }
}

std::string_view errno_advice(int err) {
  switch (err) {
    case ENOSPC:
      return "the file system is full: free some space, then retry";
    case EDQUOT:
      return "the disk quota is used up: free some space or raise the quota, then retry";
    case EROFS:
      return "the file system is mounted read-only: remount it read-write";
    case EACCES:
    case EPERM:
      return "this user may not do that here: check the owner and mode, or run as the store's owner";
    case EIO:
      return "the disk reported an error: check the kernel log (dmesg), then run pachctl fsck";
    case EMFILE:
    case ENFILE:
      return "too many open files: raise the limit (ulimit -n)";
    default:
      return {};
  }
}

std::string errno_message(std::string_view what, int err) {
  std::string out(what);
  out += ": ";
  out += std::strerror(err);
  if (std::string_view advice = errno_advice(err); !advice.empty()) {
    out += " (";
    out += advice;
    out += ')';
  }
  return out;
}

int exit_status(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return 2;
    case ErrorCode::kNotFound:
      return 3;
    case ErrorCode::kAlreadyExists:
      return 4;
    case ErrorCode::kConflict:
      return 5;
    case ErrorCode::kBusy:
      return 6;
    case ErrorCode::kPermissionDenied:
      return 7;
    case ErrorCode::kCorruption:
      return 8;
    case ErrorCode::kIo:
      return 9;
    case ErrorCode::kUnsupported:
      return 10;
    case ErrorCode::kInternal:
      return 70;
  }
  return 70;
}

}  // namespace pfs
