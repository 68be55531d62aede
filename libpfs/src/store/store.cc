// store.cc: opening and creating a store (open_local_store, pfs::open_store,
// pfs::init_store), and the core every other part of LocalStore uses: commit
// metadata files and resolving names to commits and trees. The other parts
// are listed in local_store.h. On-disk layout and the commit protocol are
// described in docs/format.md; keep the two in step.
#include "store.h"
#include "fault_backend.h"
#include "local_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <pfs/json.h>
#include <nlohmann/json.hpp>

#include "names.h"

namespace pfs::detail {

using nlohmann::json;

namespace {

// An empty tree, for diffs, merges and receives against "nothing"
// (tree_of("")).
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

std::vector<std::string> json_names(int dirfd) {
  std::vector<std::string> out;
  for (auto& n : list_dir_names(dirfd))
    if (n.size() > 5 && n.compare(n.size() - 5, 5, ".json") == 0 && n[0] != '.')
      out.push_back(n.substr(0, n.size() - 5));
  return out;
}

}  // namespace

LocalStore::LocalStore(std::filesystem::path path, UniqueFd root, std::unique_ptr<Backend> backend)
    : path_(std::move(path)), root_(std::move(root)), backend_(std::move(backend)) {
  meta_ = open_dir(root_.get(), "meta");
  commits_ = open_dir(meta_.get(), "commits");
  branches_ = open_dir(meta_.get(), "branches");
  locks_ = open_dir(root_.get(), "locks");
}

Result<StoreInfo> LocalStore::info() {
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

// ---- metadata ---------------------------------------------------------------

std::vector<std::string> LocalStore::commit_ids() { return json_names(commits_.get()); }
std::vector<std::string> LocalStore::branch_names() { return json_names(branches_.get()); }

std::optional<CommitInfo> LocalStore::read_commit(const std::string& id) {
  auto text = read_small_file(commits_.get(), id + ".json");
  if (!text) return std::nullopt;
  try {
    return json::parse(*text).get<CommitInfo>();
  } catch (const json::exception& e) {
    failf(ErrorCode::kCorruption, "metadata of commit {} is unreadable ({}); run pachctl fsck", id,
          e.what());
  }
}

CommitInfo LocalStore::must_read_commit(const std::string& id) {
  auto c = read_commit(id);
  if (!c)
    failf(ErrorCode::kNotFound, "commit {} not found (list commits with: pachctl list-commit)", id);
  return *c;
}

void LocalStore::write_commit(const CommitInfo& c) {
  json j = c;
  j["format"] = kFormatVersion;
  write_file_atomic(commits_.get(), c.id + ".json", j.dump(2) + "\n");
}

// ---- the commit graph: names -> commits and trees -----------------------------

std::string LocalStore::resolve_commit(std::string_view s) {
  std::string name(s);
  if (name.empty())
    fail(ErrorCode::kInvalidArgument,
         "no commit given; name a commit id, a prefix of one, or a branch");
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

std::unique_ptr<TreeReader> LocalStore::tree_of(const std::string& commit_id) {
  if (commit_id.empty()) return std::make_unique<EmptyTree>();
  return backend_->open_commit(commit_id);
}

std::unique_ptr<TreeReader> LocalStore::open_ref(const Ref& ref) {
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

std::unique_ptr<Client> open_local_store(const std::filesystem::path& dir,
                                         const OpenOptions& opts) {
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
  auto store =
      std::make_unique<LocalStore>(std::filesystem::absolute(dir), std::move(root), std::move(b));
  if (opts.file_cache_bytes > 0) store->enable_file_cache(opts.file_cache_bytes);
  return store;
}

}  // namespace pfs::detail

namespace pfs {

Result<std::unique_ptr<Client>> open_store(const std::filesystem::path& dir,
                                           const OpenOptions& opts) {
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
      if (::mkdirat(root.get(), d, 0755) != 0) fail_errno(errno, "create " + (dir / d).string());
    UniqueFd meta = open_dir(root.get(), "meta");
    for (const char* d : {"commits", "branches"})
      if (::mkdirat(meta.get(), d, 0755) != 0)
        fail_errno(errno, "create " + (dir / "meta" / d).string());
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
