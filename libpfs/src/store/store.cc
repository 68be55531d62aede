// store.cc: the Store. On-disk layout and the commit protocol are described
// in docs/format.md; keep the two in step.
#include "store.h"
#include "fault_backend.h"
#include "file_cache.h"
#include "local_dir.h"

#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <unordered_set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <pfs/json.h>
#include <nlohmann/json.hpp>

#include "names.h"
#include "replication.h"

namespace pfs::detail {

using nlohmann::json;

namespace {

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
std::string writing_what(const std::string& path, const std::string& branch) {
  return fmt::format("writing \"{}\" on branch \"{}\"", path.empty() ? "." : path, branch);
}
std::string receiving_what(bool replica, const std::string& id, const std::string& branch) {
  return replica ? "receiving commit " + id : fmt::format("receiving on branch \"{}\"", branch);
}

// A branch's state file: its head plus the journal of an interrupted
// multi-step operation (pending_*, stats_stale). See docs/format.md.
struct BranchState {
  BranchInfo info;
  std::string pending_op;    // "commit", "revert" or "merge" while one runs
  std::string pending_id;    // the commit it is creating
  bool stats_stale = false;  // a write was being published
};

json state_to_json(const BranchState& s) {
  json j = s.info;
  j["pending_op"] = s.pending_op.empty() ? json(nullptr) : json(s.pending_op);
  j["pending_id"] = s.pending_id.empty() ? json(nullptr) : json(s.pending_id);
  j["stats_stale"] = s.stats_stale;
  j["format"] = kFormatVersion;
  return j;
}

class FileLock {
 public:
  FileLock(int locks_dir, const std::string& name, bool exclusive) {
    fd_.reset(::openat(locks_dir, name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!fd_) fail_errno(errno, "open lock " + name);
    flock_fd(fd_.get(), exclusive);
  }

 private:
  UniqueFd fd_;
};


// An empty tree, for diffs and merges against "nothing".
class EmptyTree final : public TreeReader {
 public:
  std::optional<Entry> stat(const std::string& path) override {
    if (path.empty()) {
      Entry e;
      e.info.type = FileInfo::Type::kDirectory;
      return e;
    }
    return std::nullopt;
  }
  std::vector<Entry> list(const std::string& dir) override {
    if (!dir.empty()) failf(ErrorCode::kNotFound, "\"{}\" not found in the empty tree", dir);
    return {};
  }
  std::unique_ptr<FileReader> open_file(const std::string& path) override {
    failf(ErrorCode::kNotFound, "file \"{}\" not found (the tree is empty)", path);
  }
};

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
  auto la = a.list(dir), lb = b.list(dir);
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

// Copies `len` bytes (to the end when nullopt) from offset `off` of a file.
void copy_out(FileReader& in, std::uint64_t off, std::optional<std::uint64_t> len, Sink& sink) {
  std::uint64_t size = in.size();
  std::uint64_t left = len ? *len : size - off;
  int in_fd = in.fd();
  if (sink.fd() >= 0 && in_fd >= 0) {
    if (off == 0 && !len) {
      copy_fd(in_fd, sink.fd());
      return;
    }
    off_t pos = static_cast<off_t>(off);
    while (left > 0) {
      ssize_t n = ::sendfile(sink.fd(), in_fd, &pos, std::min<std::uint64_t>(left, 1 << 30));
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EINVAL || errno == ENOSYS) break;  // fall back to read/write
        fail_errno(errno, "write output");
      }
      if (n == 0) return;
      left -= static_cast<std::uint64_t>(n);
    }
    if (left == 0) return;
    off = static_cast<std::uint64_t>(pos);
  }
  std::vector<char> buf(1 << 20);
  while (left > 0) {
    std::size_t n =
        in.pread(std::span<char>(buf.data(), std::min<std::uint64_t>(left, buf.size())), off);
    if (n == 0) break;
    unwrap(sink.write(std::span<const char>(buf.data(), n)));
    off += static_cast<std::uint64_t>(n);
    left -= static_cast<std::uint64_t>(n);
  }
}

// An open file: the backend's reader, which keeps the bytes it was opened on.
class LocalFileHandle final : public FileHandle {
 public:
  LocalFileHandle(FileInfo info, std::unique_ptr<FileReader> reader)
      : info_(std::move(info)), reader_(std::move(reader)) {}
  const FileInfo& info() const override { return info_; }
  Result<std::size_t> read_at(std::uint64_t offset, std::span<char> buf) override {
    return guard([&]() -> std::size_t {
      if (offset >= reader_->size()) return 0;
      std::size_t want = static_cast<std::size_t>(
          std::min<std::uint64_t>(buf.size(), reader_->size() - offset));
      std::size_t got = 0;
      while (got < want) {  // a chunked file's pread stops at a chunk's end
        std::size_t n = reader_->pread(buf.subspan(got, want - got), offset + got);
        if (n == 0) break;
        got += n;
      }
      return got;
    });
  }

 private:
  FileInfo info_;
  std::unique_ptr<FileReader> reader_;
};

// A small file of a commit, from the cache (file_cache.h).
class CachedFileHandle final : public FileHandle {
 public:
  CachedFileHandle(FileInfo info, std::shared_ptr<const std::string> bytes)
      : info_(std::move(info)), bytes_(std::move(bytes)) {}
  const FileInfo& info() const override { return info_; }
  Result<std::size_t> read_at(std::uint64_t offset, std::span<char> buf) override {
    if (offset >= bytes_->size()) return std::size_t{0};
    std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), bytes_->size() - offset));
    std::memcpy(buf.data(), bytes_->data() + offset, n);
    return n;
  }

 private:
  FileInfo info_;
  std::shared_ptr<const std::string> bytes_;
};

class LocalStore final : public Client {
 public:
  LocalStore(std::filesystem::path path, UniqueFd root, std::unique_ptr<Backend> backend)
      : path_(std::move(path)), root_(std::move(root)), backend_(std::move(backend)) {
    meta_ = open_dir(root_.get(), "meta");
    commits_ = open_dir(meta_.get(), "commits");
    branches_ = open_dir(meta_.get(), "branches");
    locks_ = open_dir(root_.get(), "locks");
  }

  void enable_file_cache(std::size_t bytes) { file_cache_ = std::make_unique<CommitFileCache>(bytes); }

  Result<StoreInfo> info() override {
    return guard([&] {
      StoreInfo s;
      s.path = path_.string();
      s.backend = std::string(backend_->name());
      s.format = kFormatVersion;
      s.commits = commit_ids().size();
      s.branches = branch_names().size();
      return s;
    });
  }

  // ---- files --------------------------------------------------------------

  Result<FileInfo> put_file(std::string_view branch, std::string_view path, Source& src,
                            const PutOptions& opts) override {
    return guard([&] {
      std::string b(branch);
      check_branch_name(b);
      std::string p = normalize_path(path);
      if (opts.append && opts.offset)
        fail(ErrorCode::kInvalidArgument, "append and offset exclude each other; pick one");
      read_state(b);  // fail early, before staging any data
      Backend::Placement where;
      if (opts.append) where.mode = Backend::Placement::Mode::kAppend;
      if (opts.offset) {
        where.mode = Backend::Placement::Mode::kAt;
        where.offset = *opts.offset;
        // Checked again under the lock; this is to fail before the upload.
        check_offset(*backend_->open_branch(b), b, p, where.offset);
      }
      auto staged = backend_->stage(b, where.mode == Backend::Placement::Mode::kReplace
                                           ? Backend::StageKind::kFile
                                           : Backend::StageKind::kPart);
      naming([&] { return writing_what(p, b); }, [&] {
        staged->add("", src);
        staged->sync();
        publish(b, *staged, p, where);
      });
      return stat_in(*backend_->open_branch(b), p);
    });
  }

  Result<PutDirResult> put_dir(std::string_view branch, std::string_view path,
                               const std::filesystem::path& local_dir) override {
    return guard([&] {
      std::string b(branch);
      check_branch_name(b);
      std::string p = normalize_path(path, true);
      read_state(b);
      UniqueFd dir = open_input_dir(local_dir);
      PutDirResult result;
      auto staged = backend_->stage(b, Backend::StageKind::kDir);
      naming([&] { return writing_what(p, b); }, [&] {
        add_local_dir(*staged, dir.get(), "", p, result, local_dir.string());
        staged->sync();
        if (result.files > 0) publish(b, *staged, p, {});
      });
      return result;
    });
  }

  Result<PutDirResult> put_files(std::string_view branch, std::string_view path,
                                 FileBatch& files) override {
    return guard([&] {
      std::string b(branch);
      check_branch_name(b);
      std::string p = normalize_path(path, true);
      read_state(b);
      PutDirResult result;
      auto staged = backend_->stage(b, Backend::StageKind::kDir);
      std::string rel;
      for (;;) {
        Source* src = unwrap(files.next(rel));
        if (!src) break;
        std::string r = normalize_path(rel);
        normalize_path(p.empty() ? r : p + "/" + r);  // the whole path: its length, reserved names
        result.bytes += naming([&] { return writing_what(p.empty() ? r : p + "/" + r, b); },
                               [&] { return staged->add(r, *src); });
        result.files += 1;
      }
      naming([&] { return writing_what(p, b); }, [&] {
        staged->sync();
        if (result.files > 0) publish(b, *staged, p, {});
      });
      return result;
    });
  }

  Result<std::unique_ptr<FileHandle>> open_file(const Ref& ref, std::string_view path) override {
    return guard([&]() -> std::unique_ptr<FileHandle> {
      std::string p = normalize_path(path);
      std::unique_ptr<FileReader> reader;
      FileInfo info;  // of what was opened, should the path have changed since
      info.path = p;
      info.type = FileInfo::Type::kFile;
      std::string cache_id;  // a commit's file: cached (file_cache.h)
      if (ref.kind == Ref::Kind::kCommit) {
        std::string id = resolve_commit(ref.name);
        if (file_cache_) {
          if (auto hit = file_cache_->get(id, p)) {
            info.size = hit->bytes->size();
            info.mtime_ns = hit->mtime_ns;
            return std::make_unique<CachedFileHandle>(std::move(info), std::move(hit->bytes));
          }
          cache_id = id;
        }
        reader = backend_->open_commit_file(id, p);
      } else if (ref.kind == Ref::Kind::kBranch) {
        check_branch_name(ref.name);
        read_state(ref.name);
        reader = backend_->open_branch_file(ref.name, p);
      } else {
        reader = open_ref(ref)->open_file(p);
      }
      info.size = reader->size();
      info.mtime_ns = reader->mtime_ns;
      auto handle = std::make_unique<LocalFileHandle>(std::move(info), std::move(reader));
      if (!cache_id.empty() && handle->info().size <= CommitFileCache::kMaxFile) {
        auto bytes = std::make_shared<std::string>(handle->info().size, '\0');
        auto got = handle->read_at(0, std::span<char>(bytes->data(), bytes->size()));
        if (got && *got == bytes->size()) {
          file_cache_->put(cache_id, p, {bytes, handle->info().mtime_ns});
          return std::make_unique<CachedFileHandle>(handle->info(), std::move(bytes));
        }
      }
      return handle;
    });
  }

  Result<FileInfo> get_file(const Ref& ref, std::string_view path, Sink& sink,
                            const ReadRange& range) override {
    return guard([&] {
      std::string p = normalize_path(path);
      auto tree = open_ref(ref);
      auto file = tree->open_file(p);
      FileInfo info = stat_in(*tree, p);
      std::uint64_t size = file->size();
      std::uint64_t len = check_read_range(size, range, p);
      copy_out(*file, range.offset, range.length ? std::optional(len) : std::nullopt, sink);
      return info;
    });
  }

  Result<TreeStats> get_dir(const Ref& ref, std::string_view path,
                            const std::filesystem::path& local_dir) override {
    return guard([&] {
      std::string p = normalize_path(path, true);
      auto tree = open_ref(ref);
      auto e = tree->stat(p);
      if (!e) failf(ErrorCode::kNotFound, "\"{}\" not found", p);
      if (e->info.type != FileInfo::Type::kDirectory)
        failf(ErrorCode::kInvalidArgument, "\"{}\" is a file; copy a file without -r", p);
      UniqueFd out = open_output_dir(local_dir);
      TreeStats copied;
      copy_dir_out(*tree, p, out.get(), copied, local_dir.string());
      if (::syncfs(out.get()) != 0) fail_errno(errno, "sync " + local_dir.string());
      return copied;
    });
  }

  Result<FileInfo> stat_file(const Ref& ref, std::string_view path) override {
    return guard([&] {
      std::string p = normalize_path(path, true);
      auto tree = open_ref(ref);
      return stat_in(*tree, p);
    });
  }

  Result<TreeStats> delete_file(std::string_view branch, std::string_view path) override {
    return guard([&] {
      std::string b(branch);
      check_branch_name(b);
      std::string p = normalize_path(path);
      FileLock graph(locks_.get(), "graph", false);
      FileLock lock(locks_.get(), "branch." + b, true);
      BranchState st = load_and_recover(b);
      if (!backend_->open_branch(b)->stat(p))
        failf(ErrorCode::kNotFound,
              "\"{}\" not found in branch \"{}\" (list files with: pachctl list-file -b {})", p, b,
              b);
      TreeStats removed = while_stale(st, [&] { return backend_->remove(b, p); });
      crash_point("delete.after-remove");
      st.info.stats.files -= std::min(st.info.stats.files, removed.files);
      st.info.stats.bytes -= std::min(st.info.stats.bytes, removed.bytes);
      st.info.dirty = true;
      st.stats_stale = false;
      save_state(st);
      return removed;
    });
  }

  Result<std::vector<FileInfo>> list_files(const Ref& ref, std::string_view dir_or_glob,
                                           const ListOptions& opts) override {
    return guard([&] {
      auto tree = open_ref(ref);
      std::vector<FileInfo> out;
      if (is_glob(dir_or_glob)) {
        std::string pattern = normalize_path(dir_or_glob);
        std::map<std::string, FileInfo> found;
        glob_walk(*tree, "", split_path(pattern), 0, found);
        for (auto& [_, f] : found) out.push_back(std::move(f));
        return out;
      }
      std::string p = normalize_path(dir_or_glob, true);
      auto e = tree->stat(p);
      if (!e) failf(ErrorCode::kNotFound, "\"{}\" not found in {}", p, describe(ref));
      if (e->info.type == FileInfo::Type::kFile) {
        out.push_back(e->info);
        return out;
      }
      list_into(*tree, p, opts.recursive, out);
      return out;
    });
  }

  // ---- commits --------------------------------------------------------------

  Result<CommitInfo> commit(std::string_view branch, std::string_view message) override {
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

  Result<std::vector<CommitInfo>> list_commits(const LogOptions& opts) override {
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
        if (!c) failf(ErrorCode::kCorruption, "commit {} is missing (run pachctl fsck)", id);
        id = c->parent;
        out.push_back(std::move(*c));
      }
      return out;
    });
  }

  Result<CommitInfo> inspect_commit(std::string_view commit) override {
    return guard([&] { return must_read_commit(resolve_commit(commit)); });
  }

  Result<void> delete_commit(std::string_view commit) override {
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
          failf(
              ErrorCode::kConflict,
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

  // ---- branches -------------------------------------------------------------

  Result<BranchInfo> create_branch(std::string_view name, std::string_view from) override {
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

  Result<std::vector<BranchInfo>> list_branches() override {
    return guard([&] {
      std::vector<BranchInfo> out;
      for (const auto& b : branch_names()) out.push_back(read_state(b).info);
      return out;
    });
  }

  Result<BranchInfo> inspect_branch(std::string_view name) override {
    return guard([&] {
      check_branch_name(name);
      return read_state(std::string(name)).info;
    });
  }

  Result<void> delete_branch(std::string_view name) override {
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

  // ---- history --------------------------------------------------------------

  Result<std::vector<DiffEntry>> diff(const Ref& from, const Ref& to) override {
    return guard([&] {
      auto a = open_ref(from);
      auto b = open_ref(to);
      return diff_trees(*a, *b);
    });
  }

  Result<CommitInfo> revert(std::string_view branch, std::string_view commit,
                            const RevertOptions& opts) override {
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

  Result<MergeResult> merge(std::string_view into, std::string_view from,
                            const MergeOptions& opts) override {
    return guard([&] {
      std::string b(into), f(from);
      check_branch_name(b);
      check_branch_name(f);
      if (b == f) fail(ErrorCode::kInvalidArgument, "cannot merge a branch into itself");
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

  MergeResult apply_merge(BranchState& st, CommitInfo& c, const std::vector<DiffEntry>& take,
                          TreeReader& theirs, const MergeOptions& opts, MergeResult result) {
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

  // ---- replication ----------------------------------------------------------

  Result<CommitInfo> send(std::string_view commit, Sink& out, const SendOptions& opts) override {
    return guard([&] {
      CommitInfo c = must_read_commit(resolve_commit(commit));
      std::optional<CommitInfo> p;
      if (!opts.parent.empty()) {
        p = must_read_commit(resolve_commit(opts.parent));
        if (p->id == c.id)
          failf(ErrorCode::kInvalidArgument,
                "commit {} cannot be sent against itself; name an older commit as the parent",
                c.id);
      }
      if (use_native_send() && backend_->send_native(c.id, p ? p->id : "", out)) return c;
      stream::StreamWriter w(out);
      auto tree = tree_of(c.id);
      StreamName self = stream_name_of(c);
      if (p) {
        auto parent_tree = tree_of(p->id);
        StreamName pn = stream_name_of(*p);
        send_tree(*tree, parent_tree.get(), self, &pn, w);
      } else {
        send_tree(*tree, nullptr, self, nullptr, w);
      }
      return c;
    });
  }

  Result<ReceiveResult> receive(Source& in, const ReceiveOptions& opts) override {
    return guard([&] {
      stream::StreamReader reader(in);
      stream::Command first;
      reader.next(first);  // subvol or snapshot: the reader allows nothing else first
      bool replica = opts.as_commit.has_value();
      CommitInfo c;
      if (replica) {
        c = *opts.as_commit;
        check_replica(c);
      } else {
        check_branch_name(opts.branch);
      }
      FileLock graph(locks_.get(), "graph", false);
      // A branch that receives is locked throughout, so that its head
      // cannot move under the new commit.
      std::optional<FileLock> branch_lock;
      std::optional<BranchState> st;
      if (!replica) {
        branch_lock.emplace(locks_.get(), "branch." + opts.branch, true);
        if (read_state_if_exists(opts.branch)) {
          st = load_and_recover(opts.branch);
          if (st->info.dirty)
            failf(ErrorCode::kConflict,
                  "branch \"{}\" has uncommitted changes; commit them first (pachctl commit -b "
                  "{}) or receive on another branch (-b)",
                  opts.branch, opts.branch);
        }
        c.id = random_hex(kCommitIdLength / 2);
        c.parent = st ? st->info.head : "";
        c.branch = opts.branch;
        c.time_ns = now_ns();
        c.message = fmt::format("received {}", first.path);
      }
      std::string base = receive_base(first, opts.parent);
      CommitInfo base_info;
      if (!base.empty()) base_info = must_read_commit(base);
      // One receive at a time; the one in progress is recorded so that the
      // next one (or fsck --repair) removes what a crashed one left.
      FileLock receiving(locks_.get(), "receive", true);
      if (replica && read_commit(c.id))
        failf(ErrorCode::kAlreadyExists, "commit {} exists already in this store", c.id);
      sweep_receive();
      // Not synced: it only tells what to sweep after a killed process (a
      // power failure also loses what it would name: the work is not synced).
      write_file_atomic(meta_.get(), "receiving", c.id + "\n", false);
      ReceiveResult res;
      try {
        auto base_tree = base.empty() ? std::unique_ptr<TreeReader>(new EmptyTree) : tree_of(base);
        auto work = backend_->work_tree(base, c.id);
        crash_point("receive.after-work-tree");
        AppliedStream applied =
            naming([&] { return receiving_what(replica, c.id, opts.branch); },
                   [&] { return apply_stream(reader, first, *base_tree, base_info.stats, *work); });
        if (replica && (applied.stats.files != c.stats.files || applied.stats.bytes != c.stats.bytes))
          failf(ErrorCode::kInvalidArgument,
                "the received tree holds {} files / {} bytes, but commit {} has {} / {}: the stream "
                "does not match the commit",
                applied.stats.files, applied.stats.bytes, c.id, c.stats.files, c.stats.bytes);
        c.stats = applied.stats;
        res.skipped = std::move(applied.skipped);
        backend_->freeze(*work, c.id);
        work.reset();
        crash_point("receive.after-freeze");
        write_commit(c);  // the commit point
      } catch (...) {
        try {
          if (!read_commit(c.id)) {
            backend_->delete_commit_tree(c.id);
            backend_->discard_work(c.id);
          }
          unlink_if_exists(meta_.get(), "receiving");
        } catch (...) {  // the next receive or fsck --repair sweeps it
        }
        throw;
      }
      unlink_if_exists(meta_.get(), "receiving");
      if (!replica) {
        crash_point("receive.after-meta");
        point_branch(opts.branch, c, st, c.parent, false);
      }
      res.commit = c;
      res.stream_bytes = reader.bytes_read();
      return res;
    });
  }

  Result<BranchInfo> set_branch_head(std::string_view name, std::string_view commit,
                                     const SetHeadOptions& opts) override {
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

  Result<FsckReport> fsck(bool repair) override {
    return guard([&] { return run_fsck(repair); });
  }

  Result<GcReport> gc() override {
    return guard([&] { return backend_->gc(); });
  }

 private:
  // ---- metadata -----------------------------------------------------------

  std::vector<std::string> json_names(int dirfd) {
    std::vector<std::string> out;
    for (auto& n : list_dir_names(dirfd))
      if (n.size() > 5 && n.compare(n.size() - 5, 5, ".json") == 0 && n[0] != '.')
        out.push_back(n.substr(0, n.size() - 5));
    return out;
  }
  std::vector<std::string> commit_ids() { return json_names(commits_.get()); }
  std::vector<std::string> branch_names() { return json_names(branches_.get()); }

  std::optional<CommitInfo> read_commit(const std::string& id) {
    auto text = read_small_file(commits_.get(), id + ".json");
    if (!text) return std::nullopt;
    try {
      return json::parse(*text).get<CommitInfo>();
    } catch (const json::exception& e) {
      failf(ErrorCode::kCorruption, "metadata of commit {} is unreadable ({}); run pachctl fsck",
            id, e.what());
    }
  }

  CommitInfo must_read_commit(const std::string& id) {
    auto c = read_commit(id);
    if (!c)
      failf(ErrorCode::kNotFound, "commit {} not found (list commits with: pachctl list-commit)",
            id);
    return *c;
  }

  void write_commit(const CommitInfo& c) {
    json j = c;
    j["format"] = kFormatVersion;
    write_file_atomic(commits_.get(), c.id + ".json", j.dump(2) + "\n");
  }

  BranchState read_state(const std::string& b) {
    auto st = read_state_if_exists(b);
    if (!st)
      failf(ErrorCode::kNotFound,
            "branch \"{}\" not found (list branches with: pachctl list-branch)", b);
    return std::move(*st);
  }

  // A branch's state file is read again only when it changed: it is always
  // replaced by a rename (a new inode), so its inode, size and times tell --
  // unless it changed within the file system's timestamp granularity and
  // got a freed inode number back (ext4 reuses them). So, as git does for
  // its index, a file younger than a second is always read.
  // This is on the path of every read a server answers.
  std::optional<BranchState> read_state_if_exists(const std::string& b) {
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
      failf(ErrorCode::kCorruption, "state of branch \"{}\" is unreadable ({}); run pachctl fsck",
            b, e.what());
    }
  }

  void save_state(const BranchState& s, bool durable = true) {
    write_file_atomic(branches_.get(), s.info.name + ".json", state_to_json(s).dump(2) + "\n",
                      durable);
  }

  // Reads a branch's state under its lock, finishing or undoing what a
  // crashed writer left: the commit metadata file decides (present: roll
  // forward; absent: roll back).
  BranchState load_and_recover(const std::string& b) {
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

  // Runs a change of the working tree with the branch's figures marked
  // stale, so a crash in it makes recovery recount them. A change that fails
  // (most fail before touching anything) is recounted on the spot, and the
  // branch keeps its state when nothing changed.
  template <class Fn>
  auto while_stale(BranchState& st, Fn fn) -> decltype(fn()) {
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

  void publish(const std::string& b, Staging& staged, const std::string& p,
               const Backend::Placement& where) {
    FileLock graph(locks_.get(), "graph", false);
    FileLock lock(locks_.get(), "branch." + b, true);
    BranchState st = load_and_recover(b);
    if (where.mode == Backend::Placement::Mode::kAt)
      check_offset(*backend_->open_branch(b), b, p, where.offset);
    StatsDelta d = while_stale(st, [&] { return backend_->publish(b, staged, p, where); });
    crash_point("put.after-publish");
    st.info.stats.files =
        static_cast<std::uint64_t>(static_cast<std::int64_t>(st.info.stats.files) + d.files);
    st.info.stats.bytes =
        static_cast<std::uint64_t>(static_cast<std::int64_t>(st.info.stats.bytes) + d.bytes);
    st.info.dirty = true;
    st.stats_stale = false;
    save_state(st);
  }

  // put-file --offset writes into an existing file, from at most its end.
  static void check_offset(TreeReader& tree, const std::string& b, const std::string& p,
                           std::uint64_t offset) {
    auto e = tree.stat(p);
    if (!e)
      failf(ErrorCode::kNotFound,
            "\"{}\" not found in branch \"{}\": writing at an offset needs an existing file", p, b);
    if (e->info.type != FileInfo::Type::kFile)
      failf(ErrorCode::kInvalidArgument, "\"{}\" is a directory; a file cannot replace it", p);
    if (offset > e->info.size)
      failf(ErrorCode::kInvalidArgument,
            "offset {} is past the end of \"{}\" ({} bytes); use --append to add at the end", offset,
            p, e->info.size);
  }

  std::unique_ptr<WorkTree> begin_work(BranchState& st, const char* op, const std::string& id,
                                       const std::string& base) {
    st.pending_op = op;
    st.pending_id = id;
    save_state(st);
    return backend_->work_tree(base, id);
  }

  // Undoes a failed (not crashed) operation that had not reached its commit
  // point. Past it, the operation is left for recovery to roll forward.
  void rollback(BranchState& st) noexcept {
    try {
      if (st.pending_id.empty() || read_commit(st.pending_id)) return;
      backend_->delete_commit_tree(st.pending_id);
      abandon_work(st);
    } catch (...) {  // left for recovery at the branch's next write
    }
  }

  void abandon_work(BranchState& st) {
    backend_->discard_work(st.pending_id);
    st.pending_op.clear();
    st.pending_id.clear();
    save_state(st);
  }

  // After the work tree is frozen as commit c: record c (the commit point),
  // make it the branch's working tree and head.
  void finish_work(BranchState& st, const CommitInfo& c) {
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

  // ---- replication helpers --------------------------------------------------

  // PFS_SEND_NATIVE=0 makes the btrfs backend write streams as the
  // portable one does (to test that writer; and where the kernel's sender
  // misbehaves).
  static bool use_native_send() {
    const char* v = std::getenv("PFS_SEND_NATIVE");
    return !(v && std::string_view(v) == "0");
  }

  // A replica commit must be whole and fit the graph: its parents here.
  void check_replica(const CommitInfo& c) {
    if (!is_commit_id(c.id))
      failf(ErrorCode::kInvalidArgument, "\"{}\" is not a commit id (32 hex digits)", c.id);
    check_branch_name(c.branch);
    for (const auto* p : {&c.parent, &c.merge_parent}) {
      if (p->empty()) continue;
      if (!is_commit_id(*p))
        failf(ErrorCode::kInvalidArgument, "\"{}\" is not a commit id (32 hex digits)", *p);
      if (!read_commit(*p))
        failf(ErrorCode::kNotFound,
              "commit {} needs its parent {}, which this store does not have; send that first",
              c.id, *p);
    }
  }

  // The commit an incremental stream applies to: the one given, else the
  // one the stream names (pfs streams name it by id).
  std::string receive_base(const stream::Command& first, const std::string& given) {
    if (first.cmd != stream::Cmd::kSnapshot) return {};
    std::string named = id_of_uuid(first.clone_uuid);
    if (!given.empty()) {
      std::string id = resolve_commit(given);
      if (id != named && read_commit(named))
        failf(ErrorCode::kInvalidArgument,
              "the stream was made against commit {}, not {}; receive it with -p {}", named, id,
              named);
      return id;
    }
    if (!read_commit(named))
      failf(ErrorCode::kNotFound,
            "the stream holds the changes since commit {}, which this store does not have; "
            "receive that commit first, or name the stream's parent with -p",
            named);
    return named;
  }

  // Removes what a receive that crashed left (no receive runs: the caller
  // holds the receive lock).
  void sweep_receive() {
    auto text = read_small_file(meta_.get(), "receiving");
    if (!text) return;
    std::string id = text->substr(0, text->find('\n'));
    if (is_commit_id(id) && !read_commit(id)) {
      backend_->delete_commit_tree(id);
      backend_->discard_work(id);
    }
    unlink_if_exists(meta_.get(), "receiving");
  }

  // Makes commit c the head and working state of branch b (creating it),
  // if its head is `expected` (nullopt: any) and it has no uncommitted
  // writes (unless force). Caller holds b's lock; st is its recovered state.
  BranchInfo point_branch(const std::string& b, const CommitInfo& c, std::optional<BranchState>& st,
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

  // ---- the commit graph -----------------------------------------------------

  std::string resolve_commit(std::string_view s) {
    std::string name(s);
    if (name.empty()) fail(ErrorCode::kInvalidArgument, "no commit given");
    if (is_commit_id(name) && stat_at(commits_.get(), name + ".json")) return name;
    bool branch_like = true;
    try {
      check_branch_name(name);
    } catch (const Fail&) {
      branch_like = false;
    }
    std::optional<BranchState> state;
    if (branch_like) state = read_state_if_exists(name);
    if (state) {
      auto head = state->info.head;
      if (head.empty())
        failf(ErrorCode::kNotFound,
              "branch \"{}\" has no commits yet (commit with: pachctl commit -b {})", name, name);
      return head;
    }
    if (is_hex(name) && name.size() >= kMinCommitPrefix && name.size() < kCommitIdLength) {
      std::vector<std::string> hits;
      for (auto& id : commit_ids())
        if (id.compare(0, name.size(), name) == 0) hits.push_back(id);
      if (hits.size() == 1) return hits[0];
      if (hits.size() > 1)
        failf(ErrorCode::kInvalidArgument,
              "commit prefix \"{}\" is ambiguous ({} commits match); give more digits", name,
              hits.size());
    }
    failf(ErrorCode::kNotFound,
          "no commit or branch named \"{}\" (list commits with: pachctl list-commit)", name);
  }

  std::vector<std::string> parents_of(const std::string& id) {
    auto c = read_commit(id);
    if (!c) return {};
    std::vector<std::string> out;
    if (!c->parent.empty()) out.push_back(c->parent);
    if (!c->merge_parent.empty()) out.push_back(c->merge_parent);
    return out;
  }

  std::vector<std::string> ancestors_bfs(const std::string& start) {
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

  bool is_ancestor(const std::string& a, const std::string& b) {
    for (auto& id : ancestors_bfs(b))
      if (id == a) return true;
    return false;
  }

  std::string merge_base(const std::string& a, const std::string& b) {
    auto from_b = ancestors_bfs(b);
    std::unordered_set<std::string> set_b(from_b.begin(), from_b.end());
    for (auto& id : ancestors_bfs(a))
      if (set_b.count(id)) return id;
    return {};
  }

  std::unique_ptr<TreeReader> tree_of(const std::string& commit_id) {
    if (commit_id.empty()) return std::make_unique<EmptyTree>();
    return backend_->open_commit(commit_id);
  }

  std::unique_ptr<TreeReader> open_ref(const Ref& ref) {
    switch (ref.kind) {
      case Ref::Kind::kBranch:
        check_branch_name(ref.name);
        read_state(ref.name);
        return backend_->open_branch(ref.name);
      case Ref::Kind::kCommit:
        return backend_->open_commit(resolve_commit(ref.name));
      case Ref::Kind::kAuto:
        if (!is_commit_id(ref.name) || !read_small_file(commits_.get(), ref.name + ".json")) {
          bool branch_like = true;
          try {
            check_branch_name(ref.name);
          } catch (const Fail&) {
            branch_like = false;
          }
          if (branch_like && read_small_file(branches_.get(), ref.name + ".json"))
            return backend_->open_branch(ref.name);
        }
        return backend_->open_commit(resolve_commit(ref.name));
    }
    fail(ErrorCode::kInternal, "bad ref kind");
  }

  static std::string describe(const Ref& ref) {
    return ref.kind == Ref::Kind::kBranch ? fmt::format("branch \"{}\"", ref.name)
                                          : fmt::format("\"{}\"", ref.name);
  }

  FileInfo stat_in(TreeReader& tree, const std::string& p) {
    auto e = tree.stat(p);
    if (!e) failf(ErrorCode::kNotFound, "\"{}\" not found (list files with: pachctl list-file)", p);
    return e->info;
  }

  void list_into(TreeReader& tree, const std::string& dir, bool recursive,
                 std::vector<FileInfo>& out) {
    for (auto& e : tree.list(dir)) {
      out.push_back(e.info);
      if (recursive && e.info.type == FileInfo::Type::kDirectory)
        list_into(tree, e.info.path, true, out);
    }
  }

  void glob_walk(TreeReader& tree, const std::string& dir, const std::vector<std::string>& segs,
                 std::size_t i, std::map<std::string, FileInfo>& found) {
    const std::string& seg = segs[i];
    bool last = i + 1 == segs.size();
    if (seg == "**") {
      if (last) {
        std::vector<FileInfo> all;
        list_into(tree, dir, true, all);
        for (auto& f : all) found.emplace(f.path, f);
        return;
      }
      glob_walk(tree, dir, segs, i + 1, found);
      for (auto& e : tree.list(dir))
        if (e.info.type == FileInfo::Type::kDirectory) glob_walk(tree, e.info.path, segs, i, found);
      return;
    }
    if (!is_glob(seg)) {
      std::string p = dir.empty() ? seg : dir + "/" + seg;
      auto e = tree.stat(p);
      if (!e) return;
      if (last)
        found.emplace(p, e->info);
      else if (e->info.type == FileInfo::Type::kDirectory)
        glob_walk(tree, p, segs, i + 1, found);
      return;
    }
    for (auto& e : tree.list(dir)) {
      std::string name = e.info.path.substr(dir.empty() ? 0 : dir.size() + 1);
      if (!glob_segment_match(seg, name)) continue;
      if (last)
        found.emplace(e.info.path, e.info);
      else if (e.info.type == FileInfo::Type::kDirectory)
        glob_walk(tree, e.info.path, segs, i + 1, found);
    }
  }

  // Writes the tree's directory `dir` into the local directory `outfd`. The
  // names come from the tree (validated when written: no "/", "." or ".."),
  // and every file is created with O_EXCL below directories made here, so
  // nothing outside local_dir is ever written.
  void copy_dir_out(TreeReader& tree, const std::string& dir, int outfd, TreeStats& copied,
                    const std::string& local) {
    for (const auto& e : tree.list(dir)) {
      std::string name = path_base(e.info.path);
      if (e.info.type == FileInfo::Type::kDirectory) {
        if (::mkdirat(outfd, name.c_str(), 0777) != 0)
          fail_errno(errno, "create " + local + "/" + e.info.path);
        UniqueFd sub = open_dir(outfd, name);
        copy_dir_out(tree, e.info.path, sub.get(), copied, local);
        continue;
      }
      auto in = tree.open_file(e.info.path);
      UniqueFd f(::openat(outfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                          0666));
      if (!f) fail_errno(errno, "create " + local + "/" + e.info.path);
      auto sink = Sink::to_fd(f.get());
      copy_out(*in, 0, std::nullopt, *sink);
      copied.files += 1;
      copied.bytes += in->size();
    }
  }

  void add_local_dir(Staging& staged, int dirfd, const std::string& rel, const std::string& dest,
                     PutDirResult& result, const std::string& local) {
    std::vector<std::string> files, dirs;
    for (auto& name : list_dir_names(dirfd)) {
      std::string r = rel.empty() ? name : rel + "/" + name;
      auto st = stat_at(dirfd, name);
      if (!st) continue;
      if (S_ISDIR(st->st_mode) || S_ISREG(st->st_mode)) {
        normalize_path(dest.empty() ? r : dest + "/" + r);  // refuse before anything is staged
        (S_ISDIR(st->st_mode) ? dirs : files).push_back(std::move(name));
      } else {
        result.skipped.push_back(r);
      }
    }
    // Files are opened up to kAhead ahead of the one being read, each with a
    // read-ahead hint: the kernel reads the next files while this one is
    // hashed and written, instead of one small read at a time from a cold
    // disk.
    constexpr std::size_t kAhead = 32;
    std::deque<UniqueFd> ahead;
    std::size_t opened = 0;
    for (std::size_t i = 0; i < files.size(); i++) {
      while (opened < files.size() && opened < i + kAhead) {
        const std::string& name = files[opened++];
        UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
        if (!fd) fail_errno(errno, "open " + local + "/" + path_join(rel, name));
        ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_WILLNEED);
        ahead.push_back(std::move(fd));
      }
      UniqueFd in = std::move(ahead.front());
      ahead.pop_front();
      auto src = Source::from_fd(in.get());
      result.bytes += staged.add(path_join(rel, files[i]), *src);
      result.files += 1;
    }
    for (const auto& name : dirs) {
      UniqueFd sub = open_dir(dirfd, name);
      add_local_dir(staged, sub.get(), path_join(rel, name), dest, result, local);
    }
  }

  // ---- fsck -----------------------------------------------------------------

  // The cycles of the commit graph (parent and merge-parent edges), each
  // as the commits of one loop, short ids, the first repeated at the end.
  static std::vector<std::vector<std::string>> history_loops(
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
          auto from = std::find_if(stack.begin(), stack.end(), [&](auto& e) { return e.first == next; });
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

  FsckReport run_fsck(bool repair) {
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
      problem(fmt::format("commit {}: its history loops back to itself ({}); restore the "
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
      auto counted_or = count(fmt::format("branch \"{}\"", b), [&] { return backend_->open_branch(b); });
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
};

}  // namespace

std::unique_ptr<Client> open_local_store(const std::filesystem::path& dir, const OpenOptions& opts) {
  UniqueFd root(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root) {
    if (errno == ENOENT)
      failf(ErrorCode::kNotFound, "no store at {} (create one with: pachctl init {})", dir.string(),
            dir.string());
    fail_errno(errno, "open store " + dir.string());
  }
  auto text = read_small_file(root.get(), kStoreFile);
  if (!text)
    failf(ErrorCode::kNotFound, "{} is not a pfs store (create one with: pachctl init {})",
          dir.string(), dir.string());
  json j;
  try {
    j = json::parse(*text);
  } catch (const json::exception& e) {
    failf(ErrorCode::kCorruption, "{}/{} is unreadable: {}", dir.string(), kStoreFile, e.what());
  }
  int format = j.value("format", 0);
  if (format != kFormatVersion)
    failf(ErrorCode::kCorruption,
          "store {} has format {}, this pfs reads format {}; use a matching pfs version",
          dir.string(), format, kFormatVersion);
  std::string backend = j.value("backend", "");
  std::unique_ptr<Backend> b;
  if (backend == "btrfs")
    b = open_btrfs_backend(root.get());
  else if (backend == "portable")
    b = open_portable_backend(root.get());
  else
    failf(ErrorCode::kCorruption, "store {} uses unknown backend \"{}\"", dir.string(), backend);
  b = with_faults(std::move(b));  // tests only: PFS_FAULT (fault.h)
  auto store = std::make_unique<LocalStore>(std::filesystem::absolute(dir), std::move(root), std::move(b));
  if (opts.file_cache_bytes > 0) store->enable_file_cache(opts.file_cache_bytes);
  return store;
}

}  // namespace pfs::detail

namespace pfs {

Result<std::unique_ptr<Client>> open_store(const std::filesystem::path& dir, const OpenOptions& opts) {
  return detail::guard([&] { return detail::open_local_store(dir, opts); });
}

Result<StoreInfo> init_store(const std::filesystem::path& dir, const InitOptions& opts) {
  using namespace detail;
  bool made_dir = false;
  bool emptied_ok = false;  // dir was verified empty: on failure, empty it again
  auto r = guard([&]() -> StoreInfo {
    // Parents too, like mkdir -p: the default store (~/.local/share/pfs) must
    // work for a new user whose ~/.local/share does not exist yet.
    if (dir.has_parent_path()) {
      std::error_code ec;
      std::filesystem::create_directories(dir.parent_path(), ec);
      if (ec) fail_errno(ec.value(), "create " + dir.parent_path().string());
    }
    if (::mkdir(dir.c_str(), 0755) == 0)
      made_dir = true;
    else if (errno != EEXIST)
      fail_errno(errno, "create " + dir.string());
    UniqueFd root(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root) fail_errno(errno, "open " + dir.string());
    if (read_small_file(root.get(), kStoreFile))
      failf(ErrorCode::kAlreadyExists, "{} already holds a pfs store", dir.string());
    if (!list_dir_names(root.get()).empty())
      failf(ErrorCode::kInvalidArgument, "{} is not empty; pick an empty or new directory",
            dir.string());
    emptied_ok = true;
    std::string backend;
    switch (opts.backend) {
      case BackendKind::kBtrfs:
        backend = "btrfs";
        break;
      case BackendKind::kPortable:
        backend = "portable";
        break;
      case BackendKind::kAuto:
        backend = btrfs_usable(root.get(), nullptr) ? "btrfs" : "portable";
        break;
    }
    if (backend == "btrfs")
      init_btrfs_backend(root.get());
    else
      init_portable_backend(root.get());
    for (const char* d : {"meta", "locks"})
      if (::mkdirat(root.get(), d, 0755) != 0) fail_errno(errno, std::string("create ") + d);
    UniqueFd meta = open_dir(root.get(), "meta");
    for (const char* d : {"commits", "branches"})
      if (::mkdirat(meta.get(), d, 0755) != 0) fail_errno(errno, std::string("create meta/") + d);
    fsync_dir(meta.get());
    json j{{"format", kFormatVersion}, {"backend", backend}, {"created_ns", now_ns()}};
    // The store exists once this file does.
    write_file_atomic(root.get(), kStoreFile, j.dump(2) + "\n");
    auto store = open_local_store(dir);
    unwrap(store->create_branch("master"));
    return unwrap(store->info());
  });
  if (!r && emptied_ok) {
    // Leave the directory as we found it: empty, or absent if we made it.
    try {
      UniqueFd root(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (root)
        for (const auto& name : list_dir_names(root.get())) remove_tree(root.get(), name);
    } catch (...) {
    }
  }
  if (!r && made_dir) ::rmdir(dir.c_str());
  return r;
}

std::string_view version() { return PFS_VERSION; }

}  // namespace pfs
