// diff_merge.cc: the difference of two trees, and merging one branch into
// another: the merge base (ancestry of the commit graph), a three-way
// comparison, and applying the other side's changes in a work tree.
#include "local_store.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <future>
#include <map>
#include <span>
#include <unordered_set>

#include <fmt/format.h>

#include "names.h"

namespace pfs::detail {

namespace {

bool same_bytes(TreeReader& a, TreeReader& b, const std::string& path) {
  auto fa = a.open_file(path), fb = b.open_file(path);
  if (fa->size() != fb->size()) return false;
  std::vector<char> ba(1 << 16), bb(1 << 16);
  std::uint64_t off = 0;
  for (;;) {
    std::size_t na = fa->pread(ba, off);
    if (na == 0) return off == fb->size();
    std::size_t got = 0;
    while (got < na) {
      std::size_t nb = fb->pread(std::span<char>(bb.data() + got, na - got), off + got);
      if (nb == 0) return false;
      got += nb;
    }
    if (std::memcmp(ba.data(), bb.data(), na) != 0) return false;
    off += na;
  }
}

bool same_file(TreeReader& a, const Entry& ea, TreeReader& b, const Entry& eb) {
  if (!ea.identity.empty() && ea.identity == eb.identity) return true;
  if (ea.identity_is_content && eb.identity_is_content) return false;
  if (ea.info.size != eb.info.size) return false;
  return same_bytes(a, b, ea.info.path);
}

void add_all(TreeReader& t, const Entry& e, DiffEntry::Change change, std::vector<DiffEntry>& out) {
  if (e.info.type == FileInfo::Type::kDirectory) {
    for (const auto& c : t.list(e.info.path)) add_all(t, c, change, out);
    return;
  }
  DiffEntry d;
  d.change = change;
  d.path = e.info.path;
  if (change == DiffEntry::Change::kDeleted)
    d.old_size = e.info.size;
  else
    d.new_size = e.info.size;
  out.push_back(std::move(d));
}

void diff_dir(TreeReader& a, TreeReader& b, const std::string& dir, std::vector<DiffEntry>& out) {
  // The two listings at the top two levels at once, on two threads: each
  // is a stat per entry, and a new commit's are not cached yet (a diff of
  // two 100,000-file commits: 2.2 -> ~1.3 s on two cores). Deeper folders
  // are usually small, where a thread would cost more than it saves.
  std::vector<Entry> la, lb;
  if (std::count(dir.begin(), dir.end(), '/') < 1) {
    auto fa = std::async(std::launch::async, [&] { return a.list(dir); });
    lb = b.list(dir);
    la = fa.get();
  } else {
    la = a.list(dir);
    lb = b.list(dir);
  }
  std::size_t i = 0, j = 0;
  while (i < la.size() || j < lb.size()) {
    if (j == lb.size() || (i < la.size() && la[i].info.path < lb[j].info.path)) {
      add_all(a, la[i++], DiffEntry::Change::kDeleted, out);
    } else if (i == la.size() || lb[j].info.path < la[i].info.path) {
      add_all(b, lb[j++], DiffEntry::Change::kAdded, out);
    } else {
      const Entry& ea = la[i++];
      const Entry& eb = lb[j++];
      bool da = ea.info.type == FileInfo::Type::kDirectory;
      bool db = eb.info.type == FileInfo::Type::kDirectory;
      if (da && db) {
        if (ea.identity.empty() || ea.identity != eb.identity) diff_dir(a, b, ea.info.path, out);
      } else if (da != db) {
        add_all(a, ea, DiffEntry::Change::kDeleted, out);
        add_all(b, eb, DiffEntry::Change::kAdded, out);
      } else if (!same_file(a, ea, b, eb)) {
        out.push_back({DiffEntry::Change::kModified, ea.info.path, ea.info.size, eb.info.size});
      }
    }
  }
}

std::vector<DiffEntry> diff_trees(TreeReader& a, TreeReader& b) {
  std::vector<DiffEntry> out;
  diff_dir(a, b, "", out);
  std::stable_sort(out.begin(), out.end(),
                   [](const DiffEntry& x, const DiffEntry& y) { return x.path < y.path; });
  return out;
}

// Copies `path` from theirs into the work tree; false when a file stands
// where a directory must go (or back) and the strategy does not settle it.
bool apply_copy(WorkTree& work, TreeReader& theirs, const std::string& path,
                MergeOptions::Strategy strategy) {
  auto existing = work.reader().stat(path);
  bool blocked = existing && existing->info.type == FileInfo::Type::kDirectory;
  std::string blocker = blocked ? path : std::string();
  for (std::string d = path_parent(path); !blocked && !d.empty(); d = path_parent(d)) {
    auto e = work.reader().stat(d);
    if (e && e->info.type == FileInfo::Type::kFile) {
      blocked = true;
      blocker = d;
    }
  }
  if (blocked) {
    if (strategy != MergeOptions::Strategy::kTheirs) return false;
    work.remove(blocker);
  }
  work.copy_file_from(theirs, path);
  return true;
}

}  // namespace

Result<std::vector<DiffEntry>> LocalStore::diff(const Ref& from, const Ref& to) {
  return guard([&] {
    auto a = open_ref(from);
    auto b = open_ref(to);
    return diff_trees(*a, *b);
  });
}

Result<MergeResult> LocalStore::merge(std::string_view into, std::string_view from,
                                      const MergeOptions& opts) {
  return guard([&] {
    std::string b(into), f(from);
    check_branch_name(b);
    check_branch_name(f);
    if (b == f)
      failf(ErrorCode::kInvalidArgument,
            "cannot merge branch \"{}\" into itself; name another branch to merge from", b);
    FileLock graph(locks_.get(), "graph", false);
    FileLock lock(locks_.get(), "branch." + b, true);
    BranchState st = load_and_recover(b);
    BranchState theirs_st = read_state(f);
    if (st.info.dirty)
      failf(ErrorCode::kConflict,
            "branch \"{}\" has uncommitted changes; commit them first (pachctl commit -b {})", b,
            b);
    MergeResult result;
    const std::string& ours_id = st.info.head;
    const std::string& theirs_id = theirs_st.info.head;
    if (theirs_id.empty() || theirs_id == ours_id || is_ancestor(theirs_id, ours_id)) {
      result.up_to_date = true;
      return result;
    }
    result.base = merge_base(ours_id, theirs_id);
    auto base = tree_of(result.base);
    auto ours = tree_of(ours_id);
    auto theirs = tree_of(theirs_id);
    auto ours_changes = diff_trees(*base, *ours);
    std::map<std::string, DiffEntry> ours_by_path;
    for (auto& d : ours_changes) ours_by_path[d.path] = d;
    std::vector<DiffEntry> take;
    for (auto& d : diff_trees(*base, *theirs)) {
      auto it = ours_by_path.find(d.path);
      if (it == ours_by_path.end()) {
        take.push_back(d);
        continue;
      }
      const DiffEntry& o = it->second;
      bool both_deleted =
          d.change == DiffEntry::Change::kDeleted && o.change == DiffEntry::Change::kDeleted;
      bool same_content = d.change != DiffEntry::Change::kDeleted &&
                          o.change != DiffEntry::Change::kDeleted &&
                          same_file(*ours, *ours->stat(d.path), *theirs, *theirs->stat(d.path));
      if (both_deleted || same_content) continue;
      result.conflicts.push_back(d.path);
      if (opts.on_conflict == MergeOptions::Strategy::kTheirs) take.push_back(d);
    }
    if (!result.conflicts.empty() && opts.on_conflict == MergeOptions::Strategy::kFail)
      return result;
    CommitInfo c;
    c.id = random_hex(kCommitIdLength / 2);
    c.parent = ours_id;
    c.merge_parent = theirs_id;
    c.branch = b;
    c.time_ns = now_ns();
    c.message = opts.message.empty() ? fmt::format("merge {} into {}", f, b) : opts.message;
    try {
      return apply_merge(st, c, take, *theirs, opts, result);
    } catch (...) {
      rollback(st);
      throw;
    }
  });
}

MergeResult LocalStore::apply_merge(BranchState& st, CommitInfo& c,
                                    const std::vector<DiffEntry>& take, TreeReader& theirs,
                                    const MergeOptions& opts, MergeResult result) {
  auto work = begin_work(st, "merge", c.id, c.parent);
  std::vector<std::string> clashes;
  for (auto& d : take) {
    if (d.change == DiffEntry::Change::kDeleted) {
      work->remove(d.path);
    } else if (!apply_copy(*work, theirs, d.path, opts.on_conflict)) {
      clashes.push_back(d.path);
      continue;
    }
    result.applied.push_back(d);
  }
  if (!clashes.empty()) {  // a file where the other side has a directory, or back
    result.conflicts.insert(result.conflicts.end(), clashes.begin(), clashes.end());
    std::sort(result.conflicts.begin(), result.conflicts.end());
    if (opts.on_conflict == MergeOptions::Strategy::kFail) {
      work.reset();
      abandon_work(st);
      result.applied.clear();
      return result;
    }
  }
  c.stats = count_tree(work->reader());
  backend_->freeze(*work, c.id);
  finish_work(st, c);
  result.commit = c;
  return result;
}

// ---- ancestry -------------------------------------------------------------------

std::vector<std::string> LocalStore::parents_of(const std::string& id) {
  auto c = read_commit(id);
  if (!c) return {};
  std::vector<std::string> out;
  if (!c->parent.empty()) out.push_back(c->parent);
  if (!c->merge_parent.empty()) out.push_back(c->merge_parent);
  return out;
}

std::vector<std::string> LocalStore::ancestors_bfs(const std::string& start) {
  std::vector<std::string> order;
  std::unordered_set<std::string> seen;
  std::deque<std::string> q;
  if (!start.empty()) q.push_back(start);
  while (!q.empty()) {
    std::string id = q.front();
    q.pop_front();
    if (!seen.insert(id).second) continue;
    order.push_back(id);
    for (auto& p : parents_of(id)) q.push_back(p);
  }
  return order;
}

bool LocalStore::is_ancestor(const std::string& a, const std::string& b) {
  for (auto& id : ancestors_bfs(b))
    if (id == a) return true;
  return false;
}

std::string LocalStore::merge_base(const std::string& a, const std::string& b) {
  auto from_b = ancestors_bfs(b);
  std::unordered_set<std::string> set_b(from_b.begin(), from_b.end());
  for (auto& id : ancestors_bfs(a))
    if (set_b.count(id)) return id;
  return {};
}

}  // namespace pfs::detail
