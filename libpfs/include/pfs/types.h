// pfs/types.h: the plain values libpfs returns and takes (commits, branches,
// files, diffs, options). All are regular value types: copy freely.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace pfs {

// What a read names: a commit (immutable) or a branch's working state
// (including writes not yet committed).
struct Ref {
  enum class Kind {
    kCommit,  // a commit id, a unique prefix of one (>= 4 hex digits), or a
              // branch name meaning that branch's head commit
    kBranch,  // a branch name: its working state
    kAuto,    // a full commit id, else a branch (working state), else a
              // unique commit-id prefix; used where either may be given
  };
  Kind kind = Kind::kBranch;
  std::string name = "master";

  static Ref commit(std::string id) { return {Kind::kCommit, std::move(id)}; }
  static Ref branch(std::string name) { return {Kind::kBranch, std::move(name)}; }
  static Ref any(std::string name) { return {Kind::kAuto, std::move(name)}; }
};

// Size figures of a tree: regular files and their bytes.
struct TreeStats {
  std::uint64_t files = 0;
  std::uint64_t bytes = 0;
};

struct CommitInfo {
  std::string id;            // 32 lower-case hex digits
  std::string parent;        // first parent; empty for a root commit
  std::string merge_parent;  // the merged branch's head for a merge commit, else empty
  std::string branch;        // the branch it was made on
  std::int64_t time_ns = 0;  // commit time, nanoseconds since the Unix epoch (UTC)
  std::string message;
  TreeStats stats;  // of the committed tree
};

struct BranchInfo {
  std::string name;
  std::string head;    // the newest commit; empty before the first
  bool dirty = false;  // has writes not yet committed
  TreeStats stats;     // of the working state
  std::int64_t created_ns = 0;
};

struct FileInfo {
  enum class Type { kFile, kDirectory };
  std::string path;  // relative to the tree's root, '/'-separated
  Type type = Type::kFile;
  std::uint64_t size = 0;  // bytes for files; 0 for directories
  std::int64_t mtime_ns = 0;
};

struct DiffEntry {
  enum class Change { kAdded, kModified, kDeleted };
  Change change = Change::kAdded;
  std::string path;            // a file path (directories are expanded to files)
  std::uint64_t old_size = 0;  // 0 when added
  std::uint64_t new_size = 0;  // 0 when deleted
};

struct MergeResult {
  bool up_to_date = false;             // nothing to merge; no commit made
  std::optional<CommitInfo> commit;    // the merge commit, when one was made
  std::string base;                    // the common ancestor used (may be empty)
  std::vector<DiffEntry> applied;      // the changes taken from the other branch
  std::vector<std::string> conflicts;  // paths changed differently on both sides
};

struct FsckReport {
  std::uint64_t commits_checked = 0;
  std::uint64_t branches_checked = 0;
  std::vector<std::string> problems;  // damage: empty when the store is consistent
  // Harmless traces of interrupted operations (a crash mid-commit, ...):
  // readers never see them, the branch's next write or repair clears them.
  std::vector<std::string> leftovers;
  std::vector<std::string> repaired;  // what repair fixed
};

// What gc() removed and kept. On btrfs there is nothing to collect (space is
// freed when a commit or branch is deleted) and all figures are 0.
struct GcReport {
  std::uint64_t objects_removed = 0;
  std::uint64_t bytes_removed = 0;
  std::uint64_t objects_kept = 0;
  std::uint64_t bytes_kept = 0;
};

struct StoreInfo {
  std::string path;     // absolute path of the store
  std::string backend;  // "btrfs" (or "portable")
  int format = 0;       // on-disk format version, see docs/format.md
  std::uint64_t commits = 0;
  std::uint64_t branches = 0;
};

// ---- options -------------------------------------------------------------

enum class BackendKind { kAuto, kBtrfs, kPortable };

struct InitOptions {
  BackendKind backend = BackendKind::kAuto;
};

// How open_store() opens a store.
struct OpenOptions {
  // Memory for a cache of the small files (up to 64 KiB) of commits, which
  // never change: for a long-running process that reads the same files of
  // commits often (pachctl serve uses 64 MiB). Reads of a branch's working
  // state are never cached. 0: no cache.
  std::size_t file_cache_bytes = 0;
};

struct PutOptions {
  bool append = false;  // append to the file (or create it) instead of replacing it
  // Write into the existing file from this byte on, overwriting what is
  // there and extending the file when the content runs past its end; the
  // rest of the file is kept. Costs what is written, not the file's size.
  // Excludes append.
  std::optional<std::uint64_t> offset;
};

struct PutDirResult {
  std::uint64_t files = 0;
  std::uint64_t bytes = 0;
  std::vector<std::string> skipped;  // local entries that are not files or dirs
};

struct ListOptions {
  bool recursive = false;  // list every file below, not one level
};

struct ReadRange {
  std::uint64_t offset = 0;
  std::optional<std::uint64_t> length;  // to the end when absent
};

struct LogOptions {
  std::string branch = "master";  // first-parent history from this branch's head
  bool all = false;               // every commit of the store, newest first
  std::optional<std::size_t> limit;
};

struct RevertOptions {
  bool force = false;   // discard uncommitted writes on the branch
  std::string message;  // default: "revert to <id>"
};

// Replication (send, receive, set_branch_head; pfs/replicate.h).
struct SendOptions {
  // Send only what changed since this commit (which the receiver must have);
  // empty: the whole tree.
  std::string parent;
};

struct ReceiveOptions {
  // The branch that gets the received tree as a new commit (the branch is
  // created when absent). Ignored with `as_commit`.
  std::string branch = "master";
  // The commit an incremental stream was made against. Empty: the commit
  // the stream names as its parent (streams pfs writes name it by id).
  std::string parent;
  // Replication: record the tree as exactly this commit (id, parents,
  // branch, time, message; its figures are checked against the tree) and
  // move no branch. Its parents must exist in the store.
  std::optional<CommitInfo> as_commit;
};

struct ReceiveResult {
  CommitInfo commit;                  // the commit made
  std::uint64_t stream_bytes = 0;     // bytes of stream read
  // Entries of the stream a pfs tree cannot hold (symbolic links, devices,
  // FIFOs, sockets): skipped, as put-file -r skips them.
  std::vector<std::string> skipped;
};

// ---- commit events (Client::wait_commits) -----------------------------------

struct WaitOptions {
  // The branch to watch; empty: every branch.
  std::string branch;
  // Where to resume: the cursor an earlier wait_commits returned. Empty:
  // from now (only commits made after the call began are reported).
  std::string since;
  // How long to wait for a commit, in milliseconds; 0 does not wait (it
  // reports what is new since `since`, and returns a cursor to resume from).
  std::int64_t timeout_ms = 25000;
  // Optional: called about every 100 ms while waiting (on the waiting
  // thread); true ends the wait early, as a timeout does. A server uses it
  // to end its waits when it stops.
  std::function<bool()> cancelled;
};

// A branch's head moved to `commit`, one of the commits it gained.
struct CommitEvent {
  std::string branch;
  CommitInfo commit;
};

struct CommitEvents {
  // Grouped by branch (sorted by name), each branch's commits oldest first.
  // Empty when the wait timed out.
  std::vector<CommitEvent> events;
  // Pass as WaitOptions::since to resume exactly after these events. An
  // opaque string of the form "branch:head,..." (every watched branch's
  // head); it stays valid across restarts of the store or server.
  std::string cursor;
};

struct SetHeadOptions {
  // The head the branch must have now for the move to happen ("" = a
  // branch without commits, or no branch: it is created). nullopt: any.
  std::optional<std::string> expected_head;
  // Move even when the branch has uncommitted writes (they are discarded).
  bool force = false;
};

struct MergeOptions {
  enum class Strategy { kFail, kOurs, kTheirs };
  Strategy on_conflict = Strategy::kFail;  // kFail: report and change nothing
  std::string message;                     // default: "merge <from> into <into>"
};

}  // namespace pfs
