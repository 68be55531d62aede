// gc_check.cc: maintenance of the portable backend: gc removes the objects
// that no branch and no commit reaches; check (fsck) re-hashes every object
// and follows every tree to the objects it names.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <unordered_set>
#include <utility>

#include "names.h"
#include "portable.h"

namespace pfs::detail::portable {
namespace {

// Adds every object reachable from tree `hash` to `live`.
void mark(const Objects& objects, const std::string& hash, std::unordered_set<std::string>& live,
          const std::string& what) {
  if (!live.insert(hash).second) return;
  std::vector<std::string> pages;
  Manifest m = objects.manifest(hash, what, &pages);
  live.insert(pages.begin(), pages.end());
  for (const auto& [name, e] : m) {
    if (e.is_dir()) {
      mark(objects, e.hash, live, what);
    } else if (live.insert(e.hash).second && e.type == 'c') {
      for (const auto& c : objects.chunks(e.hash, what)) live.insert(c.hash);
    }
  }
}

void check_tree(const Objects& objects, const std::string& hash, const std::string& dir,
                const std::string& what, std::unordered_set<std::string>& seen,
                const std::unordered_set<std::string>& bad, FsckReport& report) {
  if (!seen.insert(hash).second) return;
  auto missing = [&](const std::string& h, const std::string& path) {
    if (bad.count(h) || !objects.exists(h)) {
      report.problems.push_back(fmt::format("{}: object {} of \"{}\" is {}", what, h,
                                            path.empty() ? "/" : path,
                                            bad.count(h) ? "corrupt" : "missing"));
      return true;
    }
    return false;
  };
  if (missing(hash, dir)) return;
  Manifest m;
  std::vector<std::string> pages;
  try {
    m = objects.manifest(hash, what, &pages);
  } catch (const Fail& f) {
    report.problems.push_back(fmt::format("{}: {}", what, f.error.message));
    return;
  }
  // Equal directories must have equal hashes (diff and dedup rely on it):
  // a directory is paged exactly when it is large, at the canonical ends.
  std::vector<std::string> canonical;
  if (m.size() > kLeafMax)
    for (const auto& r : paginate(m, [](const std::string& text) { return hash_bytes(text); }))
      canonical.push_back(r.hash);
  if (pages != canonical)
    report.problems.push_back(fmt::format("{}: directory \"{}\" (object {}) is not stored in its "
                                          "canonical form", what, dir.empty() ? "/" : dir, hash));
  for (const auto& [name, e] : m) {
    std::string path = path_join(dir, name);
    if (e.is_dir()) {
      check_tree(objects, e.hash, path, what, seen, bad, report);
    } else if (seen.insert(e.hash).second && !missing(e.hash, path) && e.type == 'c') {
      try {
        std::uint64_t total = 0;
        for (const auto& c : objects.chunks(e.hash, what)) {
          total += c.size;
          if (seen.insert(c.hash).second) missing(c.hash, path);
        }
        if (total != e.size)
          report.problems.push_back(fmt::format(
              "{}: \"{}\" records {} bytes but its chunks hold {}", what, path, e.size, total));
      } catch (const Fail& f) {
        report.problems.push_back(fmt::format("{}: {}", what, f.error.message));
      }
    }
  }
}

// Calls fn(shard fd, file name, hash) for every file in objects/; hash is
// empty for temporary files.
template <typename Fn>
void for_each_object(const Objects& objects, Fn fn) {
  for (const auto& shard : list_dir_names(objects.fd())) {
    if (shard.size() != 2) continue;
    UniqueFd sfd = open_dir(objects.fd(), shard);
    for (const auto& name : list_dir_names(sfd.get())) {
      std::string hash = shard + name;
      fn(sfd.get(), name, is_hash(hash) ? hash : std::string());
    }
  }
}

}  // namespace

GcReport PortableBackend::gc() {
  UniqueFd lock = gc_lock(top_.get(), true);  // waits for writers to reference their objects
  std::unordered_set<std::string> live;
  // A reference that cannot be followed stops gc: what it would reach is
  // unknown, so nothing may be removed.
  for (auto [dir, kind] : {std::pair{commits_.get(), "commit"}, std::pair{branches_.get(), "branch"}})
    for (const auto& name : ref_names(dir)) {
      std::string what = fmt::format("{} {}", kind, name);
      auto r = read_ref(dir, name, what);
      if (r) mark(objects_, r->root, live, what);
    }
  GcReport rep;
  for_each_object(objects_, [&](int shard, const std::string& name, const std::string& hash) {
    auto st = stat_at(shard, name);
    std::uint64_t size = st ? static_cast<std::uint64_t>(st->st_size) : 0;
    if (!hash.empty() && live.count(hash)) {
      rep.objects_kept++;
      rep.bytes_kept += size;
      return;
    }
    if (unlink_if_exists(shard, name) && !hash.empty()) {  // temporary files are not counted
      rep.objects_removed++;
      rep.bytes_removed += size;
    }
  });
  return rep;
}

void PortableBackend::check(FsckReport& report, bool repair) {
  std::unordered_set<std::string> bad;
  std::uint64_t temps = 0;
  std::vector<char> buf(1 << 20);
  for_each_object(objects_, [&](int shard, const std::string& name, const std::string& hash) {
    if (hash.empty()) {
      temps++;
      return;
    }
    UniqueFd fd(::openat(shard, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) fail_errno(errno, "open object " + hash);
    Hasher h;
    for (;;) {
      ssize_t n = ::read(fd.get(), buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail_errno(errno, "read object " + hash);
      if (n == 0) break;
      h.update(buf.data(), static_cast<std::size_t>(n));
    }
    if (h.hex() == hash) return;
    if (repair) {  // from now on it is simply missing
      unlink_if_exists(shard, name);
      report.repaired.push_back(fmt::format(
          "removed corrupt object {}: uploading the same content again restores it", hash));
    } else {
      bad.insert(hash);
      report.problems.push_back(fmt::format(
          "object {} is corrupt: its bytes do not match its hash (fsck --repair removes it)",
          hash));
    }
  });
  if (temps > 0) {
    // Temporary files of live writers must stay: only when no writer holds
    // the gc lock are they all leftovers. (Never wait for it here: a
    // writer may be waiting for the graph lock that fsck --repair holds.)
    UniqueFd lock(::openat(top_.get(), "gc.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (repair && lock && flock_fd(lock.get(), true, false)) {
      for_each_object(objects_, [&](int shard, const std::string& name, const std::string& hash) {
        if (hash.empty()) unlink_if_exists(shard, name);
      });
      report.repaired.push_back(
          fmt::format("removed {} temporary object file(s) of interrupted uploads", temps));
    } else {
      report.leftovers.push_back(fmt::format(
          "{} temporary object file(s) of uploads in progress or interrupted (pachctl gc "
          "removes those of interrupted ones)",
          temps));
    }
  }
  // Every object a tree names must be there and intact.
  std::unordered_set<std::string> seen;
  for (auto [dir, kind] : {std::pair{commits_.get(), "commit"}, std::pair{branches_.get(), "branch"}}) {
    for (const auto& name : ref_names(dir)) {
      std::string what = fmt::format("{} {}", kind, name);
      try {
        auto r = read_ref(dir, name, what);
        if (r) check_tree(objects_, r->root, "", what, seen, bad, report);
      } catch (const Fail& f) {
        report.problems.push_back(f.error.message);
      }
    }
  }
}

}  // namespace pfs::detail::portable
