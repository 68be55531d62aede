// btrfs_tree.cc: trees over btrfs subvolumes: reading a commit's or a
// branch's tree (BtrfsTree), building one for merge, revert and receive
// (BtrfsWorkTree), and staging uploads in a working tree until they are
// published into it (BtrfsStaging).
//
// Uploads are staged in <working tree>/.pfs-staging (the same subvolume, so
// publishing is a rename) and each staged item is flock'ed by its writer, so
// a staged item whose lock can be taken belongs to a dead process.
#include <fcntl.h>
#include <linux/btrfs.h>
#include <sys/ioctl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <future>
#include <memory>
#include <optional>
#include <thread>

#include "btrfs.h"
#include "names.h"

namespace pfs::detail {
namespace {

Entry entry_from_stat(const std::string& path, const struct stat& st) {
  Entry e;
  e.info.path = path;
  e.info.mtime_ns = mtime_ns(st);
  if (S_ISDIR(st.st_mode)) {
    e.info.type = FileInfo::Type::kDirectory;
  } else {
    e.info.type = FileInfo::Type::kFile;
    e.info.size = static_cast<std::uint64_t>(st.st_size);
    e.links = static_cast<std::uint64_t>(st.st_nlink);
    // A snapshot keeps inode numbers and ctimes; pfs never rewrites a file in
    // place (it renames a new inode over it), so these match only for the
    // very same, unchanged file.
    e.identity =
        fmt::format("{}:{}.{}:{}", st.st_ino, st.st_ctim.tv_sec, st.st_ctim.tv_nsec, st.st_size);
  }
  return e;
}

// Copies `src` to the end of `out_fd`; returns the bytes copied.
std::uint64_t copy_source(Source& src, int out_fd) {
  if (src.fd() >= 0) return copy_fd(src.fd(), out_fd);
  std::uint64_t total = 0;
  constexpr std::size_t kBuf = 1 << 20;
  auto buf = std::make_unique_for_overwrite<char[]>(kBuf);  // (not zeroed: only what is read is used)
  for (;;) {
    std::size_t n = unwrap(src.read(std::span<char>(buf.get(), kBuf)));
    if (n == 0) break;
    total += n;
    const char* p = buf.get();
    while (n > 0) {
      ssize_t w = ::write(out_fd, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        fail_errno_at(errno, "write staged data to", out_fd);
      }
      p += w;
      n -= static_cast<std::size_t>(w);
    }
  }
  return total;
}

// Receive's scratch files live in the work tree's own subvolume (so placing
// one is a hard link, not a copy), in a root directory pfs reserves.
constexpr const char* kScratch = ".pfs-receive";

// Checks that merging staged dir `src` into `dst` (either may be absent)
// replaces no directory by a file or file by a directory.
void check_merge(int src, int dst, const std::string& rel) {
  for (const auto& name : list_dir_names(src)) {
    auto s = stat_at(src, name);
    auto d = stat_at(dst, name);
    if (!s || !d) continue;
    std::string p = path_join(rel, name);
    if (S_ISDIR(s->st_mode) != S_ISDIR(d->st_mode))
      failf(ErrorCode::kInvalidArgument,
            "\"{}\" is a {} in the branch but a {} in the upload; "
            "delete it first",
            p, S_ISDIR(d->st_mode) ? "directory" : "file",
            S_ISDIR(s->st_mode) ? "directory" : "file");
    if (S_ISDIR(s->st_mode)) {
      UniqueFd sd = open_dir(src, name), dd = open_dir(dst, name);
      check_merge(sd.get(), dd.get(), p);
    }
  }
}

void merge_into(int src, int dst, StatsDelta& d) {
  for (const auto& name : list_dir_names(src)) {
    auto s = stat_at(src, name);
    auto old = stat_at(dst, name);
    if (!s) continue;
    if (S_ISDIR(s->st_mode) && old) {
      UniqueFd sd = open_dir(src, name), dd = open_dir(dst, name);
      merge_into(sd.get(), dd.get(), d);
      continue;
    }
    if (old) {  // a file replacing a file
      d.bytes -= old->st_size;
      d.files -= 1;
    }
    if (::renameat(src, name.c_str(), dst, name.c_str()) != 0)
      fail_errno_at(errno, fmt::format("publish \"{}\" into", name), dst);
  }
}

}  // namespace

// ---- BtrfsTree ----

std::optional<Entry> BtrfsTree::stat(const std::string& path) {
  if (path.empty()) {
    struct stat st {};
    if (::fstat(root_.get(), &st) != 0) fail_errno(errno, "stat the root of " + what_);
    return entry_from_stat("", st);
  }
  UniqueFd fd = open_beneath(root_.get(), path, O_PATH);
  if (!fd) {
    if (errno == ENOENT || errno == ENOTDIR) return std::nullopt;
    if (errno == ELOOP || errno == EXDEV)
      failf(ErrorCode::kInvalidArgument, "\"{}\" in {} passes through a symbolic link", path,
            what_);
    fail_errno(errno, fmt::format("stat \"{}\" in {}", path, what_));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail_errno(errno, fmt::format("stat \"{}\" in {}", path, what_));
  if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) return std::nullopt;
  return entry_from_stat(path, st);
}

std::vector<Entry> BtrfsTree::list(const std::string& dir) {
  UniqueFd fd = dir.empty() ? UniqueFd(::fcntl(root_.get(), F_DUPFD_CLOEXEC, 0))
                            : open_beneath(root_.get(), dir, O_RDONLY | O_DIRECTORY);
  if (!fd) {
    if (errno == ENOENT) failf(ErrorCode::kNotFound, "\"{}\" not found in {}", dir, what_);
    if (errno == ENOTDIR)
      failf(ErrorCode::kInvalidArgument, "\"{}\" in {} is a file, not a directory", dir, what_);
    fail_errno(errno, fmt::format("open \"{}\" in {}", dir, what_));
  }
  std::vector<std::string> names = list_dir_names(fd.get());
  if (working_ && dir.empty())
    std::erase_if(names, [](const std::string& n) { return n.rfind(kReservedPrefix, 0) == 0; });
  // A stat per entry, on every core for a large directory: the inodes of
  // a new snapshot are not in memory yet, and reading them is the most of
  // a diff of two 100,000-file commits (a pipeline's incremental run).
  std::vector<std::optional<Entry>> found(names.size());
  auto stat_range = [&](std::size_t from, std::size_t to) {
    for (std::size_t i = from; i < to; i++) {
      auto st = stat_at(fd.get(), names[i]);
      if (st && (S_ISDIR(st->st_mode) || S_ISREG(st->st_mode))) found[i] = entry_from_stat(path_join(dir, names[i]), *st);
    }
  };
  constexpr std::size_t kParallelFrom = 8192;
  std::size_t threads = names.size() >= kParallelFrom ? std::clamp(std::thread::hardware_concurrency(), 1u, 4u) : 1;
  if (threads > 1) {
    std::vector<std::future<void>> parts;
    std::size_t per = (names.size() + threads - 1) / threads;
    for (std::size_t t = 1; t < threads; t++)
      parts.push_back(std::async(std::launch::async, stat_range, t * per, std::min(names.size(), (t + 1) * per)));
    stat_range(0, per);
    for (auto& f : parts) f.get();  // (rethrows a part's failure)
  } else {
    stat_range(0, names.size());
  }
  std::vector<Entry> out;
  out.reserve(names.size());
  for (auto& e : found)
    if (e) out.push_back(std::move(*e));
  return out;
}

std::unique_ptr<FileReader> BtrfsTree::open_file(const std::string& path) {
  UniqueFd fd = open_beneath(root_.get(), path, O_RDONLY);
  if (!fd) {
    if (errno == ENOENT || errno == ENOTDIR)
      failf(ErrorCode::kNotFound, "file \"{}\" not found in {}", path, what_);
    if (errno == ELOOP || errno == EXDEV)
      failf(ErrorCode::kInvalidArgument, "\"{}\" in {} passes through a symbolic link", path,
            what_);
    fail_errno(errno, fmt::format("open \"{}\" in {}", path, what_));
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail_errno(errno, fmt::format("stat \"{}\" in {}", path, what_));
  if (S_ISDIR(st.st_mode))
    failf(ErrorCode::kInvalidArgument, "\"{}\" in {} is a directory (list it with list-file)",
          path, what_);
  if (!S_ISREG(st.st_mode))
    failf(ErrorCode::kInvalidArgument, "\"{}\" in {} is not a regular file", path, what_);
  auto r = file_reader(std::move(fd), static_cast<std::uint64_t>(st.st_size));
  r->mtime_ns = pfs::detail::mtime_ns(st);
  return r;
}

// ---- BtrfsStaging ----

BtrfsStaging::BtrfsStaging(UniqueFd staging_dir, dev_t dev, std::string name,
                           Backend::StageKind kind)
    : dir_(std::move(staging_dir)), dev_(dev), name_(std::move(name)), kind_(kind) {
  if (kind_ != Backend::StageKind::kDir) {
    item_.reset(::openat(dir_.get(), name_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  } else {
    if (::mkdirat(dir_.get(), name_.c_str(), 0755) != 0)
      fail_errno_at(errno, "create staging directory " + name_ + " in", dir_.get());
    item_ = open_dir(dir_.get(), name_);
  }
  if (!item_) fail_errno_at(errno, "create staged file " + name_ + " in", dir_.get());
  flock_fd(item_.get(), true);  // held until we close: marks the item as alive
}

BtrfsStaging::~BtrfsStaging() {
  if (!published_) {
    try {
      remove_tree(dir_.get(), name_);
    } catch (...) {  // best effort; sweep_staging catches the rest
    }
  }
}

std::uint64_t BtrfsStaging::add(const std::string& rel, Source& src) {
  std::uint64_t size = 0;
  if (kind_ != Backend::StageKind::kDir) {
    copy_source(src, item_.get());
    struct stat st {};
    if (::fstat(item_.get(), &st) != 0) fail_errno_at(errno, "stat staged file", item_.get());
    size = static_cast<std::uint64_t>(st.st_size);
  } else {
    // NOTE: files come directory by directory (put-file -r walks so), and
    // nothing but this staging writes in its directory: a parent made for
    // the file before is there still. (With 100k files, making it again
    // was 6 system calls a file.)
    std::string parent = path_parent(rel);
    if (!made_parent_ || parent != *made_parent_) {
      mkdirs_beneath(item_.get(), parent);
      made_parent_ = parent;
    }
    UniqueFd out = open_beneath(item_.get(), rel, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (!out) fail_errno_at(errno, fmt::format("create staged file \"{}\" in", rel), item_.get());
    size = copy_source(src, out.get());  // into a new, empty file: its size
    files_++;
    bytes_ += size;
  }
  return size;
}

namespace {

// The id of the btrfs file system `fd` is on, or nullopt when it is not on one.
std::optional<std::array<unsigned char, BTRFS_FSID_SIZE>> btrfs_fsid(int fd) {
  btrfs_ioctl_fs_info_args info{};
  if (::ioctl(fd, BTRFS_IOC_FS_INFO, &info) != 0) return std::nullopt;
  std::array<unsigned char, BTRFS_FSID_SIZE> id{};
  std::memcpy(id.data(), info.fsid, id.size());
  return id;
}

}  // namespace

bool BtrfsStaging::clones_from(int dirfd) {
  auto mine = btrfs_fsid(item_.get());
  return mine && mine == btrfs_fsid(dirfd);  // FICLONE works across its subvolumes
}

void BtrfsStaging::sync() {
  if (kind_ != Backend::StageKind::kDir) {
    if (::fsync(item_.get()) != 0) fail_errno_at(errno, "fsync staged file", item_.get());
  } else if (::syncfs(item_.get()) != 0) {
    fail_errno_at(errno, "sync staged files in", item_.get());
  }
}

StatsDelta BtrfsStaging::publish_into(int root, const std::string& path,
                                      const Backend::Placement& where) {
  StatsDelta d = kind_ != Backend::StageKind::kDir ? publish_file(root, path, where)
                                                   : publish_dir(root, path);
  published_ = true;
  return d;
}

StatsDelta BtrfsStaging::publish_file(int root, const std::string& path,
                                      const Backend::Placement& where) {
  mkdirs_beneath(root, path_parent(path));
  UniqueFd parent = path_parent(path).empty()
                        ? UniqueFd(::fcntl(root, F_DUPFD_CLOEXEC, 0))
                        : open_beneath(root, path_parent(path), O_RDONLY | O_DIRECTORY);
  if (!parent) fail_errno_at(errno, fmt::format("open the parent of \"{}\" in", path), root);
  std::string base = path_base(path);
  auto old = stat_at(parent.get(), base);
  if (old && S_ISDIR(old->st_mode))
    failf(ErrorCode::kInvalidArgument, "\"{}\" is a directory; a file cannot replace it", path);
  struct stat st {};
  if (::fstat(item_.get(), &st) != 0) fail_errno_at(errno, "stat staged file", item_.get());
  StatsDelta d;
  std::uint64_t old_size = old ? static_cast<std::uint64_t>(old->st_size) : 0;
  std::uint64_t new_size = static_cast<std::uint64_t>(st.st_size);
  std::string from = name_;
  bool append = where.mode == Backend::Placement::Mode::kAppend;
  bool at = where.mode == Backend::Placement::Mode::kAt;
  if (at && (!old || where.offset > old_size))
    failf(ErrorCode::kInvalidArgument, "cannot write \"{}\" at offset {}: it has {} bytes", path,
          where.offset, old_size);
  if ((append || at) && old) {
    // New inode = old content (reflinked, O(1)) + staged bytes at the end
    // or at the offset; renamed over the old one so readers never see a
    // half-written file.
    from = name_ + ".append";
    UniqueFd out(
        ::openat(dir_.get(), from.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!out) fail_errno_at(errno, "create staged file " + from + " in", dir_.get());
    try {
      UniqueFd in(::openat(parent.get(), base.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
      if (!in) fail_errno_at(errno, fmt::format("open \"{}\" in", base), parent.get());
      copy_fd(in.get(), out.get());
      if (at && ::lseek(out.get(), static_cast<off_t>(where.offset), SEEK_SET) < 0)
        fail_errno_at(errno, "seek in", out.get());
      if (::lseek(item_.get(), 0, SEEK_SET) < 0) fail_errno_at(errno, "seek in", item_.get());
      copy_fd(item_.get(), out.get());
      if (::fsync(out.get()) != 0) fail_errno_at(errno, "fsync", out.get());
    } catch (...) {
      unlink_if_exists(dir_.get(), from);
      throw;
    }
    new_size = at ? std::max(old_size, where.offset + new_size) : old_size + new_size;
  }
  if (::renameat(dir_.get(), from.c_str(), parent.get(), base.c_str()) != 0)
    fail_errno_at(errno, fmt::format("publish \"{}\" into", base), parent.get());
  if (from != name_) unlink_if_exists(dir_.get(), name_);
  fsync_dir(parent.get());
  d.files = old ? 0 : 1;
  d.bytes = static_cast<std::int64_t>(new_size) - static_cast<std::int64_t>(old_size);
  return d;
}

StatsDelta BtrfsStaging::publish_dir(int root, const std::string& path) {
  StatsDelta d{static_cast<std::int64_t>(files_), static_cast<std::int64_t>(bytes_)};
  if (!path.empty()) {
    mkdirs_beneath(root, path_parent(path));
    UniqueFd parent = path_parent(path).empty()
                          ? UniqueFd(::fcntl(root, F_DUPFD_CLOEXEC, 0))
                          : open_beneath(root, path_parent(path), O_RDONLY | O_DIRECTORY);
    if (!parent) fail_errno_at(errno, fmt::format("open the parent of \"{}\" in", path), root);
    auto old = stat_at(parent.get(), path_base(path));
    if (!old) {  // nothing there: the whole staged directory moves in one rename
      if (::renameat(dir_.get(), name_.c_str(), parent.get(), path_base(path).c_str()) != 0)
        fail_errno_at(errno, fmt::format("publish \"{}\" into", path_base(path)), parent.get());
      if (::syncfs(parent.get()) != 0) fail_errno_at(errno, "sync", parent.get());
      return d;
    }
    if (!S_ISDIR(old->st_mode))
      failf(ErrorCode::kInvalidArgument,
            "\"{}\" is a file in the branch; a directory cannot replace it", path);
  }
  UniqueFd dst = path.empty() ? UniqueFd(::fcntl(root, F_DUPFD_CLOEXEC, 0))
                              : open_beneath(root, path, O_RDONLY | O_DIRECTORY);
  if (!dst) fail_errno_at(errno, fmt::format("open \"{}\" in", path), root);
  check_merge(item_.get(), dst.get(), path);
  merge_into(item_.get(), dst.get(), d);
  if (::syncfs(dst.get()) != 0) fail_errno_at(errno, "sync", dst.get());
  remove_tree(dir_.get(), name_);
  return d;
}

// ---- BtrfsWorkTree ----

void BtrfsWorkTree::copy_file_from(TreeReader& from, const std::string& from_path,
                                   const std::string& path) {
  auto in = from.open_file(from_path);
  UniqueFd parent = clear_place(path);
  std::string base = path_base(path);
  UniqueFd out(
      ::openat(parent.get(), base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!out) fail_errno_at(errno, fmt::format("create \"{}\" in", path), tree_.root());
  if (in->fd() >= 0) {
    copy_fd(in->fd(), out.get());  // a reflink: O(1)
    return;
  }
  const std::size_t cap = static_cast<std::size_t>(std::clamp<std::uint64_t>(in->size(), 1, 1 << 20));
  auto buf = std::make_unique_for_overwrite<char[]>(cap);
  for (std::uint64_t off = 0;;) {
    std::size_t n = in->pread(std::span<char>(buf.get(), cap), off);
    if (n == 0) break;
    write_all(out.get(), buf.get(), n, "write " + path);
    off += n;
  }
}

void BtrfsWorkTree::make_dir(const std::string& path) {
  auto st = stat_at(tree_.root(), path);
  if (st && S_ISDIR(st->st_mode)) return;
  UniqueFd parent = clear_place(path);
  if (::mkdirat(parent.get(), path_base(path).c_str(), 0755) != 0 && errno != EEXIST)
    fail_errno_at(errno, fmt::format("make directory \"{}\" in", path), tree_.root());
}

void BtrfsWorkTree::remove(const std::string& path) {
  UniqueFd parent = open_beneath_dir(path_parent(path));
  if (parent) remove_tree(parent.get(), path_base(path));
}

UniqueFd BtrfsWorkTree::open_scratch(std::uint64_t n, bool create) {
  if (!scratch_) {
    if (::mkdirat(tree_.root(), kScratch, 0700) != 0 && errno != EEXIST)
      fail_errno_at(errno, "make the scratch directory of the new tree in", tree_.root());
    scratch_ = open_dir(tree_.root(), kScratch);
  }
  std::string name = std::to_string(n);
  UniqueFd fd(::openat(scratch_.get(), name.c_str(),
                       O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT | O_EXCL : 0), 0644));
  if (!fd) fail_errno_at(errno, "open scratch file " + name + " in", scratch_.get());
  return fd;
}

void BtrfsWorkTree::place_scratch(std::uint64_t n, const std::string& path) {
  UniqueFd parent = clear_place(path);
  if (::linkat(scratch_.get(), std::to_string(n).c_str(), parent.get(), path_base(path).c_str(),
               0) != 0)
    fail_errno_at(errno, fmt::format("place \"{}\" in", path), tree_.root());
}

// Removes the scratch files (their data stays where they were placed).
void BtrfsWorkTree::drop_scratch() {
  if (!scratch_) return;
  scratch_.reset();
  remove_tree(tree_.root(), kScratch);
}

UniqueFd BtrfsWorkTree::open_beneath_dir(const std::string& dir) {
  if (dir.empty()) return UniqueFd(::fcntl(tree_.root(), F_DUPFD_CLOEXEC, 0));
  return open_beneath(tree_.root(), dir, O_RDONLY | O_DIRECTORY);
}

// The parent directory of `path` (made if missing), with nothing at path.
UniqueFd BtrfsWorkTree::clear_place(const std::string& path) {
  mkdirs_beneath(tree_.root(), path_parent(path));
  UniqueFd parent = open_beneath_dir(path_parent(path));
  if (!parent)
    fail_errno_at(errno, fmt::format("open the parent of \"{}\" in", path), tree_.root());
  std::string base = path_base(path);
  auto st = stat_at(parent.get(), base);
  if (st && S_ISDIR(st->st_mode))
    remove_tree(parent.get(), base);
  else if (st)
    unlink_if_exists(parent.get(), base);
  return parent;
}

}  // namespace pfs::detail
