// btrfs_backend.cc: trees as btrfs subvolumes.
//
//   btrfs/branches/<name>   a branch's working tree: a writable subvolume
//   btrfs/commits/<id>      a commit's tree: a read-only snapshot
//   btrfs/tmp/<id>[.*]      trees being built (merge, revert), to be renamed
//
// Commit, branch and revert are snapshots: O(1) in the size of the data.
// Uploads are staged in <working tree>/.pfs-staging (the same subvolume, so
// publishing is a rename) and each staged item is flock'ed by its writer, so
// a staged item whose lock can be taken belongs to a dead process.
#include <btrfsutil.h>
#include <fcntl.h>
#include <linux/btrfs.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <thread>

#include "backend.h"
#include "names.h"

namespace pfs::detail {
namespace {

constexpr const char* kStaging = ".pfs-staging";

[[noreturn]] void fail_btrfs(enum btrfs_util_error err, std::string_view what) {
  int e = errno;
  if (e == EPERM || e == EACCES)
    failf(ErrorCode::kPermissionDenied,
          "{}: {} ({}); btrfs subvolume operations need root or "
          "a file system mounted with user_subvol_rm_allowed",
          what, btrfs_util_strerror(err), std::strerror(e));
  failf(ErrorCode::kIo, "{}: {} ({})", what, btrfs_util_strerror(err), std::strerror(e));
}


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

// Deletes a subvolume (or plain directory) dirfd/name; missing is fine.
void delete_subvolume(int dirfd, const std::string& name) {
  auto st = stat_at(dirfd, name);
  if (!st) return;
  if (!S_ISDIR(st->st_mode) || st->st_ino != 256) {  // 256: a subvolume's root inode
    remove_tree(dirfd, name);
    return;
  }
  auto err = btrfs_util_delete_subvolume_fd(dirfd, name.c_str(), 0);
  if (err == BTRFS_UTIL_OK) return;
  if (errno == ENOENT) return;
  if (errno == EPERM || errno == EACCES) {
    // Unprivileged: empty it, then rmdir (allowed for subvolumes since 4.18).
    UniqueFd fd = open_dir(dirfd, name);
    btrfs_util_set_subvolume_read_only_fd(fd.get(), false);
    for (const auto& child : list_dir_names(fd.get())) remove_tree(fd.get(), child);
    if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) == 0) return;
  }
  fail_btrfs(err, "delete subvolume " + name);
}

// Names a commit's subvolume by its id, as `btrfs receive` names what it
// receives (the received UUID): the kernel then writes the id into the
// streams it sends of the commit (its UUID) and of its children (their
// parent's), so streams name commits by id whichever backend wrote them,
// and `btrfs receive` finds the parent of an incremental stream by it.
// Must be set while the subvolume is writable. Best effort: without it the
// kernel writes the subvolume's own UUID.
void set_received_uuid(int subvol_fd, const std::string& id) {
  struct btrfs_ioctl_received_subvol_args args {};
  for (std::size_t i = 0; i < 16 && 2 * i + 1 < id.size(); i++)
    args.uuid[i] = static_cast<char>(std::stoi(id.substr(2 * i, 2), nullptr, 16));
  (void)::ioctl(subvol_fd, BTRFS_IOC_SET_RECEIVED_SUBVOL, &args);
}

class BtrfsTree final : public TreeReader {
 public:
  BtrfsTree(UniqueFd root, std::string what, bool working)
      : root_(std::move(root)), what_(std::move(what)), working_(working) {}

  std::optional<Entry> stat(const std::string& path) override {
    if (path.empty()) {
      struct stat st {};
      if (::fstat(root_.get(), &st) != 0) fail_errno(errno, "stat " + what_);
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
    if (::fstat(fd.get(), &st) != 0) fail_errno(errno, "stat " + path);
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) return std::nullopt;
    return entry_from_stat(path, st);
  }

  std::vector<Entry> list(const std::string& dir) override {
    UniqueFd fd = dir.empty() ? UniqueFd(::fcntl(root_.get(), F_DUPFD_CLOEXEC, 0))
                              : open_beneath(root_.get(), dir, O_RDONLY | O_DIRECTORY);
    if (!fd) {
      if (errno == ENOENT) failf(ErrorCode::kNotFound, "\"{}\" not found in {}", dir, what_);
      if (errno == ENOTDIR)
        failf(ErrorCode::kInvalidArgument, "\"{}\" in {} is a file, not a directory", dir, what_);
      fail_errno(errno, fmt::format("open \"{}\" in {}", dir, what_));
    }
    std::vector<Entry> out;
    for (const auto& name : list_dir_names(fd.get())) {
      if (working_ && dir.empty() && name.rfind(kReservedPrefix, 0) == 0) continue;
      auto st = stat_at(fd.get(), name);
      if (!st || !(S_ISDIR(st->st_mode) || S_ISREG(st->st_mode))) continue;
      out.push_back(entry_from_stat(path_join(dir, name), *st));
    }
    return out;
  }

  std::unique_ptr<FileReader> open_file(const std::string& path) override {
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
    if (::fstat(fd.get(), &st) != 0) fail_errno(errno, "stat " + path);
    if (S_ISDIR(st.st_mode))
      failf(ErrorCode::kInvalidArgument, "\"{}\" in {} is a directory (list it with list-file)",
            path, what_);
    if (!S_ISREG(st.st_mode))
      failf(ErrorCode::kInvalidArgument, "\"{}\" in {} is not a regular file", path, what_);
    auto r = file_reader(std::move(fd), static_cast<std::uint64_t>(st.st_size));
    r->mtime_ns = pfs::detail::mtime_ns(st);
    return r;
  }

  int root() const { return root_.get(); }

 private:
  UniqueFd root_;
  std::string what_;
  bool working_;
};

void copy_source(Source& src, int out_fd) {
  if (src.fd() >= 0) {
    copy_fd(src.fd(), out_fd);
    return;
  }
  std::vector<char> buf(1 << 20);
  for (;;) {
    std::size_t n = unwrap(src.read(buf));
    if (n == 0) break;
    const char* p = buf.data();
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
}

class BtrfsStaging final : public Staging {
 public:
  BtrfsStaging(UniqueFd staging_dir, dev_t dev, std::string name, Backend::StageKind kind)
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
  ~BtrfsStaging() override {
    if (!published_) {
      try {
        remove_tree(dir_.get(), name_);
      } catch (...) {  // best effort; sweep_staging catches the rest
      }
    }
  }

  std::uint64_t add(const std::string& rel, Source& src) override {
    std::uint64_t size = 0;
    if (kind_ != Backend::StageKind::kDir) {
      copy_source(src, item_.get());
      struct stat st {};
      if (::fstat(item_.get(), &st) != 0) fail_errno_at(errno, "stat staged file", item_.get());
      size = static_cast<std::uint64_t>(st.st_size);
    } else {
      mkdirs_beneath(item_.get(), path_parent(rel));
      UniqueFd out = open_beneath(item_.get(), rel, O_WRONLY | O_CREAT | O_EXCL, 0644);
      if (!out) fail_errno(errno, "create staged " + rel);
      copy_source(src, out.get());
      struct stat st {};
      if (::fstat(out.get(), &st) != 0) fail_errno_at(errno, "stat staged file", out.get());
      size = static_cast<std::uint64_t>(st.st_size);
      files_++;
      bytes_ += size;
    }
    return size;
  }

  void sync() override {
    if (kind_ != Backend::StageKind::kDir) {
      if (::fsync(item_.get()) != 0) fail_errno_at(errno, "fsync staged file", item_.get());
    } else if (::syncfs(item_.get()) != 0) {
      fail_errno_at(errno, "sync staged files in", item_.get());
    }
  }

  UniqueFd dir_;
  dev_t dev_;
  std::string name_;
  Backend::StageKind kind_;
  UniqueFd item_;
  bool published_ = false;
  std::uint64_t files_ = 0, bytes_ = 0;
};

// Receive's scratch files live in the work tree's own subvolume (so placing
// one is a hard link, not a copy), in a root directory pfs reserves.
constexpr const char* kScratch = ".pfs-receive";

class BtrfsWorkTree final : public WorkTree {
 public:
  BtrfsWorkTree(UniqueFd root, std::string name, std::string what)
      : name_(std::move(name)), tree_(std::move(root), std::move(what), true) {}
  TreeReader& reader() override { return tree_; }

  using WorkTree::copy_file_from;
  void copy_file_from(TreeReader& from, const std::string& from_path,
                      const std::string& path) override {
    auto in = from.open_file(from_path);
    UniqueFd parent = clear_place(path);
    std::string base = path_base(path);
    UniqueFd out(
        ::openat(parent.get(), base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!out) fail_errno(errno, "create " + path);
    if (in->fd() >= 0) {
      copy_fd(in->fd(), out.get());  // a reflink: O(1)
      return;
    }
    std::vector<char> buf(1 << 20);
    for (std::uint64_t off = 0;;) {
      std::size_t n = in->pread(buf, off);
      if (n == 0) break;
      write_all(out.get(), buf.data(), n, "write " + path);
      off += n;
    }
  }

  void make_dir(const std::string& path) override {
    auto st = stat_at(tree_.root(), path);
    if (st && S_ISDIR(st->st_mode)) return;
    UniqueFd parent = clear_place(path);
    if (::mkdirat(parent.get(), path_base(path).c_str(), 0755) != 0 && errno != EEXIST)
      fail_errno(errno, "make directory " + path);
  }

  void remove(const std::string& path) override {
    UniqueFd parent = open_beneath_dir(path_parent(path));
    if (parent) remove_tree(parent.get(), path_base(path));
  }

  UniqueFd open_scratch(std::uint64_t n, bool create) override {
    if (!scratch_) {
      if (::mkdirat(tree_.root(), kScratch, 0700) != 0 && errno != EEXIST)
        fail_errno_at(errno, "make the scratch directory of the new tree in", tree_.root());
      scratch_ = open_dir(tree_.root(), kScratch);
    }
    std::string name = std::to_string(n);
    UniqueFd fd(::openat(scratch_.get(), name.c_str(),
                         O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT | O_EXCL : 0), 0644));
    if (!fd) fail_errno(errno, "open scratch file " + name);
    return fd;
  }

  void place_scratch(std::uint64_t n, const std::string& path) override {
    UniqueFd parent = clear_place(path);
    if (::linkat(scratch_.get(), std::to_string(n).c_str(), parent.get(), path_base(path).c_str(),
                 0) != 0)
      fail_errno(errno, "place " + path);
  }

  // Removes the scratch files (their data stays where they were placed).
  void drop_scratch() {
    if (!scratch_) return;
    scratch_.reset();
    remove_tree(tree_.root(), kScratch);
  }

  UniqueFd open_beneath_dir(const std::string& dir) {
    if (dir.empty()) return UniqueFd(::fcntl(tree_.root(), F_DUPFD_CLOEXEC, 0));
    return open_beneath(tree_.root(), dir, O_RDONLY | O_DIRECTORY);
  }

  // The parent directory of `path` (made if missing), with nothing at path.
  UniqueFd clear_place(const std::string& path) {
    mkdirs_beneath(tree_.root(), path_parent(path));
    UniqueFd parent = open_beneath_dir(path_parent(path));
    if (!parent) fail_errno(errno, "open the parent of " + path);
    std::string base = path_base(path);
    auto st = stat_at(parent.get(), base);
    if (st && S_ISDIR(st->st_mode))
      remove_tree(parent.get(), base);
    else if (st)
      unlink_if_exists(parent.get(), base);
    return parent;
  }

  std::string name_;
  BtrfsTree tree_;
  UniqueFd scratch_;
};

class BtrfsBackend final : public Backend {
 public:
  explicit BtrfsBackend(int store_fd) {
    UniqueFd top = open_dir(store_fd, "btrfs");
    branches_ = open_dir(top.get(), "branches");
    commits_ = open_dir(top.get(), "commits");
    tmp_ = open_dir(top.get(), "tmp");
  }

  std::string_view name() const override { return "btrfs"; }

  static std::unique_ptr<FileReader> open_file_fast(int dir, const std::string& tree, const std::string& path) {
    UniqueFd fd = open_beneath(dir, tree + "/" + path, O_RDONLY);
    if (!fd) return nullptr;
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return nullptr;
    auto r = file_reader(std::move(fd), static_cast<std::uint64_t>(st.st_size));
    r->mtime_ns = pfs::detail::mtime_ns(st);
    return r;
  }

  std::unique_ptr<TreeReader> open_commit(const std::string& id) override {
    UniqueFd fd = open_dir_if_exists(commits_.get(), id);
    if (!fd) failf(ErrorCode::kNotFound, "the tree of commit {} is missing (run pachctl fsck)", id);
    return std::make_unique<BtrfsTree>(std::move(fd), "commit " + id.substr(0, 12), false);
  }

  std::unique_ptr<TreeReader> open_branch(const std::string& branch) override {
    UniqueFd fd = open_dir_if_exists(branches_.get(), branch);
    if (!fd)
      failf(ErrorCode::kNotFound,
            "branch \"{}\" not found (list branches with: pachctl list-branch)", branch);
    return std::make_unique<BtrfsTree>(std::move(fd), fmt::format("branch \"{}\"", branch), true);
  }

  // One openat2 beneath commits/ (or branches/) instead of opening the
  // tree's root first; RESOLVE_BENEATH and no symlinks, as open_beneath
  // always does. Any failure takes the slow path, whose errors say more.
  std::unique_ptr<FileReader> open_commit_file(const std::string& id, const std::string& path) override {
    if (auto r = open_file_fast(commits_.get(), id, path)) return r;
    return open_commit(id)->open_file(path);
  }
  std::unique_ptr<FileReader> open_branch_file(const std::string& branch, const std::string& path) override {
    if (auto r = open_file_fast(branches_.get(), branch, path)) return r;
    return open_branch(branch)->open_file(path);
  }

  bool has_commit_tree(const std::string& id) override {
    return stat_at(commits_.get(), id).has_value();
  }
  bool has_branch_tree(const std::string& b) override {
    return stat_at(branches_.get(), b).has_value();
  }
  std::vector<std::string> list_commit_trees() override { return list_dir_names(commits_.get()); }
  std::vector<std::string> list_branch_trees() override { return list_dir_names(branches_.get()); }

  void create_branch_tree(const std::string& branch, const std::string& from) override {
    delete_subvolume(branches_.get(), branch);  // a leftover of a crashed create
    enum btrfs_util_error err;
    if (from.empty()) {
      err = btrfs_util_create_subvolume_fd(branches_.get(), branch.c_str(), 0, nullptr, nullptr);
    } else {
      UniqueFd src = open_dir(commits_.get(), from);
      err = btrfs_util_create_snapshot_fd2(src.get(), branches_.get(), branch.c_str(), 0, nullptr,
                                           nullptr);
    }
    if (err) fail_btrfs(err, "create the working tree of branch " + branch);
  }

  void delete_branch_tree(const std::string& branch) override {
    delete_subvolume(branches_.get(), branch);
  }

  void reset_branch_tree(const std::string& branch, const std::string& id) override {
    std::string tmp = id + ".reset." + random_hex(4);
    UniqueFd src = open_dir(commits_.get(), id);
    auto err =
        btrfs_util_create_snapshot_fd2(src.get(), tmp_.get(), tmp.c_str(), 0, nullptr, nullptr);
    if (err) fail_btrfs(err, "snapshot commit " + id);
    crash_point("reset.before-exchange");
    // One atomic step: readers see the old tree or the new one, never none.
    if (::renameat2(tmp_.get(), tmp.c_str(), branches_.get(), branch.c_str(), RENAME_EXCHANGE) !=
        0) {
      if (errno != ENOENT) fail_errno(errno, "swap the working tree of branch " + branch);
      if (::renameat(tmp_.get(), tmp.c_str(), branches_.get(), branch.c_str()) != 0)
        fail_errno(errno, "install the working tree of branch " + branch);
    }
    crash_point("reset.after-exchange");
    delete_subvolume(tmp_.get(), tmp);
  }

  std::unique_ptr<Staging> stage(const std::string& branch, StageKind kind) override {
    UniqueFd root = open_dir_if_exists(branches_.get(), branch);
    if (!root)
      failf(ErrorCode::kNotFound,
            "branch \"{}\" not found (list branches with: pachctl list-branch)", branch);
    if (::mkdirat(root.get(), kStaging, 0755) != 0 && errno != EEXIST)
      fail_errno_at(errno, "create the staging area in", root.get());
    UniqueFd dir = open_dir(root.get(), kStaging);
    struct stat st {};
    if (::fstat(root.get(), &st) != 0) fail_errno_at(errno, "stat working tree", root.get());
    // Between creating the item and locking it, a sweep would take it for a
    // dead writer's: hold the staging directory shared until the item is
    // locked (sweep_staging takes it exclusively).
    flock_fd(dir.get(), false);
    auto staging = std::make_unique<BtrfsStaging>(std::move(dir), st.st_dev, random_hex(12), kind);
    ::flock(staging->dir_.get(), LOCK_UN);
    return staging;
  }

  StatsDelta publish(const std::string& branch, Staging& staging, const std::string& path,
                     const Placement& where) override {
    auto& s = static_cast<BtrfsStaging&>(staging);
    UniqueFd root = open_dir_if_exists(branches_.get(), branch);
    if (!root) failf(ErrorCode::kNotFound, "branch \"{}\" was deleted during the upload", branch);
    struct stat rst {};
    if (::fstat(root.get(), &rst) != 0) fail_errno_at(errno, "stat working tree", root.get());
    if (rst.st_dev != s.dev_)
      failf(ErrorCode::kConflict,
            "branch \"{}\" was reverted, merged into or recreated during the upload; upload again",
            branch);
    StatsDelta d = s.kind_ != StageKind::kDir ? publish_file(root.get(), s, path, where)
                                               : publish_dir(root.get(), s, path);
    s.published_ = true;
    return d;
  }

  TreeStats remove(const std::string& branch, const std::string& path) override {
    auto tree = open_branch(branch);
    auto e = tree->stat(path);
    if (!e) failf(ErrorCode::kNotFound, "\"{}\" not found in branch \"{}\"", path, branch);
    TreeStats removed;
    if (e->info.type == FileInfo::Type::kDirectory) {
      removed = count_tree(*tree, path);
    } else {
      removed = {1, e->info.size};
    }
    auto& bt = static_cast<BtrfsTree&>(*tree);
    UniqueFd parent = path_parent(path).empty()
                          ? UniqueFd(::fcntl(bt.root(), F_DUPFD_CLOEXEC, 0))
                          : open_beneath(bt.root(), path_parent(path), O_RDONLY | O_DIRECTORY);
    if (!parent) fail_errno(errno, "open parent of " + path);
    if (e->info.type == FileInfo::Type::kDirectory) {
      // Move it out of sight in one step, then delete at leisure.
      if (::mkdirat(bt.root(), kStaging, 0755) != 0 && errno != EEXIST)
        fail_errno_at(errno, "create the staging area in", bt.root());
      UniqueFd staging = open_dir(bt.root(), kStaging);
      std::string trash = "trash." + random_hex(8);
      if (::renameat(parent.get(), path_base(path).c_str(), staging.get(), trash.c_str()) != 0)
        fail_errno(errno, "remove " + path);
      fsync_dir(parent.get());
      remove_tree(staging.get(), trash);
    } else {
      unlink_if_exists(parent.get(), path_base(path));
      fsync_dir(parent.get());
    }
    return removed;
  }

  void sweep_staging(const std::string& branch) override {
    UniqueFd root = open_dir_if_exists(branches_.get(), branch);
    if (!root) return;
    UniqueFd dir = open_dir_if_exists(root.get(), kStaging);
    if (!dir) return;
    flock_fd(dir.get(), true);  // no item is between creation and lock (see stage())
    for (const auto& name : list_dir_names(dir.get())) {
      UniqueFd item(::openat(dir.get(), name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
      if (!item) continue;
      if (name.rfind("trash.", 0) == 0 || flock_fd(item.get(), true, false)) {
        item.reset();
        remove_tree(dir.get(), name);
      }
    }
  }

  void snapshot(const std::string& branch, const std::string& id) override {
    UniqueFd src = open_dir_if_exists(branches_.get(), branch);
    if (!src) failf(ErrorCode::kNotFound, "branch \"{}\" not found", branch);
    auto err =
        btrfs_util_create_snapshot_fd2(src.get(), commits_.get(), id.c_str(), 0, nullptr, nullptr);
    if (err) fail_btrfs(err, "snapshot branch " + branch);
    crash_point("snapshot.after-create");
    UniqueFd snap = open_dir(commits_.get(), id);
    // Uploads in flight were caught by the snapshot: drop their bytes.
    remove_tree(snap.get(), kStaging);
    set_received_uuid(snap.get(), id);
    err = btrfs_util_set_subvolume_read_only_fd(snap.get(), true);
    if (err) fail_btrfs(err, "make commit " + id + " read-only");
  }

  std::unique_ptr<WorkTree> work_tree(const std::string& base, const std::string& id) override {
    discard_work(id);
    enum btrfs_util_error err;
    if (base.empty()) {
      err = btrfs_util_create_subvolume_fd(tmp_.get(), id.c_str(), 0, nullptr, nullptr);
    } else {
      UniqueFd src = open_dir(commits_.get(), base);
      err = btrfs_util_create_snapshot_fd2(src.get(), tmp_.get(), id.c_str(), 0, nullptr, nullptr);
    }
    if (err) fail_btrfs(err, "create a work tree");
    return std::make_unique<BtrfsWorkTree>(open_dir(tmp_.get(), id), id, "the new tree");
  }

  void freeze(WorkTree& tree, const std::string& id) override {
    auto& t = static_cast<BtrfsWorkTree&>(tree);
    t.drop_scratch();
    if (::syncfs(t.tree_.root()) != 0) fail_errno_at(errno, "sync", t.tree_.root());
    // NOTE: rename first: moving a read-only subvolume to another directory
    // fails with EROFS (its ".." would change).
    if (::renameat(tmp_.get(), t.name_.c_str(), commits_.get(), id.c_str()) != 0)
      fail_errno(errno, "publish commit tree " + id);
    set_received_uuid(t.tree_.root(), id);
    auto err = btrfs_util_set_subvolume_read_only_fd(t.tree_.root(), true);
    if (err) fail_btrfs(err, "make commit " + id + " read-only");
  }

  void delete_commit_tree(const std::string& id) override { delete_subvolume(commits_.get(), id); }

  bool send_native(const std::string& id, const std::string& parent, Sink& out) override {
    UniqueFd snap = open_dir_if_exists(commits_.get(), id);
    if (!snap) failf(ErrorCode::kNotFound, "the tree of commit {} is missing (run pachctl fsck)", id);
    std::uint64_t parent_root = 0;
    if (!parent.empty()) {
      UniqueFd p = open_dir_if_exists(commits_.get(), parent);
      if (!p)
        failf(ErrorCode::kNotFound, "the tree of commit {} is missing (run pachctl fsck)", parent);
      if (auto err = btrfs_util_subvolume_id_fd(p.get(), &parent_root))
        fail_btrfs(err, "find the subvolume of commit " + parent);
    }
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) fail_errno(errno, "pipe");
    UniqueFd rd(fds[0]), wr(fds[1]);
    (void)::fcntl(wr.get(), F_SETPIPE_SZ, 1 << 20);
    // The kernel writes into the pipe; this thread hands its bytes to the
    // sink. When the sink fails, the thread keeps draining the pipe (so the
    // kernel finishes) but stops writing.
    std::atomic<std::uint64_t> forwarded{0};
    std::optional<Error> sink_error;
    std::thread pump([&] {
      std::vector<char> buf(1 << 20);
      for (;;) {
        ssize_t n = ::read(rd.get(), buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (sink_error) continue;
        auto r = out.write(std::span<const char>(buf.data(), static_cast<std::size_t>(n)));
        if (!r) sink_error = r.error();
        forwarded += static_cast<std::uint64_t>(n);
      }
    });
    struct btrfs_ioctl_send_args args {};
    args.send_fd = wr.get();
    args.parent_root = parent_root;
    args.clone_sources_count = parent.empty() ? 0 : 1;
    __u64 clone_source = parent_root;
    args.clone_sources = parent.empty() ? nullptr : &clone_source;
    args.flags = BTRFS_SEND_FLAG_VERSION;
    args.version = 1;
    int rc = ::ioctl(snap.get(), BTRFS_IOC_SEND, &args);
    int err = errno;
    wr.reset();
    pump.join();
    if (rc != 0) {
      if ((err == EPERM || err == EACCES || err == ENOTTY || err == EINVAL) && forwarded == 0)
        return false;  // not root, or an old kernel: the Store writes the stream
      fail_errno(err, "btrfs send of commit " + id);
    }
    if (sink_error) throw Fail{*sink_error};
    return true;
  }

  // Deleting a subvolume frees its space at once: nothing to collect.
  GcReport gc() override { return {}; }
  // The kernel checksums the data; the Store checks trees and figures.
  // Entries that are neither files nor directories have no place in a pfs
  // tree: pfs never writes them and never follows them, but one planted in
  // a subvolume by hand (a symbolic link, a device, a FIFO) is damage to
  // report. Repair removes them from branches' working trees; commits are
  // read-only.
  void check(FsckReport& r, bool repair) override {
    for (const auto& id : list_dir_names(commits_.get()))
      if (UniqueFd fd = open_dir_if_exists(commits_.get(), id))
        check_tree(fd.get(), "", fmt::format("commit {}", id.substr(0, 12)), false, false, r);
    for (const auto& b : list_dir_names(branches_.get()))
      if (UniqueFd fd = open_dir_if_exists(branches_.get(), b))
        check_tree(fd.get(), "", fmt::format("branch \"{}\"", b), true, repair, r);
  }

  static void check_tree(int dir, const std::string& rel, const std::string& what, bool working,
                         bool repair, FsckReport& r) {
    for (const auto& name : list_dir_names(dir)) {
      if (working && rel.empty() && name.rfind(kReservedPrefix, 0) == 0) continue;
      std::string path = path_join(rel, name);
      auto st = stat_at(dir, name);
      if (!st) continue;  // gone meanwhile
      if (S_ISDIR(st->st_mode)) {
        if (UniqueFd sub = open_beneath(dir, name, O_RDONLY | O_DIRECTORY))
          check_tree(sub.get(), path, what, working, repair, r);
        continue;
      }
      if (S_ISREG(st->st_mode)) continue;
      std::string kind = S_ISLNK(st->st_mode) ? "a symbolic link" : "a special file (device, FIFO or socket)";
      if (repair && working && ::unlinkat(dir, name.c_str(), 0) == 0) {
        r.repaired.push_back(fmt::format("{}: removed \"{}\", {}", what, path, kind));
        continue;
      }
      r.problems.push_back(fmt::format("{}: \"{}\" is {}; pfs trees hold only files and directories "
                                       "(pfs never follows it){}",
                                       what, path, kind,
                                       working ? "; fsck --repair removes it" : "; remove the commit or leave it"));
    }
  }

  void discard_work(const std::string& id) override {
    for (const auto& name : list_dir_names(tmp_.get()))
      if (name == id || name.rfind(id + ".", 0) == 0) delete_subvolume(tmp_.get(), name);
  }

 private:
  StatsDelta publish_file(int root, BtrfsStaging& s, const std::string& path,
                          const Placement& where) {
    mkdirs_beneath(root, path_parent(path));
    UniqueFd parent = path_parent(path).empty()
                          ? UniqueFd(::fcntl(root, F_DUPFD_CLOEXEC, 0))
                          : open_beneath(root, path_parent(path), O_RDONLY | O_DIRECTORY);
    if (!parent) fail_errno(errno, "open parent of " + path);
    std::string base = path_base(path);
    auto old = stat_at(parent.get(), base);
    if (old && S_ISDIR(old->st_mode))
      failf(ErrorCode::kInvalidArgument, "\"{}\" is a directory; a file cannot replace it", path);
    struct stat st {};
    if (::fstat(s.item_.get(), &st) != 0) fail_errno_at(errno, "stat staged file", s.item_.get());
    StatsDelta d;
    std::uint64_t old_size = old ? static_cast<std::uint64_t>(old->st_size) : 0;
    std::uint64_t new_size = static_cast<std::uint64_t>(st.st_size);
    std::string from = s.name_;
    bool append = where.mode == Placement::Mode::kAppend;
    bool at = where.mode == Placement::Mode::kAt;
    if (at && (!old || where.offset > old_size))
      failf(ErrorCode::kInvalidArgument, "cannot write \"{}\" at offset {}: it has {} bytes", path,
            where.offset, old_size);
    if ((append || at) && old) {
      // New inode = old content (reflinked, O(1)) + staged bytes at the end
      // or at the offset; renamed over the old one so readers never see a
      // half-written file.
      from = s.name_ + ".append";
      UniqueFd out(
          ::openat(s.dir_.get(), from.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
      if (!out) fail_errno_at(errno, "create staged file " + from + " in", s.dir_.get());
      try {
        UniqueFd in(::openat(parent.get(), base.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (!in) fail_errno(errno, "open " + path);
        copy_fd(in.get(), out.get());
        if (at && ::lseek(out.get(), static_cast<off_t>(where.offset), SEEK_SET) < 0)
          fail_errno_at(errno, "seek in", out.get());
        if (::lseek(s.item_.get(), 0, SEEK_SET) < 0) fail_errno_at(errno, "seek in", s.item_.get());
        copy_fd(s.item_.get(), out.get());
        if (::fsync(out.get()) != 0) fail_errno_at(errno, "fsync", out.get());
      } catch (...) {
        unlink_if_exists(s.dir_.get(), from);
        throw;
      }
      new_size = at ? std::max(old_size, where.offset + new_size) : old_size + new_size;
    }
    if (::renameat(s.dir_.get(), from.c_str(), parent.get(), base.c_str()) != 0)
      fail_errno(errno, "publish " + path);
    if (from != s.name_) unlink_if_exists(s.dir_.get(), s.name_);
    fsync_dir(parent.get());
    d.files = old ? 0 : 1;
    d.bytes = static_cast<std::int64_t>(new_size) - static_cast<std::int64_t>(old_size);
    return d;
  }

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
        fail_errno(errno, "publish " + name);
    }
  }

  StatsDelta publish_dir(int root, BtrfsStaging& s, const std::string& path) {
    StatsDelta d{static_cast<std::int64_t>(s.files_), static_cast<std::int64_t>(s.bytes_)};
    if (!path.empty()) {
      mkdirs_beneath(root, path_parent(path));
      UniqueFd parent = path_parent(path).empty()
                            ? UniqueFd(::fcntl(root, F_DUPFD_CLOEXEC, 0))
                            : open_beneath(root, path_parent(path), O_RDONLY | O_DIRECTORY);
      if (!parent) fail_errno(errno, "open parent of " + path);
      auto old = stat_at(parent.get(), path_base(path));
      if (!old) {  // nothing there: the whole staged directory moves in one rename
        if (::renameat(s.dir_.get(), s.name_.c_str(), parent.get(), path_base(path).c_str()) != 0)
          fail_errno(errno, "publish " + path);
        if (::syncfs(parent.get()) != 0) fail_errno_at(errno, "sync", parent.get());
        return d;
      }
      if (!S_ISDIR(old->st_mode))
        failf(ErrorCode::kInvalidArgument,
              "\"{}\" is a file in the branch; a directory cannot replace it", path);
    }
    UniqueFd dst = path.empty() ? UniqueFd(::fcntl(root, F_DUPFD_CLOEXEC, 0))
                                : open_beneath(root, path, O_RDONLY | O_DIRECTORY);
    if (!dst) fail_errno(errno, "open " + path);
    check_merge(s.item_.get(), dst.get(), path);
    merge_into(s.item_.get(), dst.get(), d);
    if (::syncfs(dst.get()) != 0) fail_errno_at(errno, "sync", dst.get());
    remove_tree(s.dir_.get(), s.name_);
    return d;
  }

  UniqueFd branches_, commits_, tmp_;
};

}  // namespace

bool btrfs_usable(int store_fd, std::string* why) {
  struct statfs sfs {};
  if (::fstatfs(store_fd, &sfs) != 0 || sfs.f_type != BTRFS_SUPER_MAGIC) {
    if (why) *why = "the directory is not on a btrfs file system";
    return false;
  }
  std::string probe = ".pfs-probe." + random_hex(4);
  auto err = btrfs_util_create_subvolume_fd(store_fd, probe.c_str(), 0, nullptr, nullptr);
  if (err) {
    if (why) *why = fmt::format("cannot create a btrfs subvolume there: {}", std::strerror(errno));
    return false;
  }
  try {
    delete_subvolume(store_fd, probe);
  } catch (const Fail& f) {
    if (why) *why = f.error.message;
    return false;
  }
  return true;
}

void init_btrfs_backend(int store_fd) {
  std::string why;
  if (!btrfs_usable(store_fd, &why))
    failf(ErrorCode::kUnsupported, "cannot use the btrfs backend: {}", why);
  if (::mkdirat(store_fd, "btrfs", 0755) != 0) fail_errno(errno, "create btrfs/");
  UniqueFd top = open_dir(store_fd, "btrfs");
  for (const char* d : {"branches", "commits", "tmp"})
    if (::mkdirat(top.get(), d, 0755) != 0) fail_errno(errno, std::string("create btrfs/") + d);
  fsync_dir(top.get());
}

std::unique_ptr<Backend> open_btrfs_backend(int store_fd) {
  return std::make_unique<BtrfsBackend>(store_fd);
}

}  // namespace pfs::detail
