// staging.cc: writing into the portable backend: uploads staged as objects
// and published into a branch's tree with one ref write, and the work trees
// that merge, revert and receive build and freeze into commits.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <map>

#include "names.h"
#include "portable.h"

namespace pfs::detail::portable {
namespace {

class PortableStaging final : public Staging {
 public:
  PortableStaging(const Objects& objects, UniqueFd lock, Backend::StageKind kind, int tmp_dir,
                  std::string branch)
      : lock_(std::move(lock)), kind_(kind), writer_(objects), branch_(std::move(branch)) {
    if (kind_ == Backend::StageKind::kPart) {
      // Bytes to be merged into a file: kept in an unnamed file, not stored
      // as objects (which the merged file would not use: garbage).
      part_.reset(::openat(tmp_dir, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
      if (!part_) {  // a file system without O_TMPFILE: a named file, unlinked at once
        std::string name = ".part." + random_hex(8);
        part_.reset(::openat(tmp_dir, name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
        if (!part_) {
          int err = errno;
          fail_errno(err, fmt::format("create portable/{} (the bytes to write into branch \"{}\")",
                                      name, branch_));
        }
        ::unlinkat(tmp_dir, name.c_str(), 0);
      }
    }
  }

  std::uint64_t add(const std::string& rel, Source& src) override {
    if (part_) {
      std::uint64_t n = 0;
      auto read = reader_of(src);
      std::vector<char> buf(1 << 20);
      std::string what = fmt::format(
          "write the bytes for branch \"{}\" to their temporary file in portable/", branch_);
      for (;;) {
        std::size_t got = read(buf.data(), buf.size());
        if (got == 0) break;
        write_all(part_.get(), buf.data(), got, what);
        n += got;
      }
      PEntry e;
      e.size = n;
      items_.emplace_back(rel, e);
      return n;
    }
    PEntry e = content_.store(writer_, reader_of(src));
    items_.emplace_back(rel, e);
    return e.size;
  }
  // The part's bytes become objects at publish, and are synced then.
  void sync() override { writer_.commit(); }

  // Stores the part's bytes as a file of their own (an append that creates
  // `path`).
  PEntry store_part(const std::string& path) {
    std::uint64_t off = 0;
    return content_.store(writer_, [&](char* p, std::size_t n) -> std::size_t {
      for (;;) {
        ssize_t r = ::pread(part_.get(), p, n, static_cast<off_t>(off));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
          int err = errno;
          fail_errno(err, fmt::format("read the bytes staged for \"{}\" in branch \"{}\" back "
                                      "from their temporary file in portable/",
                                      path, branch_));
        }
        off += static_cast<std::uint64_t>(r);
        return static_cast<std::size_t>(r);
      }
    });
  }

  UniqueFd lock_;  // held until published or dropped: gc must not take our objects
  Backend::StageKind kind_;
  ObjectWriter writer_;
  ContentWriter content_;
  std::vector<std::pair<std::string, PEntry>> items_;
  UniqueFd part_;  // kPart: the bytes
  std::string branch_;
};

// A tree being built (merge, revert, receive): changes stay in memory until
// freeze stores the changed manifests. Receive's scratch files are plain
// files in portable/tmp/<commit id>/, removed with the work tree.
class PortableWorkTree final : public WorkTree {
 public:
  PortableWorkTree(const Objects& objects, UniqueFd lock, std::string root, int top,
                   std::string id)
      : lock_(std::move(lock)), tree_(objects, std::move(root), "the new tree"), writer_(objects),
        top_(top), id_(std::move(id)) {}
  ~PortableWorkTree() override {
    if (scratch_) {
      scratch_.reset();
      try {
        UniqueFd tmp = open_dir(top_, "tmp");
        remove_tree(tmp.get(), id_);
      } catch (...) {  // discard_work removes it later
      }
    }
  }
  TreeReader& reader() override { return tree_; }

  using WorkTree::copy_file_from;
  void copy_file_from(TreeReader& from, const std::string& from_path,
                      const std::string& path) override {
    if (auto* tree = dynamic_cast<PTree*>(&from)) {  // a tree of this store: by reference
      auto e = tree->get(from_path);
      if (!e || e->is_dir()) failf(ErrorCode::kNotFound, "file \"{}\" not found", from_path);
      tree_.remove(path);  // a directory in the way goes, as on btrfs
      tree_.set_file(path, *e);
      return;
    }
    auto in = from.open_file(from_path);
    std::uint64_t off = 0;
    PEntry e = content_.store(writer_, [&](char* p, std::size_t n) {
      std::size_t got = in->pread(std::span<char>(p, n), off);
      off += got;
      return got;
    });
    tree_.remove(path);
    tree_.set_file(path, e);
  }

  void make_dir(const std::string& path) override {
    auto e = tree_.get(path);
    if (e && e->is_dir()) return;
    if (e) tree_.remove(path);
    tree_.make_dir(path);
  }

  void remove(const std::string& path) override { tree_.remove(path); }

  UniqueFd open_scratch(std::uint64_t n, bool create) override {
    if (!scratch_) {
      if (::mkdirat(top_, "tmp", 0700) != 0 && errno != EEXIST)
        fail_errno(errno, "make portable/tmp");
      UniqueFd tmp = open_dir(top_, "tmp");
      if (::mkdirat(tmp.get(), id_.c_str(), 0700) != 0 && errno != EEXIST) {
        int err = errno;
        fail_errno(err, fmt::format("make portable/tmp/{} (scratch files of the new tree)", id_));
      }
      scratch_ = open_dir(tmp.get(), id_);
    }
    std::string name = std::to_string(n);
    UniqueFd fd(::openat(scratch_.get(), name.c_str(),
                         O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT | O_EXCL : 0), 0600));
    if (!fd) {
      int err = errno;
      fail_errno(err, fmt::format("open scratch file portable/tmp/{}/{}", id_, name));
    }
    return fd;
  }

  // Stores the scratch file's content as objects (deduplicated) and sets
  // the entry; the same file placed again is stored once.
  void place_scratch(std::uint64_t n, const std::string& path) override {
    auto it = placed_.find(n);
    if (it == placed_.end()) {
      UniqueFd fd = open_scratch(n, false);
      std::uint64_t off = 0;
      PEntry e = content_.store(writer_, [&](char* p, std::size_t len) -> std::size_t {
        for (;;) {
          ssize_t r = ::pread(fd.get(), p, len, static_cast<off_t>(off));
          if (r < 0 && errno == EINTR) continue;
          if (r < 0) {
            int err = errno;
            fail_errno(err, fmt::format("read scratch file portable/tmp/{}/{} (for \"{}\")", id_,
                                        n, path));
          }
          off += static_cast<std::uint64_t>(r);
          return static_cast<std::size_t>(r);
        }
      });
      it = placed_.emplace(n, e).first;
    }
    tree_.remove(path);
    tree_.set_file(path, it->second);
  }

  UniqueFd lock_;
  PTree tree_;
  ObjectWriter writer_;  // the objects of files put in by content
  ContentWriter content_;
  int top_;
  std::string id_;
  UniqueFd scratch_;
  std::map<std::uint64_t, PEntry> placed_;
};

}  // namespace

// ---- uploads ----------------------------------------------------------------

std::unique_ptr<Staging> PortableBackend::stage(const std::string& branch, StageKind kind) {
  if (!has_branch_tree(branch))
    failf(ErrorCode::kNotFound,
          "branch \"{}\" not found (list branches with: pachctl list-branch)", branch);
  return std::make_unique<PortableStaging>(objects_, gc_lock(top_.get(), false), kind, top_.get(),
                                           branch);
}

StatsDelta PortableBackend::publish(const std::string& branch, Staging& staging,
                                    const std::string& path, const Placement& where) {
  auto& s = static_cast<PortableStaging&>(staging);
  auto r = read_ref(branches_.get(), branch, "branch " + branch);
  if (!r) failf(ErrorCode::kNotFound, "branch \"{}\" was deleted during the upload", branch);
  PTree t(objects_, r->root, fmt::format("branch \"{}\"", branch));
  ObjectWriter w(objects_);
  StatsDelta d;
  if (s.kind_ != StageKind::kDir) {
    PEntry e = s.items_.at(0).second;
    auto old = t.get(path);
    if (old && old->is_dir())
      failf(ErrorCode::kInvalidArgument, "\"{}\" is a directory; a file cannot replace it",
            path);
    if (where.mode == Placement::Mode::kAt && (!old || where.offset > old->size))
      failf(ErrorCode::kInvalidArgument, "cannot write \"{}\" at offset {}: it has {} bytes",
            path, where.offset, old ? old->size : 0);
    if ((where.mode != Placement::Mode::kReplace) != (s.kind_ == StageKind::kPart))
      fail(ErrorCode::kInternal, "append and write-at need bytes staged as kPart");
    if (where.mode != Placement::Mode::kReplace && old) {
      std::uint64_t at = where.mode == Placement::Mode::kAt ? where.offset : old->size;
      e = spliced(objects_, *old, at, s.part_.get(), e.size, w, s.content_, path);
    } else if (s.part_) {
      e = s.store_part(path);  // an append that creates the file
      s.writer_.commit();
    }
    t.set_file(path, e);
    d.files = old ? 0 : 1;
    d.bytes = static_cast<std::int64_t>(e.size) - static_cast<std::int64_t>(old ? old->size : 0);
  } else {
    if (!path.empty()) {
      auto old = t.get(path);
      if (old && !old->is_dir())
        failf(ErrorCode::kInvalidArgument,
              "\"{}\" is a file in the branch; a directory cannot replace it", path);
    }
    // Check everything first: a refused upload changes nothing.
    for (const auto& [rel, e] : s.items_) {
      std::string full = path_join(path, rel);
      std::string sofar = path;
      for (const auto& comp : split_path(path_parent(rel))) {
        sofar = path_join(sofar, comp);
        auto have = t.get(sofar);
        if (have && !have->is_dir())
          failf(ErrorCode::kInvalidArgument,
                "\"{}\" is a file in the branch but a directory in the upload; delete it first",
                sofar);
      }
      auto have = t.get(full);
      if (have && have->is_dir())
        failf(ErrorCode::kInvalidArgument,
              "\"{}\" is a directory in the branch but a file in the upload; delete it first",
              full);
    }
    for (const auto& [rel, e] : s.items_) {
      std::string full = path_join(path, rel);
      auto old = t.get(full);
      d.files += old ? 0 : 1;
      d.bytes += static_cast<std::int64_t>(e.size) - static_cast<std::int64_t>(old ? old->size : 0);
      t.set_file(full, e);
    }
  }
  save_branch(branch, t, w);
  s.lock_.reset();
  return d;
}

// ---- work trees -------------------------------------------------------------

std::unique_ptr<WorkTree> PortableBackend::work_tree(const std::string& base,
                                                     const std::string& id) {
  discard_work(id);
  UniqueFd lock = gc_lock(top_.get(), false);
  TreeRef r = base.empty() ? empty_tree() : must_ref(commits_.get(), base, "commit " + base);
  return std::make_unique<PortableWorkTree>(objects_, std::move(lock), r.root, top_.get(), id);
}

void PortableBackend::freeze(WorkTree& tree, const std::string& id) {
  auto& t = static_cast<PortableWorkTree&>(tree);
  t.writer_.commit();
  ObjectWriter w(objects_);
  std::string root = t.tree_.write(w);
  w.commit();
  write_file_atomic(commits_.get(), id, ref_text(root, now_ns()));
}

void PortableBackend::discard_work(const std::string& id) {
  UniqueFd tmp = open_dir_if_exists(top_.get(), "tmp");
  if (tmp) remove_tree(tmp.get(), id);
}

}  // namespace pfs::detail::portable
