// fsck.cc: checking a store (fsck) and repairing what can be repaired
// (--repair): the backend's stored data, every commit's metadata, parents,
// tree and figures, loops in the history, every branch's state, and what
// interrupted operations left. And gc, which is the backend's.
#include "local_store.h"

#include <algorithm>
#include <array>
#include <map>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace pfs::detail {

namespace {

// The cycles of the commit graph (parent and merge-parent edges), each
// as the commits of one loop, short ids, the first repeated at the end.
std::vector<std::vector<std::string>> history_loops(
    const std::map<std::string, std::array<std::string, 2>>& history) {
  std::vector<std::vector<std::string>> loops;
  std::map<std::string, int> color;  // 0 unseen, 1 on the current path, 2 done
  for (const auto& [start, unused] : history) {
    if (color[start] != 0) continue;
    // Iterative depth-first walk: (commit, next edge to follow).
    std::vector<std::pair<std::string, int>> stack{{start, 0}};
    color[start] = 1;
    while (!stack.empty()) {
      auto& [id, edge] = stack.back();
      auto it = history.find(id);
      if (it == history.end() || edge == 2) {
        color[id] = 2;
        stack.pop_back();
        continue;
      }
      std::string next = it->second[edge++];
      if (next.empty() || !history.count(next)) continue;
      if (color[next] == 1) {  // back to a commit on the path: a loop
        std::vector<std::string> loop;
        auto from =
            std::find_if(stack.begin(), stack.end(), [&](auto& e) { return e.first == next; });
        for (auto e = from; e != stack.end(); ++e) loop.push_back(e->first.substr(0, 12));
        loop.push_back(next.substr(0, 12));
        loops.push_back(std::move(loop));
      } else if (color[next] == 0) {
        color[next] = 1;
        stack.emplace_back(next, 0);
      }
    }
  }
  return loops;
}

}  // namespace

Result<FsckReport> LocalStore::fsck(bool repair) {
  return guard([&] { return run_fsck(repair); });
}

Result<GcReport> LocalStore::gc() {
  return guard([&] { return backend_->gc(); });
}

FsckReport LocalStore::run_fsck(bool repair) {
  FsckReport r;
  std::optional<FileLock> graph;
  if (repair) graph.emplace(locks_.get(), "graph", true);
  auto problem = [&](std::string s) { r.problems.push_back(std::move(s)); };
  // The stored data itself first (object hashes and references).
  backend_->check(r, repair);
  // A tree whose walk fails (a missing or unreadable object) is a problem
  // to report, not a reason to stop checking.
  auto count = [&](const std::string& what, auto open) -> std::optional<TreeStats> {
    try {
      return count_tree(*open());
    } catch (const Fail& f) {
      problem(fmt::format("{}: {}", what, f.error.message));
      return std::nullopt;
    }
  };
  std::set<std::string> ids;
  for (auto& id : commit_ids()) ids.insert(id);
  std::map<std::string, std::array<std::string, 2>> history;  // id -> parent, merge parent
  // Commits: metadata, parents, trees, figures.
  for (auto& id : ids) {
    r.commits_checked++;
    std::optional<CommitInfo> c;
    try {
      c = read_commit(id);
    } catch (const Fail& f) {
      problem(f.error.message);
      continue;
    }
    if (!c) continue;
    history[id] = {c->parent, c->merge_parent};
    if (c->id != id) problem(fmt::format("commit {}: metadata names id {}", id, c->id));
    if (!c->parent.empty() && !ids.count(c->parent))
      problem(fmt::format("commit {}: parent {} is missing", id, c->parent));
    if (!c->merge_parent.empty() && !ids.count(c->merge_parent))
      problem(fmt::format("commit {}: merge parent {} is missing", id, c->merge_parent));
    if (!backend_->has_commit_tree(id)) {
      problem(fmt::format("commit {}: its tree is missing", id));
      continue;
    }
    auto counted = count("commit " + id, [&] { return backend_->open_commit(id); });
    if (!counted) continue;
    if (counted->files != c->stats.files || counted->bytes != c->stats.bytes)
      problem(fmt::format("commit {}: records {} files / {} bytes but holds {} / {}", id,
                          c->stats.files, c->stats.bytes, counted->files, counted->bytes));
  }
  // History: a parent chain that comes back to itself (edited or damaged
  // metadata) would make log stop short and merge-base walks meaningless.
  for (auto& loop : history_loops(history))
    problem(
        fmt::format("commit {}: its history loops back to itself ({}); restore the "
                    "commits' metadata from a clone, or delete the commits of the loop",
                    loop.front().substr(0, 12), fmt::join(loop, " -> ")));
  // Branches: state, head, working tree, figures, interrupted operations.
  std::set<std::string> names;
  for (auto& b : branch_names()) names.insert(b);
  for (auto& b : names) {
    r.branches_checked++;
    BranchState st;
    try {
      st = read_state(b);
    } catch (const Fail& f) {
      problem(f.error.message);
      continue;
    }
    if (!st.info.head.empty() && !ids.count(st.info.head))
      problem(fmt::format("branch \"{}\": head commit {} is missing", b, st.info.head));
    if (!backend_->has_branch_tree(b)) {
      problem(fmt::format("branch \"{}\": its working tree is missing", b));
      continue;
    }
    if (!st.pending_id.empty() || st.stats_stale) {
      if (repair) {
        FileLock lock(locks_.get(), "branch." + b, true);
        st = load_and_recover(b);
        r.repaired.push_back(
            fmt::format("branch \"{}\": finished or undid an interrupted operation", b));
      } else {
        r.leftovers.push_back(
            fmt::format("branch \"{}\": an interrupted {} is finished or undone at its next "
                        "write (or by fsck --repair)",
                        b, st.pending_op.empty() ? "write" : st.pending_op));
        continue;
      }
    }
    auto counted_or =
        count(fmt::format("branch \"{}\"", b), [&] { return backend_->open_branch(b); });
    if (!counted_or) continue;
    TreeStats counted = *counted_or;
    if (counted.files != st.info.stats.files || counted.bytes != st.info.stats.bytes) {
      if (repair) {
        FileLock lock(locks_.get(), "branch." + b, true);
        st = read_state(b);
        st.info.stats = counted;
        save_state(st);
        r.repaired.push_back(fmt::format("branch \"{}\": recounted its size figures", b));
      } else {
        problem(fmt::format("branch \"{}\": records {} files / {} bytes but holds {} / {}", b,
                            st.info.stats.files, st.info.stats.bytes, counted.files,
                            counted.bytes));
      }
    }
  }
  // A receive that crashed (or runs now: repair waits for it).
  if (read_small_file(meta_.get(), "receiving")) {
    if (repair) {
      FileLock receiving(locks_.get(), "receive", true);
      sweep_receive();
      r.repaired.push_back("removed what an interrupted receive left");
    } else {
      r.leftovers.push_back(
          "a receive is running or was interrupted (the next receive or fsck --repair removes "
          "what it left)");
    }
  }
  // Leftovers: trees with no metadata (a crash between the two steps).
  for (auto& id : backend_->list_commit_trees()) {
    if (ids.count(id)) continue;
    if (repair) {
      backend_->delete_commit_tree(id);
      r.repaired.push_back(fmt::format("removed the tree of unfinished commit {}", id));
    } else {
      r.leftovers.push_back(
          fmt::format("tree {} belongs to no commit (left by an interrupted operation; fsck "
                      "--repair removes it)",
                      id));
    }
  }
  for (auto& b : backend_->list_branch_trees()) {
    if (names.count(b)) continue;
    if (repair) {
      backend_->delete_branch_tree(b);
      r.repaired.push_back(fmt::format("removed the working tree of deleted branch \"{}\"", b));
    } else {
      r.leftovers.push_back(
          fmt::format("working tree \"{}\" belongs to no branch (left by an interrupted branch "
                      "operation; fsck --repair removes it)",
                      b));
    }
  }
  return r;
}

}  // namespace pfs::detail
