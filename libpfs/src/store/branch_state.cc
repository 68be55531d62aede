// branch_state.cc: a branch's state file (read, cached, saved), the lock
// files, and the journal in the state file that lets a crashed operation be
// finished or undone: recovery under the branch's lock, the work tree of a
// revert or merge, and moving a branch's head (docs/format.md).
#include "local_store.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

#include <pfs/json.h>
#include <nlohmann/json.hpp>

namespace pfs::detail {

using nlohmann::json;

namespace {

json state_to_json(const BranchState& s) {
  json j = s.info;
  j["pending_op"] = s.pending_op.empty() ? json(nullptr) : json(s.pending_op);
  j["pending_id"] = s.pending_id.empty() ? json(nullptr) : json(s.pending_id);
  j["stats_stale"] = s.stats_stale;
  j["format"] = kFormatVersion;
  return j;
}

BranchState parse_state(const std::string& b, const std::string& text) {
  try {
    json j = json::parse(text);
    BranchState s;
    s.info = j.get<BranchInfo>();
    if (j.contains("pending_op") && !j["pending_op"].is_null()) s.pending_op = j["pending_op"];
    if (j.contains("pending_id") && !j["pending_id"].is_null()) s.pending_id = j["pending_id"];
    s.stats_stale = j.value("stats_stale", false);
    return s;
  } catch (const json::exception& e) {
    failf(ErrorCode::kCorruption, "state of branch \"{}\" is unreadable ({}); run pachctl fsck", b,
          e.what());
  }
}

}  // namespace

FileLock::FileLock(int locks_dir, const std::string& name, bool exclusive) {
  fd_.reset(::openat(locks_dir, name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd_) fail_errno_at(errno, "open lock file " + name + " in", locks_dir);
  flock_fd(fd_.get(), exclusive);
}

BranchState LocalStore::read_state(const std::string& b) {
  auto st = read_state_if_exists(b);
  if (!st)
    failf(ErrorCode::kNotFound, "branch \"{}\" not found (list branches with: pachctl list-branch)",
          b);
  return std::move(*st);
}

// A branch's state file is read again only when it changed: it is always
// replaced by a rename (a new inode), so its inode, size and times tell --
// unless it changed within the file system's timestamp granularity and
// got a freed inode number back (ext4 reuses them). So, as git does for
// its index, a file younger than a second is always read.
// This is on the path of every read a server answers.
std::optional<BranchState> LocalStore::read_state_if_exists(const std::string& b) {
  std::string file = b + ".json";
  auto st = stat_at(branches_.get(), file);
  if (!st) return std::nullopt;
  StateKey key{st->st_ino, st->st_size, mtime_ns(*st),
               st->st_ctim.tv_sec * 1000000000LL + st->st_ctim.tv_nsec};
  {
    std::lock_guard lk(state_cache_mu_);
    auto it = state_cache_.find(b);
    if (it != state_cache_.end() && it->second.first == key &&
        now_ns() - std::max(key.mtime, key.ctime) > 1000000000LL)
      return it->second.second;
  }
  auto text = read_small_file(branches_.get(), file);
  if (!text) return std::nullopt;
  BranchState parsed = parse_state(b, *text);
  // Cache only what was read from the file that was stat'ed.
  auto again = stat_at(branches_.get(), file);
  if (again && again->st_ino == st->st_ino && again->st_size == st->st_size &&
      mtime_ns(*again) == key.mtime) {
    std::lock_guard lk(state_cache_mu_);
    if (state_cache_.size() > 1024) state_cache_.clear();
    state_cache_[b] = {key, parsed};
  }
  return parsed;
}

void LocalStore::save_state(const BranchState& s, bool durable) {
  write_file_atomic(branches_.get(), s.info.name + ".json", state_to_json(s).dump(2) + "\n",
                    durable);
}

// Reads a branch's state under its lock, finishing or undoing what a
// crashed writer left: the commit metadata file decides (present: roll
// forward; absent: roll back).
BranchState LocalStore::load_and_recover(const std::string& b) {
  BranchState st = read_state(b);
  if (st.pending_id.empty() && !st.stats_stale) return st;
  if (!st.pending_id.empty()) {
    if (auto c = read_commit(st.pending_id)) {
      if (st.pending_op != "commit") backend_->reset_branch_tree(b, c->id);
      st.info.head = c->id;
      st.info.dirty = false;
      st.info.stats = c->stats;
    } else {
      backend_->delete_commit_tree(st.pending_id);
    }
    backend_->discard_work(st.pending_id);
    st.pending_id.clear();
    st.pending_op.clear();
  }
  if (st.stats_stale) {
    st.info.stats = count_tree(*backend_->open_branch(b));
    st.info.dirty = true;
    st.stats_stale = false;
  }
  save_state(st);
  return st;
}

std::unique_ptr<WorkTree> LocalStore::begin_work(BranchState& st, const char* op,
                                                 const std::string& id, const std::string& base) {
  st.pending_op = op;
  st.pending_id = id;
  save_state(st);
  return backend_->work_tree(base, id);
}

// Undoes a failed (not crashed) operation that had not reached its commit
// point. Past it, the operation is left for recovery to roll forward.
void LocalStore::rollback(BranchState& st) noexcept {
  try {
    if (st.pending_id.empty() || read_commit(st.pending_id)) return;
    backend_->delete_commit_tree(st.pending_id);
    abandon_work(st);
  } catch (...) {  // left for recovery at the branch's next write
  }
}

void LocalStore::abandon_work(BranchState& st) {
  backend_->discard_work(st.pending_id);
  st.pending_op.clear();
  st.pending_id.clear();
  save_state(st);
}

// After the work tree is frozen as commit c: record c (the commit point),
// make it the branch's working tree and head.
void LocalStore::finish_work(BranchState& st, const CommitInfo& c) {
  crash_point("work.after-freeze");
  write_commit(c);
  crash_point("work.after-meta");
  backend_->reset_branch_tree(st.info.name, c.id);
  st.info.head = c.id;
  st.info.dirty = false;
  st.info.stats = c.stats;
  st.pending_op.clear();
  st.pending_id.clear();
  save_state(st);
}

// Makes commit c the head and working state of branch b (creating it),
// if its head is `expected` (nullopt: any) and it has no uncommitted
// writes (unless force). Caller holds b's lock; st is its recovered state.
BranchInfo LocalStore::point_branch(const std::string& b, const CommitInfo& c,
                                    std::optional<BranchState>& st,
                                    const std::optional<std::string>& expected, bool force) {
  if (!st) {
    if (expected && !expected->empty())
      failf(ErrorCode::kConflict, "branch \"{}\" does not exist (expected its head at {})", b,
            *expected);
    backend_->create_branch_tree(b, c.id);
    crash_point("branch.after-tree");
    BranchState n;
    n.info.name = b;
    n.info.head = c.id;
    n.info.stats = c.stats;
    n.info.created_ns = now_ns();
    save_state(n);  // the commit point
    return n.info;
  }
  if (expected && st->info.head != *expected)
    failf(ErrorCode::kConflict, "branch \"{}\" moved: its head is {}, not {}", b,
          st->info.head.empty() ? "none" : st->info.head, expected->empty() ? "none" : *expected);
  if (st->info.head == c.id && !st->info.dirty) return st->info;
  if (st->info.dirty && !force)
    failf(ErrorCode::kConflict,
          "branch \"{}\" has uncommitted changes; commit them first (pachctl commit -b {}) or "
          "discard them with --force",
          b, b);
  // One durable write: the new head with the reset still pending, which
  // recovery rolls forward (the commit exists); so the write that clears
  // it after the reset need not be synced.
  st->pending_op = "reset";
  st->pending_id = c.id;
  st->info.head = c.id;
  st->info.dirty = false;
  st->info.stats = c.stats;
  save_state(*st);
  crash_point("set-head.after-state");
  backend_->reset_branch_tree(b, c.id);
  crash_point("set-head.after-reset");
  st->pending_op.clear();
  st->pending_id.clear();
  save_state(*st, false);
  return st->info;
}

}  // namespace pfs::detail
