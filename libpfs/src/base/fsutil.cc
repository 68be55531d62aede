// fsutil.cc: errno-checked POSIX wrappers (fsutil.h).
#include "fsutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "fault.h"

namespace pfs::detail {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

void fail_errno(int err, std::string_view what) { fail(code_of_errno(err), errno_message(what, err)); }

std::string fd_path(int fd) {
  char buf[4096];
  std::string link = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  if (n <= 0) return "descriptor " + std::to_string(fd);
  return std::string(buf, static_cast<std::size_t>(n));
}

void fail_errno_at(int err, std::string_view what, int fd) {
  fail_errno(err, std::string(what) + " " + fd_path(fd));
}

UniqueFd open_dir(int dirfd, const std::string& path) {
  int fd = ::openat(dirfd, path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) fail_errno(errno, "open directory " + path);
  return UniqueFd(fd);
}

UniqueFd open_dir_if_exists(int dirfd, const std::string& path) {
  int fd = ::openat(dirfd, path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return UniqueFd();
    fail_errno(errno, "open directory " + path);
  }
  return UniqueFd(fd);
}

UniqueFd open_beneath(int dirfd, const std::string& path, int flags, mode_t mode) {
  struct open_how how {};
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  for (;;) {
    long fd = ::syscall(SYS_openat2, dirfd, path.c_str(), &how, sizeof how);
    if (fd >= 0) return UniqueFd(static_cast<int>(fd));
    if (errno == EAGAIN || errno == EINTR) continue;  // openat2 may ask to retry
    return UniqueFd();
  }
}

std::optional<struct stat> stat_at(int dirfd, const std::string& path) {
  struct stat st {};
  if (::fstatat(dirfd, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return st;
  if (errno == ENOENT) return std::nullopt;
  fail_errno(errno, "stat " + path);
}

void mkdirs_beneath(int dirfd, const std::string& rel) {
  if (rel.empty()) return;
  UniqueFd cur(::fcntl(dirfd, F_DUPFD_CLOEXEC, 0));
  if (!cur) fail_errno(errno, "dup");
  std::size_t start = 0;
  while (start <= rel.size()) {
    std::size_t end = rel.find('/', start);
    if (end == std::string::npos) end = rel.size();
    std::string seg = rel.substr(start, end - start);
    if (::mkdirat(cur.get(), seg.c_str(), 0755) != 0 && errno != EEXIST)
      fail_errno(errno, "create directory " + rel.substr(0, end));
    int fd = ::openat(cur.get(), seg.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
      if (errno == ENOTDIR || errno == ELOOP)
        failf(ErrorCode::kInvalidArgument, "\"{}\" is a file, not a directory", rel.substr(0, end));
      fail_errno(errno, "open directory " + rel.substr(0, end));
    }
    cur.reset(fd);
    start = end + 1;
  }
}

std::optional<std::string> read_small_file(int dirfd, const std::string& name) {
  UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    fail_errno(errno, "open " + name);
  }
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno(errno, "read " + name);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    // A regular file reads short only at its end: no extra read for the 0
    // (this is on the path of every request a server answers).
    if (static_cast<std::size_t>(n) < sizeof buf) break;
  }
  return out;
}

void write_all(int fd, const char* p, std::size_t n, std::string_view what) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail_errno(errno, what);
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

void fsync_dir(int dirfd) {
  if (::fsync(dirfd) != 0) fail_errno_at(errno, "fsync directory", dirfd);
}

void write_file_atomic(int dirfd, const std::string& name, std::string_view data, bool durable) {
  // Errors (and fault points, fault.h) name the file by its full path, not
  // by its temporary name: the message then says which branch, commit or
  // marker could not be written.
  auto path = [&] { return fd_path(dirfd) + "/" + name; };
  auto fault = [&](std::string_view op) {
    if (faults_enabled()) fault_point(op, path());
  };
  std::string tmp = ".tmp." + name + "." + random_hex(4);
  UniqueFd fd(::openat(dirfd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd) fail_errno(errno, "create a temporary file for " + path());
  try {
    fault("write");
    for (std::size_t done = 0; done < data.size();) {  // write_all, naming the path only on error
      ssize_t w = ::write(fd.get(), data.data() + done, data.size() - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) fail_errno(errno, "write " + path());
      done += static_cast<std::size_t>(w);
    }
    if (durable) fault("fsync");
    if (durable && ::fsync(fd.get()) != 0) fail_errno(errno, "fsync " + path());
    fd.reset();
    fault("rename into place");
    if (::renameat(dirfd, tmp.c_str(), dirfd, name.c_str()) != 0)
      fail_errno(errno, "rename into place " + path());
  } catch (...) {
    ::unlinkat(dirfd, tmp.c_str(), 0);
    throw;
  }
  if (durable) fsync_dir(dirfd);
}

bool unlink_if_exists(int dirfd, const std::string& name, int flags) {
  if (::unlinkat(dirfd, name.c_str(), flags) == 0) return true;
  if (errno == ENOENT) return false;
  fail_errno(errno, "remove " + name);
}

std::vector<std::string> list_dir_names(int dirfd) {
  int fd = ::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail_errno(errno, "open directory");
  DIR* d = ::fdopendir(fd);
  if (!d) {
    int e = errno;
    ::close(fd);
    fail_errno(e, "open directory");
  }
  std::vector<std::string> names;
  errno = 0;
  while (struct dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    names.emplace_back(e->d_name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

void remove_tree(int dirfd, const std::string& name) {
  auto st = stat_at(dirfd, name);
  if (!st) return;
  if (S_ISDIR(st->st_mode)) {
    UniqueFd sub = open_dir(dirfd, name);
    for (const auto& child : list_dir_names(sub.get())) remove_tree(sub.get(), child);
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
      fail_errno(errno, "remove directory " + name);
  } else {
    unlink_if_exists(dirfd, name);
  }
}

std::uint64_t copy_fd(int in_fd, int out_fd) {
  std::uint64_t total = 0;
  struct stat in_st {
  }, out_st{};
  bool regular_in = ::fstat(in_fd, &in_st) == 0 && S_ISREG(in_st.st_mode);
  bool regular_out = ::fstat(out_fd, &out_st) == 0 && S_ISREG(out_st.st_mode);
  off_t in_off = ::lseek(in_fd, 0, SEEK_CUR);
  // Whole-file reflink: O(1) on btrfs when both are on the same file system.
  if (regular_in && regular_out && in_off == 0 && ::lseek(out_fd, 0, SEEK_CUR) == 0 &&
      out_st.st_size == 0 && ::ioctl(out_fd, FICLONE, in_fd) == 0) {
    ::lseek(in_fd, 0, SEEK_END);
    ::lseek(out_fd, 0, SEEK_END);
    return static_cast<std::uint64_t>(in_st.st_size);
  }
  // A sequential read: let the kernel read ahead further than its default.
  if (regular_in) ::posix_fadvise(in_fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  bool try_cfr = regular_in && regular_out;
  bool try_sendfile = regular_in;
  for (;;) {
    ssize_t n = -1;
    if (try_cfr) {
      n = ::copy_file_range(in_fd, nullptr, out_fd, nullptr, 1 << 30, 0);
      if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == EOPNOTSUPP || errno == ENOSYS)) {
        try_cfr = false;
        continue;
      }
    } else if (try_sendfile) {
      n = ::sendfile(out_fd, in_fd, nullptr, 1 << 30);
      if (n < 0 && (errno == EINVAL || errno == ENOSYS)) {
        try_sendfile = false;
        continue;
      }
    } else {
      static thread_local std::vector<char> buf(1 << 20);
      n = ::read(in_fd, buf.data(), buf.size());
      if (n > 0) write_all(out_fd, buf.data(), static_cast<std::size_t>(n), "write");
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno_at(errno, "copy data from", in_fd);
    }
    if (n == 0) break;
    total += static_cast<std::uint64_t>(n);
  }
  return total;
}

std::string random_hex(std::size_t n) {
  std::string bytes(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = ::getrandom(bytes.data() + got, n - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      fail_errno(errno, "getrandom");
    }
    got += static_cast<std::size_t>(r);
  }
  static const char* hex = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (unsigned char c : bytes) {
    out.push_back(hex[c >> 4]);
    out.push_back(hex[c & 15]);
  }
  return out;
}

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::int64_t mtime_ns(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

bool flock_fd(int fd, bool exclusive, bool wait) {
  int op = (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB);
  for (;;) {
    if (::flock(fd, op) == 0) return true;
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK && !wait) return false;
    fail_errno_at(errno, exclusive ? "lock (exclusive)" : "lock (shared)", fd);
  }
}

void crash_point(const char* point) {
  static const char* target = std::getenv("PFS_CRASH_AT");
  if (target && std::strcmp(target, point) == 0) ::_exit(99);
}

}  // namespace pfs::detail
