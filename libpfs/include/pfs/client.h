// pfs/client.h: the one interface to a pfs store. A local store (a
// directory, open_store()) and a remote server over HTTP (connect(), in
// pfs/remote.h) implement the same calls, so programs and pachctl are
// written once.
//
// Thread safety: a Client may be used from several threads at once, and
// several processes may open one store at once; writers to one branch are
// serialised by a lock in the store (they wait for it: local stores never
// return kBusy), readers are never blocked by writers.
//
// Errors: every call returns Result; the codes each call can return are
// listed with it. kIo, kPermissionDenied, kCorruption and kInternal can come
// from any call and are not repeated below.
#pragma once

#include <pfs/export.h>

#include <filesystem>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <pfs/io.h>
#include <pfs/result.h>
#include <pfs/types.h>

namespace pfs {

// An open file of a commit or a branch: what it is, and its bytes at any
// offset. A file opened in a commit never changes; one opened in a branch's
// working state keeps the content it had when opened (locally; remotely each
// read asks the server again). Not thread-safe.
class PFS_EXPORT FileHandle {
 public:
  virtual ~FileHandle() = default;
  virtual const FileInfo& info() const = 0;
  // Reads up to buf.size() bytes from `offset`; fewer only at the end of the
  // file, 0 at or past it. Errors: kIo (and, remotely, what the server says).
  virtual Result<std::size_t> read_at(std::uint64_t offset, std::span<char> buf) = 0;
};

// The files of a put_files call, one at a time.
class PFS_EXPORT FileBatch {
 public:
  virtual ~FileBatch() = default;
  // The next file: sets `path` (relative to the target directory) and
  // returns the source of its bytes, valid until the next call; nullptr at
  // the end.
  virtual Result<Source*> next(std::string& path) = 0;
};

class PFS_EXPORT Client {
 public:
  virtual ~Client() = default;

  // Where the store is and which backend it uses.
  virtual Result<StoreInfo> info() = 0;

  // ---- files ---------------------------------------------------------------

  // Writes `path` on `branch` (creating parent directories) from `src`; the
  // new content becomes visible at once and whole (never half-written), and
  // is on stable storage when this returns. With opts.append, appends to the
  // existing file (or creates it); with opts.offset, overwrites the existing
  // file's bytes from that offset on. Errors: kInvalidArgument (bad path, or
  // a parent of path is a file, or path is a directory, or append with
  // offset, or an offset past the end of the file), kNotFound (branch; or
  // the file, with opts.offset).
  virtual Result<FileInfo> put_file(std::string_view branch, std::string_view path, Source& src,
                                    const PutOptions& opts = {}) = 0;

  // Copies the local directory `local_dir` (files and subdirectories; other
  // entries are skipped and listed) to `path` on `branch`, merging into what
  // is there. `path` may be "." for the root. Errors: as put_file, and
  // kNotFound if local_dir does not exist.
  virtual Result<PutDirResult> put_dir(std::string_view branch, std::string_view path,
                                       const std::filesystem::path& local_dir) = 0;

  // Writes every file `files` yields below `path` on `branch` ("." for the
  // root), merging into what is there, in one operation: the branch shows
  // all of them or, when anything fails (a bad path, a source's error), none.
  // Returns the files and bytes written. Errors: as put_file.
  virtual Result<PutDirResult> put_files(std::string_view branch, std::string_view path,
                                         FileBatch& files) = 0;

  // Opens the file at `path` in `ref` for reading at any offset.
  // Errors: as get_file.
  virtual Result<std::unique_ptr<FileHandle>> open_file(const Ref& ref, std::string_view path) = 0;

  // Streams the file at `path` in `ref` to `sink` (a byte range of it with
  // `range`). Errors: kInvalidArgument (bad path, path is a directory, range
  // past the end), kNotFound (ref or path).
  virtual Result<FileInfo> get_file(const Ref& ref, std::string_view path, Sink& sink,
                                    const ReadRange& range = {}) = 0;

  // Copies the directory `path` of `ref` ("." for the root) and everything
  // below it to the local directory `local_dir`, which must be absent or
  // empty (it is created, with missing parents). Files get mode 0666 and
  // directories 0777, less the umask. Everything is on stable storage when
  // this returns; on an error, what was copied so far stays. Returns the
  // files and bytes copied. Errors: kNotFound (commit, branch, path, or a
  // parent of local_dir that cannot be made), kInvalidArgument (path is a
  // file, local_dir is not an empty directory), kPermissionDenied, kIo.
  virtual Result<TreeStats> get_dir(const Ref& ref, std::string_view path,
                                    const std::filesystem::path& local_dir) = 0;

  // Describes one file or directory. Errors: kInvalidArgument, kNotFound.
  virtual Result<FileInfo> stat_file(const Ref& ref, std::string_view path) = 0;

  // Removes a file, or a directory with everything below it, from `branch`.
  // Returns what was removed. Errors: kInvalidArgument, kNotFound.
  virtual Result<TreeStats> delete_file(std::string_view branch, std::string_view path) = 0;

  // Lists `dir_or_glob` in `ref`: a directory's entries (everything below it
  // with opts.recursive), a single file, or the files and directories a glob
  // matches (`*`, `?`, `[...]` within a name, `**` across directories).
  // "" or "." is the root. Sorted by path. Errors: kInvalidArgument,
  // kNotFound (ref, or a path that does not exist; a glob that matches
  // nothing returns an empty list).
  virtual Result<std::vector<FileInfo>> list_files(const Ref& ref, std::string_view dir_or_glob,
                                                   const ListOptions& opts = {}) = 0;

  // ---- commits -------------------------------------------------------------

  // Snapshots the working state of `branch` as a new commit whose parent is
  // the branch's head; cost does not grow with the data size. An unchanged
  // branch still gets a commit. Errors: kInvalidArgument, kNotFound.
  virtual Result<CommitInfo> commit(std::string_view branch, std::string_view message = {}) = 0;

  // Commits, newest first: the first-parent history of opts.branch, or every
  // commit with opts.all. Errors: kNotFound (branch).
  virtual Result<std::vector<CommitInfo>> list_commits(const LogOptions& opts = {}) = 0;

  // One commit, by full id, unique prefix (>= 4 hex digits), or branch name
  // (its head). Errors: kInvalidArgument (ambiguous prefix), kNotFound.
  virtual Result<CommitInfo> inspect_commit(std::string_view commit) = 0;

  // Deletes a commit that nothing depends on: no branch has it as head and
  // no commit has it as parent. Errors: kNotFound, kConflict (depended on).
  virtual Result<void> delete_commit(std::string_view commit) = 0;

  // ---- branches ------------------------------------------------------------

  // Creates branch `name` whose working state is `from_commit` (any form
  // inspect_commit takes; empty: master's head, or an empty tree when master
  // has no commit). Errors: kInvalidArgument (name), kAlreadyExists, kNotFound.
  virtual Result<BranchInfo> create_branch(std::string_view name,
                                           std::string_view from_commit = {}) = 0;

  // All branches, sorted by name.
  virtual Result<std::vector<BranchInfo>> list_branches() = 0;

  // One branch. Errors: kInvalidArgument, kNotFound.
  virtual Result<BranchInfo> inspect_branch(std::string_view name) = 0;

  // Deletes a branch and its uncommitted writes; its commits stay.
  // Errors: kInvalidArgument, kNotFound.
  virtual Result<void> delete_branch(std::string_view name) = 0;

  // ---- history -------------------------------------------------------------

  // The files added, modified and deleted going from `from` to `to`, sorted
  // by path. Errors: kNotFound, kInvalidArgument.
  virtual Result<std::vector<DiffEntry>> diff(const Ref& from, const Ref& to) = 0;

  // Makes `branch` hold exactly the tree of `commit` again and records that
  // as a new commit (history is kept; nothing is deleted). Refuses, with
  // kConflict, when the branch has uncommitted writes unless opts.force.
  // Errors: kNotFound, kConflict, kInvalidArgument.
  virtual Result<CommitInfo> revert(std::string_view branch, std::string_view commit,
                                    const RevertOptions& opts = {}) = 0;

  // Three-way merge, by file, of `from`'s head into `into` against their
  // common ancestor, committed as a merge commit on `into`. Paths changed on
  // both sides differently (or a file on one side where the other has a
  // directory) are conflicts: by default the merge changes nothing and
  // returns them in `conflicts` with no `commit` (a successful Result: check
  // it); opts.on_conflict resolves them to one side instead.
  // Errors: kNotFound, kInvalidArgument (into == from), kConflict (into has
  // uncommitted writes).
  virtual Result<MergeResult> merge(std::string_view into, std::string_view from,
                                    const MergeOptions& opts = {}) = 0;

  // ---- commit events -------------------------------------------------------
  // Waits until `opts.branch` (or, when empty, any branch) gains commits
  // after `opts.since`, or until opts.timeout_ms pass, and returns the new
  // commits with a cursor to resume from. Nothing is missed between two
  // calls that pass the cursor along: a branch's new commits are those on
  // its first-parent chain from its head back to the head the cursor names
  // (all of them when a pull or push moves it several at once). A branch
  // created with a head reports that head; a head moved to a commit whose
  // history does not hold the old one (a forced reset) reports the new
  // head alone; a deleted branch reports nothing. Locally the wait is woken
  // by the kernel (inotify) the moment a head moves, never by polling;
  // remotely it is one long-poll request (POST /commits/wait) at a time.
  // Errors: kInvalidArgument (a bad branch name or cursor; a timeout below
  // 0), kNotFound (none: an absent branch is waited for until it exists).
  virtual Result<CommitEvents> wait_commits(const WaitOptions& opts) = 0;

  // ---- replication (pfs/replicate.h builds clone, push and pull on these) ---

  // Writes the tree of `commit` (any form inspect_commit takes) to `out` as
  // a btrfs send stream (version 1, as `btrfs send` writes it: `btrfs
  // receive` accepts it): the whole tree, or with opts.parent only the
  // changes since that commit. The stream names the commit by its id (the
  // subvolume's name and UUID) and the parent likewise. Returns the commit
  // sent. Errors: kNotFound (commit, parent), kInvalidArgument, kIo (out
  // failed: the stream is cut short).
  virtual Result<CommitInfo> send(std::string_view commit, Sink& out,
                                  const SendOptions& opts = {}) = 0;

  // Reads a btrfs send stream (version 1, from pfs or `btrfs send`) and
  // records its tree as a new commit: on opts.branch (created when absent;
  // the branch's head becomes the new commit's parent, and its working
  // state the tree), or with opts.as_commit as exactly that commit, moving
  // no branch. Every command of the stream is checked (checksum, lengths,
  // paths) before anything becomes visible; a bad, truncated or hostile
  // stream is refused with kInvalidArgument and leaves the store as it
  // was. Regular files and directories are kept (not owners, modes, times
  // or extended attributes); other entries are skipped and listed.
  // Errors: kInvalidArgument (bad stream), kNotFound (the parent an
  // incremental stream needs), kConflict (the branch has uncommitted
  // writes, or moved meanwhile), kAlreadyExists (as_commit's id exists).
  virtual Result<ReceiveResult> receive(Source& in, const ReceiveOptions& opts = {}) = 0;

  // Points branch `name` at `commit` (any form inspect_commit takes): its
  // head becomes the commit and its working state the commit's tree. A
  // missing branch is created. Refuses with kConflict when the branch's
  // head is not opts.expected_head, or it has uncommitted writes (unless
  // opts.force). Errors: kInvalidArgument, kNotFound (commit), kConflict.
  virtual Result<BranchInfo> set_branch_head(std::string_view name, std::string_view commit,
                                             const SetHeadOptions& opts = {}) = 0;

  // Checks the store: metadata, trees, commit graph, size figures. With
  // `repair`, fixes what can be fixed without losing data (size figures,
  // leftovers of interrupted operations).
  virtual Result<FsckReport> fsck(bool repair = false) = 0;

  // Removes stored data that no commit and no branch reaches any more (after
  // delete-commit, delete-branch, overwritten uploads). Never removes what is
  // reachable, even while other processes write: it waits for uploads in
  // progress to finish. Nothing to do on btrfs.
  virtual Result<GcReport> gc() = 0;
};

// Creates a new, empty store (with an empty branch "master") in `dir`, which
// must be empty or absent. BackendKind::kAuto picks btrfs when `dir` is on
// btrfs and subvolumes can be made there, and the portable backend otherwise.
// Errors: kAlreadyExists (a store is there), kInvalidArgument (dir not
// empty), kUnsupported (btrfs forced where it cannot work),
// kPermissionDenied.
PFS_EXPORT Result<StoreInfo> init_store(const std::filesystem::path& dir, const InitOptions& opts = {});

// Opens the store in `dir`. Opening changes nothing: an operation a crashed
// process left half-done is finished or undone when its branch is next
// written (or by fsck(true)); until then readers see the last complete state.
// Errors: kNotFound (no store there, with a hint to run pachctl init),
// kCorruption (unknown format or unreadable store file).
PFS_EXPORT Result<std::unique_ptr<Client>> open_store(const std::filesystem::path& dir,
                                           const OpenOptions& opts = {});

// The library's version, "MAJOR.MINOR.PATCH".
PFS_EXPORT std::string_view version();

}  // namespace pfs
