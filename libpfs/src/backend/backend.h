// backend.h: the one interface between the Store (commit graph, branch
// heads, locking, recovery) and the storage of trees (btrfs subvolumes, or
// the portable content-addressed store). A backend knows nothing of commits'
// parents, messages or branch heads; the Store knows nothing of subvolumes.
//
// Trees: every branch has one working tree (writable); every commit has one
// frozen tree. All names passed in are already validated by the Store.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <pfs/io.h>
#include <pfs/types.h>

#include "fsutil.h"

namespace pfs::detail {

// One file or directory of a tree.
struct Entry {
  FileInfo info;
  // Equal non-empty identities mean equal content (for a directory: equal
  // subtrees); different or empty identities mean "compare to know"...
  std::string identity;
  // ...unless both identities are content hashes: then different means
  // different, and no bytes need to be read.
  bool identity_is_content = false;
  // Names of the file's inode (hard links): above 1 only on btrfs, where
  // the identity then names the inode.
  std::uint64_t links = 1;
};

// An open regular file of a tree.
class FileReader {
 public:
  virtual ~FileReader() = default;
  virtual std::uint64_t size() const = 0;
  // Reads up to buf.size() bytes at `offset`; returns 0 at the end.
  virtual std::size_t pread(std::span<char> buf, std::uint64_t offset) = 0;
  // The file as one plain file descriptor (for reflink, sendfile and
  // copy_file_range), or -1 when its bytes are spread over several objects.
  virtual int fd() const = 0;
  // The file's modification time, set by the backend that opened it (so
  // that a reader need not stat the path again).
  std::int64_t mtime_ns = 0;
};

// A FileReader over one plain file (of `size` bytes, when the caller has
// just stat'ed it; else it is stat'ed).
std::unique_ptr<FileReader> file_reader(UniqueFd fd, std::optional<std::uint64_t> size = {});

// Read access to one tree. Safe to use while the tree is being written.
class TreeReader {
 public:
  virtual ~TreeReader() = default;
  // The entry at `path` ("" is the root), or nullopt.
  virtual std::optional<Entry> stat(const std::string& path) = 0;
  // The children of directory `dir`, sorted by name; info.path is the full
  // path. Throws kNotFound, or kInvalidArgument when dir is a file.
  virtual std::vector<Entry> list(const std::string& dir) = 0;
  // Opens a regular file for reading. Throws kNotFound / kInvalidArgument.
  virtual std::unique_ptr<FileReader> open_file(const std::string& path) = 0;
};

// Bytes written for a branch that nobody sees until published. Dropping a
// Staging without publishing discards it.
class Staging {
 public:
  virtual ~Staging() = default;
  // Adds a file at `rel` (relative to the staged item; "" when the staged
  // item is a single file) with the content of src. Returns its size.
  virtual std::uint64_t add(const std::string& rel, Source& src) = 0;
  // Makes everything added durable on disk.
  virtual void sync() = 0;
  // True when files of the directory `dirfd` are added without reading
  // their bytes (a reflink within one btrfs file system): then reading them
  // ahead would only cost I/O. A hint; false is always safe.
  virtual bool clones_from(int /*dirfd*/) { return false; }
};

// A tree under construction (for merge and revert), frozen into a commit.
class WorkTree {
 public:
  virtual ~WorkTree() = default;
  virtual TreeReader& reader() = 0;
  // Sets `path` to the file `from_path` of `from` (creating parent
  // directories; a directory in the way goes). `from` is a tree of the same
  // backend, or any TreeReader for a file it does not hold by identity.
  virtual void copy_file_from(TreeReader& from, const std::string& from_path,
                              const std::string& path) = 0;
  void copy_file_from(TreeReader& from, const std::string& path) {
    copy_file_from(from, path, path);
  }
  // Makes directory `path` and its parents (a file in the way goes).
  virtual void make_dir(const std::string& path) = 0;
  // Removes a file or directory; missing is fine.
  virtual void remove(const std::string& path) = 0;

  // Scratch files, for receive: numbered files on the tree's own file
  // system, written by the caller and then placed into the tree (the same
  // one at several paths makes hard links where the backend has them).
  // They are gone after freeze, or when the WorkTree is dropped or its
  // commit's work is discarded.
  virtual UniqueFd open_scratch(std::uint64_t n, bool create) = 0;
  virtual void place_scratch(std::uint64_t n, const std::string& path) = 0;
};

// Change of a tree's size figures.
struct StatsDelta {
  std::int64_t files = 0;
  std::int64_t bytes = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string_view name() const = 0;

  // ---- reading
  virtual std::unique_ptr<TreeReader> open_commit(const std::string& id) = 0;
  virtual std::unique_ptr<TreeReader> open_branch(const std::string& branch) = 0;
  // One file of a commit's tree (or of a branch's working tree): what
  // open_commit(id)->open_file(path) returns, errors included, in fewer
  // system calls where the backend can (a small GET's cost is mostly these).
  virtual std::unique_ptr<FileReader> open_commit_file(const std::string& id, const std::string& path) {
    return open_commit(id)->open_file(path);
  }
  virtual std::unique_ptr<FileReader> open_branch_file(const std::string& branch, const std::string& path) {
    return open_branch(branch)->open_file(path);
  }
  virtual bool has_commit_tree(const std::string& id) = 0;
  virtual bool has_branch_tree(const std::string& branch) = 0;
  virtual std::vector<std::string> list_commit_trees() = 0;
  virtual std::vector<std::string> list_branch_trees() = 0;

  // ---- branch working trees (callers hold the branch lock)
  // Creates the working tree of `branch` as a copy of commit `from` (empty
  // tree when from is empty). Atomic: the tree appears whole or not at all.
  virtual void create_branch_tree(const std::string& branch, const std::string& from) = 0;
  virtual void delete_branch_tree(const std::string& branch) = 0;  // missing is fine
  // Atomically replaces the working tree of `branch` with a copy of commit id.
  virtual void reset_branch_tree(const std::string& branch, const std::string& id) = 0;

  // ---- writing files (stage without the lock, publish under it)
  // kDir: the staged item is a directory that add() fills; else one file.
  // kPart: bytes to append or write at an offset, only ever published with
  // Placement kAppend or kAt (a backend may keep them apart from its
  // stored content, since they are merged into a file at publish).
  enum class StageKind { kFile, kDir, kPart };
  virtual std::unique_ptr<Staging> stage(const std::string& branch, StageKind kind) = 0;
  // How a staged file lands on the file at its path.
  struct Placement {
    enum class Mode { kReplace, kAppend, kAt } mode = Mode::kReplace;
    std::uint64_t offset = 0;  // kAt: the file exists (else kNotFound), offset <= its size
  };
  // Moves a staged item to `path` of the branch's working tree: a file
  // replaces what is there, is appended to it, or overwrites its bytes from
  // an offset on (by `where`); a directory is merged into what is there.
  // Returns the change of the tree's figures.
  virtual StatsDelta publish(const std::string& branch, Staging& staged, const std::string& path,
                             const Placement& where) = 0;
  // Removes a file or a directory tree; returns what was removed.
  virtual TreeStats remove(const std::string& branch, const std::string& path) = 0;
  // Removes staged items of crashed writers. Caller holds the branch lock.
  virtual void sweep_staging(const std::string& branch) = 0;

  // ---- commits
  // Freezes the working tree of `branch` as the tree of commit `id`, O(1).
  virtual void snapshot(const std::string& branch, const std::string& id) = 0;
  // A writable copy of commit `base` (empty tree when base is empty),
  // frozen by freeze() into the tree of commit `id`.
  virtual std::unique_ptr<WorkTree> work_tree(const std::string& base, const std::string& id) = 0;
  virtual void freeze(WorkTree& tree, const std::string& id) = 0;
  virtual void delete_commit_tree(const std::string& id) = 0;  // missing is fine
  // Removes leftovers of an interrupted work_tree/freeze for commit id.
  virtual void discard_work(const std::string& id) = 0;

  // ---- replication
  // Writes the tree of commit `id` as a btrfs send stream with the file
  // system's own sender (the kernel's, on btrfs), incremental against
  // commit `parent` when not empty. Returns false, having written nothing,
  // when there is none or it may not be used (btrfs send needs root); the
  // Store then writes the stream itself from the trees.
  virtual bool send_native(const std::string& id, const std::string& parent, Sink& out) {
    (void)id, (void)parent, (void)out;
    return false;
  }

  // ---- maintenance
  // Removes stored data that no commit and no branch reaches. Safe while
  // other processes write.
  virtual GcReport gc() = 0;
  // Checks the stored data itself (object hashes, references between
  // objects); adds what it finds to the report. With `repair`, removes
  // corrupt objects so that the next upload of the same content restores
  // them.
  virtual void check(FsckReport& report, bool repair) = 0;
};

// Figures of a whole tree, by walking it (fsck and recovery only).
TreeStats count_tree(TreeReader& tree, const std::string& dir = "");

// The backend of an existing store rooted at store_fd.
std::unique_ptr<Backend> open_btrfs_backend(int store_fd);
// Prepares a new store's tree area; throws kUnsupported when `store_fd` is
// not on btrfs or subvolumes cannot be made there.
void init_btrfs_backend(int store_fd);
// Whether btrfs can be used at store_fd (on btrfs, subvolume can be made).
bool btrfs_usable(int store_fd, std::string* why);

// The portable backend: a content-addressed object store in plain files.
std::unique_ptr<Backend> open_portable_backend(int store_fd);
void init_portable_backend(int store_fd);

}  // namespace pfs::detail
