// btrfs_backend.cc: the btrfs Backend: trees as btrfs subvolumes, made,
// snapshotted, swapped and deleted here. Reading, building and staging into
// one tree is in btrfs_tree.cc, native send in btrfs_send.cc, the check of
// the trees in btrfs_check.cc.
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

#include <cerrno>
#include <cstring>

#include "backend.h"
#include "btrfs.h"
#include "names.h"

namespace pfs::detail {

[[noreturn]] void fail_btrfs(enum btrfs_util_error err, std::string_view what) {
  int e = errno;
  if (e == EPERM || e == EACCES)
    failf(ErrorCode::kPermissionDenied,
          "{}: {} ({}); btrfs subvolume operations need root or "
          "a file system mounted with user_subvol_rm_allowed",
          what, btrfs_util_strerror(err), std::strerror(e));
  failf(ErrorCode::kIo, "{}: {} ({})", what, btrfs_util_strerror(err), std::strerror(e));
}

namespace {

constexpr const char* kStaging = ".pfs-staging";

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
  fail_btrfs(err, "delete subvolume " + fd_path(dirfd) + "/" + name);
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
    return s.publish_into(root.get(), path, where);
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
    return send_commit_native(commits_.get(), id, parent, out);
  }

  // Deleting a subvolume frees its space at once: nothing to collect.
  GcReport gc() override { return {}; }
  // What the trees may hold is checked in btrfs_check.cc.
  void check(FsckReport& r, bool repair) override {
    check_trees(commits_.get(), branches_.get(), r, repair);
  }

  void discard_work(const std::string& id) override {
    for (const auto& name : list_dir_names(tmp_.get()))
      if (name == id || name.rfind(id + ".", 0) == 0) delete_subvolume(tmp_.get(), name);
  }

 private:
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
