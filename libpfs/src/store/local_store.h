// local_store.h: the LocalStore class (pfs::Client over a Backend) and what
// its files share: a branch's state record and the store's lock files.
// Private to the store layer. Its methods are defined one concern a file:
//   store.cc              opening a store; commit metadata; names -> commits, trees
//   branch_state.cc       branch state files, crash recovery, moving a head
//   files.cc              put/get/list/stat/delete of files and directories
//   commits.cc            commit, log, branches, revert, set_branch_head
//   diff_merge.cc         diff of trees, merge, the commit graph's ancestry
//   store_replication.cc  the store's side of send and receive
//   fsck.cc               fsck (--repair) and gc
// On-disk layout and the commit protocol: docs/format.md.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <pfs/client.h>

#include "backend.h"
#include "commit_watch.h"
#include "fail.h"
#include "file_cache.h"
#include "fsutil.h"
#include "send_stream.h"
#include "store.h"

namespace pfs::detail {

// A branch's state file: its head plus the journal of an interrupted
// multi-step operation (pending_*, stats_stale). See docs/format.md.
struct BranchState {
  BranchInfo info;
  std::string pending_op;    // "commit", "revert" or "merge" while one runs
  std::string pending_id;    // the commit it is creating
  bool stats_stale = false;  // a write was being published
};

// A lock file in the store's locks/ directory ("graph", "receive",
// "branch.NAME"), held shared or exclusive (flock) while the object lives.
class FileLock {
 public:
  FileLock(int locks_dir, const std::string& name, bool exclusive);

 private:
  UniqueFd fd_;
};

// NOTE: an OS error deep in a write names a scratch or object file, or
// nothing ("write object: No space left on device"); this puts in front of
// an I/O error which file, branch or commit the write was for (what(),
// called only then).
template <class What, class Fn>
decltype(auto) naming(What&& what, Fn&& fn) {
  try {
    return fn();
  } catch (Fail& f) {
    if (f.error.code == ErrorCode::kIo) f.error.message = what() + ": " + f.error.message;
    throw;
  }
}

class LocalStore final : public Client {
 public:
  LocalStore(std::filesystem::path path, UniqueFd root, std::unique_ptr<Backend> backend);

  void enable_file_cache(std::size_t bytes) {
    file_cache_ = std::make_unique<CommitFileCache>(bytes);
  }

  Result<StoreInfo> info() override;

  // ---- files (files.cc) -----------------------------------------------------
  Result<FileInfo> put_file(std::string_view branch, std::string_view path, Source& src,
                            const PutOptions& opts) override;
  Result<PutDirResult> put_dir(std::string_view branch, std::string_view path,
                               const std::filesystem::path& local_dir) override;
  Result<PutDirResult> put_files(std::string_view branch, std::string_view path,
                                 FileBatch& files) override;
  Result<std::unique_ptr<FileHandle>> open_file(const Ref& ref, std::string_view path) override;
  Result<FileInfo> get_file(const Ref& ref, std::string_view path, Sink& sink,
                            const ReadRange& range) override;
  Result<TreeStats> get_dir(const Ref& ref, std::string_view path,
                            const std::filesystem::path& local_dir) override;
  Result<FileInfo> stat_file(const Ref& ref, std::string_view path) override;
  Result<TreeStats> delete_file(std::string_view branch, std::string_view path) override;
  Result<std::vector<FileInfo>> list_files(const Ref& ref, std::string_view dir_or_glob,
                                           const ListOptions& opts) override;

  // ---- commits and branches (commits.cc) ------------------------------------
  Result<CommitInfo> commit(std::string_view branch, std::string_view message) override;
  Result<std::vector<CommitInfo>> list_commits(const LogOptions& opts) override;
  Result<CommitInfo> inspect_commit(std::string_view commit) override;
  Result<void> delete_commit(std::string_view commit) override;
  Result<BranchInfo> create_branch(std::string_view name, std::string_view from) override;
  Result<std::vector<BranchInfo>> list_branches() override;
  Result<BranchInfo> inspect_branch(std::string_view name) override;
  Result<void> delete_branch(std::string_view name) override;
  Result<CommitInfo> revert(std::string_view branch, std::string_view commit,
                            const RevertOptions& opts) override;
  Result<BranchInfo> set_branch_head(std::string_view name, std::string_view commit,
                                     const SetHeadOptions& opts) override;

  // ---- history (diff_merge.cc) ----------------------------------------------
  Result<std::vector<DiffEntry>> diff(const Ref& from, const Ref& to) override;
  Result<MergeResult> merge(std::string_view into, std::string_view from,
                            const MergeOptions& opts) override;

  // ---- replication (store_replication.cc) -----------------------------------
  Result<CommitInfo> send(std::string_view commit, Sink& out, const SendOptions& opts) override;
  Result<ReceiveResult> receive(Source& in, const ReceiveOptions& opts) override;

  // ---- checks (fsck.cc) -----------------------------------------------------
  Result<FsckReport> fsck(bool repair) override;
  Result<GcReport> gc() override;

  // ---- commit events (commit_watch.cc) --------------------------------------
  Result<CommitEvents> wait_commits(const WaitOptions& opts) override;

 private:
  // ---- metadata, names -> commits and trees (store.cc) ----------------------
  std::vector<std::string> commit_ids();
  std::vector<std::string> branch_names();
  std::optional<CommitInfo> read_commit(const std::string& id);
  CommitInfo must_read_commit(const std::string& id);
  void write_commit(const CommitInfo& c);
  std::string resolve_commit(std::string_view s);
  std::unique_ptr<TreeReader> tree_of(const std::string& commit_id);
  std::unique_ptr<TreeReader> open_ref(const Ref& ref);
  // Opens the file `p` (normalized) of `ref` without opening its tree
  // first when the backend can (one openat2 on btrfs).
  std::unique_ptr<FileReader> open_ref_file(const Ref& ref, const std::string& p);

  // ---- branch state and recovery (branch_state.cc) --------------------------
  BranchState read_state(const std::string& b);
  std::optional<BranchState> read_state_if_exists(const std::string& b);
  void save_state(const BranchState& s, bool durable = true);
  BranchState load_and_recover(const std::string& b);
  template <class Fn>
  auto while_stale(BranchState& st, Fn fn) -> decltype(fn());  // defined below
  std::unique_ptr<WorkTree> begin_work(BranchState& st, const char* op, const std::string& id,
                                       const std::string& base);
  void rollback(BranchState& st) noexcept;
  void abandon_work(BranchState& st);
  void finish_work(BranchState& st, const CommitInfo& c);
  BranchInfo point_branch(const std::string& b, const CommitInfo& c, std::optional<BranchState>& st,
                          const std::optional<std::string>& expected, bool force);

  // ---- files (files.cc) -----------------------------------------------------
  void publish(const std::string& b, Staging& staged, const std::string& p,
               const Backend::Placement& where);

  // ---- merge and ancestry (diff_merge.cc) -----------------------------------
  MergeResult apply_merge(BranchState& st, CommitInfo& c, const std::vector<DiffEntry>& take,
                          TreeReader& theirs, const MergeOptions& opts, MergeResult result);
  std::vector<std::string> parents_of(const std::string& id);
  std::vector<std::string> ancestors_bfs(const std::string& start);
  bool is_ancestor(const std::string& a, const std::string& b);
  std::string merge_base(const std::string& a, const std::string& b);

  // ---- replication (store_replication.cc) -----------------------------------
  void check_replica(const CommitInfo& c);
  std::string receive_base(const stream::Command& first, const std::string& given);
  void sweep_receive();

  // ---- fsck (fsck.cc) -------------------------------------------------------
  FsckReport run_fsck(bool repair);

  struct StateKey {
    ino_t ino;
    off_t size;
    std::int64_t mtime, ctime;
    bool operator==(const StateKey&) const = default;
  };
  std::mutex state_cache_mu_;
  std::map<std::string, std::pair<StateKey, BranchState>> state_cache_;
  std::filesystem::path path_;
  UniqueFd root_, meta_, commits_, branches_, locks_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<CommitFileCache> file_cache_;  // null unless OpenOptions::file_cache_bytes
  std::mutex watcher_mu_;
  std::unique_ptr<DirWatcher> watcher_;  // meta/branches, from the first wait_commits on
};

// Runs a change of the working tree with the branch's figures marked
// stale, so a crash in it makes recovery recount them. A change that fails
// (most fail before touching anything) is recounted on the spot, and the
// branch keeps its state when nothing changed.
template <class Fn>
auto LocalStore::while_stale(BranchState& st, Fn fn) -> decltype(fn()) {
  BranchState before = st;
  st.stats_stale = true;
  save_state(st);
  try {
    return fn();
  } catch (...) {
    try {
      TreeStats now = count_tree(*backend_->open_branch(st.info.name));
      if (now.files == before.info.stats.files && now.bytes == before.info.stats.bytes) {
        st = before;
      } else {
        st.info.stats = now;
        st.info.dirty = true;
        st.stats_stale = false;
      }
      save_state(st);
    } catch (...) {  // recovery recounts at the next write
    }
    throw;
  }
}

}  // namespace pfs::detail
