// portable_backend.cc: trees as content-addressed objects in plain files, on
// any file system, without root. This file holds the layout, the ref files of
// branches and commits, and the Backend calls that move them; the rest is in
// objects.cc, chunking.cc, manifest.cc, portable_tree.cc, staging.cc and
// gc_check.cc (portable.h declares what they share).
//
//   portable/objects/<2 hex>/<62 hex>   an object, named by the SHA-256 of its
//                                       bytes: a file's content (or one chunk
//                                       of it), a chunk list, or a directory
//                                       manifest; never changed once there
//   portable/objects/<2 hex>/.tmp.*     objects being written
//   portable/branches/<name>            a branch's working tree: a ref file,
//                                       "pfs-ref 1 <root manifest hash>\n"
//   portable/commits/<id>               a commit's tree: a ref file
//   portable/gc.lock                    flock: shared by every writer of
//                                       objects until it has referenced them,
//                                       exclusive by gc
//
// A tree is a manifest per directory; unchanged files and directories keep
// their hashes, so a commit shares them with its parent and costs what
// changed. Commit, branch and revert write one ref file: O(1). Files larger
// than kMinChunk are cut into content-defined chunks (a gear rolling hash, as
// in FastCDC), so a change inside a big file stores only the chunks around it.
// See docs/format.md for the formats.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "portable.h"

namespace pfs::detail::portable {

// ---- refs -------------------------------------------------------------------

std::string ref_text(const std::string& root, std::int64_t mtime) {
  return fmt::format("{}{} {}\n", kRefMagic, root, mtime);
}

std::optional<TreeRef> read_ref(int dirfd, const std::string& name, std::string_view what) {
  auto text = read_small_file(dirfd, name);
  if (!text) return std::nullopt;
  std::string_view t = *text, magic = kRefMagic;
  TreeRef r;
  bool ok = t.substr(0, magic.size()) == magic && t.size() > magic.size() + 66 &&
            t[magic.size() + 64] == ' ' && t.back() == '\n';
  if (ok) {
    r.root = std::string(t.substr(magic.size(), 64));
    std::string_view num = t.substr(magic.size() + 65, t.size() - magic.size() - 66);
    ok = is_hash(r.root) && !num.empty() && num.size() <= 19;
    for (char c : num) {
      if (c < '0' || c > '9') ok = false;
      else r.mtime_ns = r.mtime_ns * 10 + (c - '0');
    }
  }
  if (!ok) failf(ErrorCode::kCorruption, "the tree reference of {} is unreadable; run pachctl fsck", what);
  return r;
}

UniqueFd gc_lock(int top, bool exclusive) {
  UniqueFd fd(::openat(top, "gc.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) fail_errno(errno, "open portable/gc.lock");
  flock_fd(fd.get(), exclusive);
  return fd;
}

// ---- trees of branches and commits ------------------------------------------

PortableBackend::PortableBackend(int store_fd)
    : top_(open_dir(store_fd, "portable")),
      objects_(open_dir(top_.get(), "objects")),
      branches_(open_dir(top_.get(), "branches")),
      commits_(open_dir(top_.get(), "commits")) {}

std::string_view PortableBackend::name() const { return "portable"; }

std::unique_ptr<TreeReader> PortableBackend::open_commit(const std::string& id) {
  std::string what = "commit " + id.substr(0, 12);
  auto r = read_ref(commits_.get(), id, what);
  if (!r) failf(ErrorCode::kNotFound, "the tree of commit {} is missing (run pachctl fsck)", id);
  return tree(*r, what);
}

std::unique_ptr<TreeReader> PortableBackend::open_branch(const std::string& branch) {
  std::string what = fmt::format("branch \"{}\"", branch);
  auto r = read_ref(branches_.get(), branch, what);
  if (!r)
    failf(ErrorCode::kNotFound,
          "branch \"{}\" not found (list branches with: pachctl list-branch)", branch);
  return tree(*r, what);
}

bool PortableBackend::has_commit_tree(const std::string& id) {
  return stat_at(commits_.get(), id).has_value();
}
bool PortableBackend::has_branch_tree(const std::string& b) {
  return stat_at(branches_.get(), b).has_value();
}
std::vector<std::string> PortableBackend::list_commit_trees() { return ref_names(commits_.get()); }
std::vector<std::string> PortableBackend::list_branch_trees() { return ref_names(branches_.get()); }

void PortableBackend::create_branch_tree(const std::string& branch, const std::string& from) {
  UniqueFd lock = gc_lock(top_.get(), false);
  TreeRef r = from.empty() ? empty_tree() : must_ref(commits_.get(), from, "commit " + from);
  write_file_atomic(branches_.get(), branch, ref_text(r.root, now_ns()));
}

void PortableBackend::delete_branch_tree(const std::string& branch) {
  if (unlink_if_exists(branches_.get(), branch)) fsync_dir(branches_.get());
}

void PortableBackend::reset_branch_tree(const std::string& branch, const std::string& id) {
  UniqueFd lock = gc_lock(top_.get(), false);
  TreeRef r = must_ref(commits_.get(), id, "commit " + id);
  crash_point("reset.before-exchange");
  write_file_atomic(branches_.get(), branch, ref_text(r.root, now_ns()));  // atomic
  crash_point("reset.after-exchange");
}

TreeStats PortableBackend::remove(const std::string& branch, const std::string& path) {
  UniqueFd lock = gc_lock(top_.get(), false);
  auto r = read_ref(branches_.get(), branch, "branch " + branch);
  if (!r)
    failf(ErrorCode::kNotFound,
          "branch \"{}\" not found (list branches with: pachctl list-branch)", branch);
  PTree t(objects_, r->root, fmt::format("branch \"{}\"", branch));
  if (!t.get(path)) failf(ErrorCode::kNotFound, "\"{}\" not found in branch \"{}\"", path, branch);
  TreeStats removed = t.remove(path);
  ObjectWriter w(objects_);
  save_branch(branch, t, w);
  return removed;
}

void PortableBackend::snapshot(const std::string& branch, const std::string& id) {
  UniqueFd lock = gc_lock(top_.get(), false);
  auto r = read_ref(branches_.get(), branch, "branch " + branch);
  if (!r)
    failf(ErrorCode::kNotFound,
          "branch \"{}\" not found (list branches with: pachctl list-branch)", branch);
  write_file_atomic(commits_.get(), id, ref_text(r->root, r->mtime_ns));
  crash_point("snapshot.after-create");
}

void PortableBackend::delete_commit_tree(const std::string& id) {
  if (unlink_if_exists(commits_.get(), id)) fsync_dir(commits_.get());
}

std::unique_ptr<TreeReader> PortableBackend::tree(const TreeRef& r, const std::string& what) {
  auto t = std::make_unique<PTree>(objects_, r.root, what);
  t->set_root_mtime(r.mtime_ns);
  return t;
}

TreeRef PortableBackend::must_ref(int dir, const std::string& name, const std::string& what) {
  auto r = read_ref(dir, name, what);
  if (!r) failf(ErrorCode::kNotFound, "the tree of {} is missing (run pachctl fsck)", what);
  return *r;
}

TreeRef PortableBackend::empty_tree() {
  ObjectWriter w(objects_);
  TreeRef r{w.put(serialize({})), now_ns()};
  w.commit();
  return r;
}

std::vector<std::string> PortableBackend::ref_names(int dir) {
  std::vector<std::string> out;
  for (auto& n : list_dir_names(dir))
    if (n[0] != '.') out.push_back(std::move(n));  // .tmp.* are refs being written
  return out;
}

void PortableBackend::save_branch(const std::string& branch, PTree& t, ObjectWriter& w) {
  std::string root = t.write(w);
  w.commit();
  crash_point("portable.before-ref");
  write_file_atomic(branches_.get(), branch, ref_text(root, now_ns()));
}

}  // namespace pfs::detail::portable

namespace pfs::detail {

void init_portable_backend(int store_fd) {
  if (::mkdirat(store_fd, "portable", 0755) != 0) fail_errno(errno, "create portable/");
  UniqueFd top = open_dir(store_fd, "portable");
  for (const char* d : {"objects", "branches", "commits"})
    if (::mkdirat(top.get(), d, 0755) != 0) fail_errno(errno, std::string("create portable/") + d);
  UniqueFd objects = open_dir(top.get(), "objects");
  for (int i = 0; i < 256; i++) {
    std::string shard = fmt::format("{:02x}", i);
    if (::mkdirat(objects.get(), shard.c_str(), 0755) != 0)
      fail_errno(errno, "create portable/objects/" + shard);
  }
  UniqueFd lock(::openat(top.get(), "gc.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock) fail_errno(errno, "create portable/gc.lock");
  if (::syncfs(top.get()) != 0) fail_errno_at(errno, "sync", top.get());
}

std::unique_ptr<Backend> open_portable_backend(int store_fd) {
  return std::make_unique<portable::PortableBackend>(store_fd);
}

}  // namespace pfs::detail
