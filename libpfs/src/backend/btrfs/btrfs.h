// btrfs.h: what the files of the btrfs backend share, and nothing above it
// sees: the trees, work trees and staged uploads over subvolumes
// (btrfs_tree.cc), native send (btrfs_send.cc) and the check of the trees
// (btrfs_check.cc), which the Backend (btrfs_backend.cc) puts together.
#pragma once

#include <btrfsutil.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "backend.h"

namespace pfs::detail {

// Throws Fail for a libbtrfsutil error about `what`: kPermissionDenied (with
// what to do) when errno says the caller may not, else kIo. Read errno
// right after the call that failed.
[[noreturn]] void fail_btrfs(enum btrfs_util_error err, std::string_view what);

// A tree rooted at a subvolume (a commit's, a branch's, or one being
// built), named in messages by `what` ("commit 0123abcd...", "branch
// \"dev\""). A working tree hides pfs's own root entries (kReservedPrefix).
class BtrfsTree final : public TreeReader {
 public:
  BtrfsTree(UniqueFd root, std::string what, bool working)
      : root_(std::move(root)), what_(std::move(what)), working_(working) {}

  std::optional<Entry> stat(const std::string& path) override;
  std::vector<Entry> list(const std::string& dir) override;
  std::unique_ptr<FileReader> open_file(const std::string& path) override;

  int root() const { return root_.get(); }

 private:
  UniqueFd root_;
  std::string what_;
  bool working_;
};

// One upload staged in a working tree's staging directory (staging_dir), as
// a file or a directory named `name`, flock'ed while it lives.
class BtrfsStaging final : public Staging {
 public:
  BtrfsStaging(UniqueFd staging_dir, dev_t dev, std::string name, Backend::StageKind kind);
  ~BtrfsStaging() override;

  std::uint64_t add(const std::string& rel, Source& src) override;
  void sync() override;
  bool clones_from(int dirfd) override;

  // Moves the staged item to `path` of the working tree `root` (see
  // Backend::publish) and marks it published.
  StatsDelta publish_into(int root, const std::string& path, const Backend::Placement& where);

  UniqueFd dir_;
  dev_t dev_;  // of the working tree it was staged in
  std::string name_;
  Backend::StageKind kind_;
  UniqueFd item_;
  std::optional<std::string> made_parent_;  // the directory the last file went to (kDir)
  bool published_ = false;
  std::uint64_t files_ = 0, bytes_ = 0;

 private:
  StatsDelta publish_file(int root, const std::string& path, const Backend::Placement& where);
  StatsDelta publish_dir(int root, const std::string& path);
};

// A writable subvolume in btrfs/tmp/, named `name` there, that freeze turns
// into a commit's tree.
class BtrfsWorkTree final : public WorkTree {
 public:
  BtrfsWorkTree(UniqueFd root, std::string name, std::string what)
      : name_(std::move(name)), tree_(std::move(root), std::move(what), true) {}
  TreeReader& reader() override { return tree_; }

  using WorkTree::copy_file_from;
  void copy_file_from(TreeReader& from, const std::string& from_path,
                      const std::string& path) override;
  void make_dir(const std::string& path) override;
  void remove(const std::string& path) override;
  UniqueFd open_scratch(std::uint64_t n, bool create) override;
  void place_scratch(std::uint64_t n, const std::string& path) override;

  // Removes the scratch files (their data stays where they were placed).
  void drop_scratch();

  std::string name_;
  BtrfsTree tree_;

 private:
  UniqueFd open_beneath_dir(const std::string& dir);
  // The parent directory of `path` (made if missing), with nothing at path.
  UniqueFd clear_place(const std::string& path);

  UniqueFd scratch_;
};

// Backend::send_native for the commit trees in `commits_fd`: the kernel's
// own stream of commit `id` (incremental against `parent` when not empty),
// or false, having written nothing, when the kernel will not send.
bool send_commit_native(int commits_fd, const std::string& id, const std::string& parent,
                        Sink& out);

// Backend::check for the commit trees in `commits_fd` and the working trees
// in `branches_fd`.
void check_trees(int commits_fd, int branches_fd, FsckReport& r, bool repair);

}  // namespace pfs::detail
