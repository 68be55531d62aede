// fsutil.h: thin, errno-checked wrappers over the POSIX calls libpfs uses.
// Everything works relative to directory file descriptors (openat & co.) so
// a rename or symlink elsewhere cannot redirect a write.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fail.h"

namespace pfs::detail {

// An owned file descriptor, closed on destruction.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// Throws Fail for errno `err` about `what` ("open meta/x.json"): ENOENT ->
// kNotFound, EEXIST -> kAlreadyExists, EACCES/EPERM/EROFS -> kPermissionDenied,
// otherwise kIo.
[[noreturn]] void fail_errno(int err, std::string_view what);
// The same for an operation on a descriptor: the message names the file or
// directory it is open on ("sync /data/store/btrfs/branches/dev: ...").
[[noreturn]] void fail_errno_at(int err, std::string_view what, int fd);
// The path a descriptor is open on (from /proc/self/fd), or "descriptor N".
std::string fd_path(int fd);

// Opens a directory (O_DIRECTORY|O_CLOEXEC) relative to dirfd.
UniqueFd open_dir(int dirfd, const std::string& path);
// Like open_dir, but returns an empty fd when it does not exist.
UniqueFd open_dir_if_exists(int dirfd, const std::string& path);

// Opens `path` beneath `dirfd` refusing symlinks, ".." and magic links in
// any component (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS). Returns an
// empty fd with errno set on failure.
UniqueFd open_beneath(int dirfd, const std::string& path, int flags, mode_t mode = 0);

// fstatat without following symlinks; nullopt when absent.
std::optional<struct stat> stat_at(int dirfd, const std::string& path);

// Creates the directories of `rel` below dirfd, like mkdir -p, refusing to
// pass through symlinks. Throws kInvalidArgument if a component is a file.
void mkdirs_beneath(int dirfd, const std::string& rel);

// Reads a whole small file (metadata). nullopt when absent.
std::optional<std::string> read_small_file(int dirfd, const std::string& name);

// Atomically replaces dirfd/name with `data`: writes a temporary file,
// fsyncs it, renames it over name and fsyncs the directory. Without
// `durable`, no fsyncs: readers see the old or the new file, but after a
// power failure it may be the old one (for what recovery can redo).
void write_file_atomic(int dirfd, const std::string& name, std::string_view data,
                       bool durable = true);

// write(2) until all of [p, p + n) is written, retrying on EINTR; throws
// with `what` in the message.
void write_all(int fd, const char* p, std::size_t n, std::string_view what);

// fsync of a directory (after a rename or unlink in it).
void fsync_dir(int dirfd);

// unlinkat that ignores ENOENT; returns whether something was removed.
bool unlink_if_exists(int dirfd, const std::string& name, int flags = 0);

// Removes `name` below dirfd and everything under it (no symlink is
// followed). Missing is fine.
void remove_tree(int dirfd, const std::string& name);

// Names in a directory, without "." and "..", sorted.
std::vector<std::string> list_dir_names(int dirfd);

// Copies all bytes from in_fd (from its offset) to out_fd, using reflink,
// copy_file_range or sendfile when possible. Returns bytes copied.
std::uint64_t copy_fd(int in_fd, int out_fd);

// 2*n random lower-case hex digits from the kernel's generator.
std::string random_hex(std::size_t n);

// Current time in nanoseconds since the epoch.
std::int64_t now_ns();
std::int64_t mtime_ns(const struct stat& st);

// Takes an flock on `fd` (shared or exclusive), retrying on EINTR; with
// `wait` false returns false instead of blocking.
bool flock_fd(int fd, bool exclusive, bool wait = true);

}  // namespace pfs::detail
