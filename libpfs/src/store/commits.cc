// commits.cc: commits and branches: commit, log, inspect and delete a
// commit; create, list, inspect and delete a branch; revert a branch to a
// commit and set a branch's head. Each multi-step change journals itself in
// the branch's state file first (branch_state.cc) so a crash is recovered.
#include "local_store.h"

#include <algorithm>
#include <cstdint>
#include <unordered_set>

#include "names.h"

namespace pfs::detail {

// ---- commits ------------------------------------------------------------------

Result<CommitInfo> LocalStore::commit(std::string_view branch, std::string_view message) {
  return guard([&] {
    std::string b(branch);
    check_branch_name(b);
    FileLock graph(locks_.get(), "graph", false);
    FileLock lock(locks_.get(), "branch." + b, true);
    BranchState st = load_and_recover(b);
    backend_->sweep_staging(b);
    CommitInfo c;
    c.id = random_hex(kCommitIdLength / 2);
    c.parent = st.info.head;
    c.branch = b;
    c.time_ns = now_ns();
    c.message = std::string(message);
    c.stats = st.info.stats;
    st.pending_op = "commit";
    st.pending_id = c.id;
    save_state(st);
    crash_point("commit.after-intent");
    try {
      backend_->snapshot(b, c.id);
      crash_point("commit.after-snapshot");
      write_commit(c);  // the commit point
    } catch (...) {
      rollback(st);
      throw;
    }
    crash_point("commit.after-meta");
    st.info.head = c.id;
    st.info.dirty = false;
    st.pending_op.clear();
    st.pending_id.clear();
    save_state(st);
    return c;
  });
}

Result<std::vector<CommitInfo>> LocalStore::list_commits(const LogOptions& opts) {
  return guard([&] {
    std::vector<CommitInfo> out;
    std::size_t limit = opts.limit.value_or(SIZE_MAX);
    if (opts.all) {
      for (const auto& id : commit_ids())
        if (auto c = read_commit(id)) out.push_back(std::move(*c));
      std::sort(out.begin(), out.end(), [](const CommitInfo& a, const CommitInfo& b) {
        return a.time_ns != b.time_ns ? a.time_ns > b.time_ns : a.id < b.id;
      });
      if (out.size() > limit) out.resize(limit);
      return out;
    }
    check_branch_name(opts.branch);
    std::string id = read_state(opts.branch).info.head;
    std::unordered_set<std::string> seen;
    while (!id.empty() && out.size() < limit) {
      if (!seen.insert(id).second)
        failf(ErrorCode::kCorruption,
              "the history of branch \"{}\" loops back to commit {}; run pachctl fsck", opts.branch,
              id.substr(0, 12));
      auto c = read_commit(id);
      if (!c)
        failf(ErrorCode::kCorruption,
              "commit {} in the history of branch \"{}\" is missing (run pachctl fsck)", id,
              opts.branch);
      id = c->parent;
      out.push_back(std::move(*c));
    }
    return out;
  });
}

Result<CommitInfo> LocalStore::inspect_commit(std::string_view commit) {
  return guard([&] { return must_read_commit(resolve_commit(commit)); });
}

Result<void> LocalStore::delete_commit(std::string_view commit) {
  return guard([&] {
    FileLock graph(locks_.get(), "graph", true);
    std::string id = resolve_commit(commit);
    for (const auto& b : branch_names()) {
      auto st = read_state(b);
      if (st.info.head == id)
        failf(ErrorCode::kConflict,
              "commit {} is the head of branch \"{}\"; delete or move the branch first", id, b);
    }
    for (const auto& other : commit_ids()) {
      auto c = read_commit(other);
      if (c && (c->parent == id || c->merge_parent == id))
        failf(ErrorCode::kConflict,
              "commit {} is a parent of commit {}; only commits nothing depends on can be deleted",
              id, other);
    }
    unlink_if_exists(commits_.get(), id + ".json");  // the commit point
    fsync_dir(commits_.get());
    if (file_cache_) file_cache_->forget_commit(id);
    crash_point("delete-commit.after-meta");
    backend_->delete_commit_tree(id);
  });
}

// ---- branches -----------------------------------------------------------------

Result<BranchInfo> LocalStore::create_branch(std::string_view name, std::string_view from) {
  return guard([&] {
    std::string b(name);
    check_branch_name(b);
    FileLock graph(locks_.get(), "graph", true);
    FileLock lock(locks_.get(), "branch." + b, true);
    if (read_small_file(branches_.get(), b + ".json"))
      failf(ErrorCode::kAlreadyExists, "branch \"{}\" already exists", b);
    std::string base;
    if (!from.empty()) {
      base = resolve_commit(from);
    } else if (auto master = read_small_file(branches_.get(), "master.json")) {
      base = read_state("master").info.head;
    }
    CommitInfo c;
    if (!base.empty()) c = must_read_commit(base);
    backend_->create_branch_tree(b, base);
    crash_point("branch.after-tree");
    BranchState st;
    st.info.name = b;
    st.info.head = base;
    st.info.stats = c.stats;
    st.info.created_ns = now_ns();
    save_state(st);  // the commit point
    return st.info;
  });
}

Result<std::vector<BranchInfo>> LocalStore::list_branches() {
  return guard([&] {
    std::vector<BranchInfo> out;
    for (const auto& b : branch_names()) out.push_back(read_state(b).info);
    return out;
  });
}

Result<BranchInfo> LocalStore::inspect_branch(std::string_view name) {
  return guard([&] {
    check_branch_name(name);
    return read_state(std::string(name)).info;
  });
}

Result<void> LocalStore::delete_branch(std::string_view name) {
  return guard([&] {
    std::string b(name);
    check_branch_name(b);
    FileLock graph(locks_.get(), "graph", false);
    FileLock lock(locks_.get(), "branch." + b, true);
    BranchState st = load_and_recover(b);
    if (!st.pending_id.empty()) backend_->discard_work(st.pending_id);
    unlink_if_exists(branches_.get(), b + ".json");  // the commit point
    fsync_dir(branches_.get());
    crash_point("delete-branch.after-meta");
    backend_->delete_branch_tree(b);
  });
}

Result<CommitInfo> LocalStore::revert(std::string_view branch, std::string_view commit,
                                      const RevertOptions& opts) {
  return guard([&] {
    std::string b(branch);
    check_branch_name(b);
    FileLock graph(locks_.get(), "graph", false);
    FileLock lock(locks_.get(), "branch." + b, true);
    BranchState st = load_and_recover(b);
    std::string target = resolve_commit(commit);
    if (st.info.dirty && !opts.force)
      failf(ErrorCode::kConflict,
            "branch \"{}\" has uncommitted changes; commit them first (pachctl commit -b {}) "
            "or discard them with --force",
            b, b);
    CommitInfo t = must_read_commit(target);
    CommitInfo c;
    c.id = random_hex(kCommitIdLength / 2);
    c.parent = st.info.head;
    c.branch = b;
    c.time_ns = now_ns();
    c.message = opts.message.empty() ? "revert to " + target : opts.message;
    c.stats = t.stats;
    try {
      auto work = begin_work(st, "revert", c.id, target);
      backend_->freeze(*work, c.id);
      finish_work(st, c);
    } catch (...) {
      rollback(st);
      throw;
    }
    return c;
  });
}

Result<BranchInfo> LocalStore::set_branch_head(std::string_view name, std::string_view commit,
                                               const SetHeadOptions& opts) {
  return guard([&] {
    std::string b(name);
    check_branch_name(b);
    FileLock graph(locks_.get(), "graph", false);
    FileLock lock(locks_.get(), "branch." + b, true);
    CommitInfo c = must_read_commit(resolve_commit(commit));
    std::optional<BranchState> st;
    if (read_state_if_exists(b)) st = load_and_recover(b);
    return point_branch(b, c, st, opts.expected_head, opts.force);
  });
}

}  // namespace pfs::detail
