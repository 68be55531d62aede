// files.cc: the files of a branch or commit: put (whole, appended, at an
// offset, a local directory, a batch), open, get (a range, a directory into
// a local one), stat, delete, list and glob. A write is staged outside the
// branch's lock and published under it (publish()).
#include "local_store.h"

#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <memory>

#include <fmt/format.h>

#include "local_dir.h"
#include "names.h"

namespace pfs::detail {

namespace {

// Copies `len` bytes (to the end when nullopt) from offset `off` of a file
// (`path` in the tree, for messages).
void copy_out(FileReader& in, const std::string& path, std::uint64_t off,
              std::optional<std::uint64_t> len, Sink& sink) {
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
        fail_errno_at(errno, "write \"" + path + "\" to", sink.fd());
      }
      if (n == 0) return;
      left -= static_cast<std::uint64_t>(n);
    }
    if (left == 0) return;
    off = static_cast<std::uint64_t>(pos);
  }
  // Sized to what is read and not zeroed: a zeroed 1 MiB per call was most
  // of the cost of hashing 100,000 small files (a pipeline's input).
  const std::size_t cap = static_cast<std::size_t>(std::min<std::uint64_t>(left, 1 << 20));
  auto buf = std::make_unique_for_overwrite<char[]>(std::max<std::size_t>(cap, 1));
  while (left > 0) {
    std::size_t n = in.pread(std::span<char>(buf.get(), std::min<std::uint64_t>(left, cap)), off);
    if (n == 0) break;
    unwrap(sink.write(std::span<const char>(buf.get(), n)));
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
      std::size_t want =
          static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), reader_->size() - offset));
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
    std::size_t n =
        static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), bytes_->size() - offset));
    std::memcpy(buf.data(), bytes_->data() + offset, n);
    return n;
  }

 private:
  FileInfo info_;
  std::shared_ptr<const std::string> bytes_;
};

// put-file --offset writes into an existing file, from at most its end.
void check_offset(TreeReader& tree, const std::string& b, const std::string& p,
                  std::uint64_t offset) {
  auto e = tree.stat(p);
  if (!e)
    failf(ErrorCode::kNotFound,
          "\"{}\" not found in branch \"{}\": writing at an offset needs an existing file", p, b);
  if (e->info.type != FileInfo::Type::kFile)
    failf(ErrorCode::kInvalidArgument,
          "\"{}\" is a directory in branch \"{}\"; a file cannot replace it", p, b);
  if (offset > e->info.size)
    failf(ErrorCode::kInvalidArgument,
          "offset {} is past the end of \"{}\" ({} bytes); use --append to add at the end", offset,
          p, e->info.size);
}

std::string describe(const Ref& ref) {
  return ref.kind == Ref::Kind::kBranch ? fmt::format("branch \"{}\"", ref.name)
                                        : fmt::format("\"{}\"", ref.name);
}

// The entry at p of ref's tree (ref names the tree in a message).
FileInfo stat_in(TreeReader& tree, const std::string& p, const Ref& ref) {
  auto e = tree.stat(p);
  if (!e)
    failf(ErrorCode::kNotFound, "\"{}\" not found in {} (list files with: pachctl list-file)", p,
          describe(ref));
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
    UniqueFd f(
        ::openat(outfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0666));
    if (!f) fail_errno(errno, "create " + local + "/" + e.info.path);
    auto sink = Sink::to_fd(f.get());
    copy_out(*in, e.info.path, 0, std::nullopt, *sink);
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
  // disk. Not when the backend clones them without reading (a reflink on
  // the same btrfs): the hint would read every byte for nothing, and cost
  // a third of an ingest of small files.
  constexpr std::size_t kAhead = 32;
  const bool read_ahead = !staged.clones_from(dirfd);
  std::deque<UniqueFd> ahead;
  std::size_t opened = 0;
  for (std::size_t i = 0; i < files.size(); i++) {
    while (opened < files.size() && opened < i + kAhead) {
      const std::string& name = files[opened++];
      UniqueFd fd(::openat(dirfd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
      if (!fd) fail_errno(errno, "open " + local + "/" + path_join(rel, name));
      if (read_ahead) ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_WILLNEED);
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

std::string writing_what(const std::string& path, const std::string& branch) {
  return fmt::format("writing \"{}\" on branch \"{}\"", path.empty() ? "." : path, branch);
}

}  // namespace

Result<FileInfo> LocalStore::put_file(std::string_view branch, std::string_view path, Source& src,
                                      const PutOptions& opts) {
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
    return stat_in(*backend_->open_branch(b), p, Ref::branch(b));
  });
}

Result<PutDirResult> LocalStore::put_dir(std::string_view branch, std::string_view path,
                                         const std::filesystem::path& local_dir) {
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

Result<PutDirResult> LocalStore::put_files(std::string_view branch, std::string_view path,
                                           FileBatch& files) {
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

// Publishes a staged write into branch b under its lock, with the branch's
// figures marked stale while the backend moves it in (while_stale).
void LocalStore::publish(const std::string& b, Staging& staged, const std::string& p,
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

std::unique_ptr<FileReader> LocalStore::open_ref_file(const Ref& ref, const std::string& p) {
  if (ref.kind == Ref::Kind::kCommit) return backend_->open_commit_file(resolve_commit(ref.name), p);
  if (ref.kind == Ref::Kind::kBranch) {
    check_branch_name(ref.name);
    read_state(ref.name);
    return backend_->open_branch_file(ref.name, p);
  }
  return open_ref(ref)->open_file(p);
}

Result<std::unique_ptr<FileHandle>> LocalStore::open_file(const Ref& ref, std::string_view path) {
  return guard([&]() -> std::unique_ptr<FileHandle> {
    std::string p = normalize_path(path);
    std::unique_ptr<FileReader> reader;
    FileInfo info;  // of what was opened, should the path have changed since
    info.path = p;
    info.type = FileInfo::Type::kFile;
    std::string cache_id;  // a commit's file: cached (file_cache.h)
    if (ref.kind == Ref::Kind::kCommit && file_cache_) {
      std::string id = resolve_commit(ref.name);
      if (auto hit = file_cache_->get(id, p)) {
        info.size = hit->bytes->size();
        info.mtime_ns = hit->mtime_ns;
        return std::make_unique<CachedFileHandle>(std::move(info), std::move(hit->bytes));
      }
      cache_id = id;
      reader = backend_->open_commit_file(id, p);
    } else {
      reader = open_ref_file(ref, p);
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

Result<FileInfo> LocalStore::get_file(const Ref& ref, std::string_view path, Sink& sink,
                                      const ReadRange& range) {
  return guard([&] {
    std::string p = normalize_path(path);
    auto file = open_ref_file(ref, p);
    // (What was opened, should the path change meanwhile: no second lookup.)
    FileInfo info;
    info.path = p;
    info.size = file->size();
    info.mtime_ns = file->mtime_ns;
    std::uint64_t size = file->size();
    std::uint64_t len = check_read_range(size, range, p);
    copy_out(*file, p, range.offset, range.length ? std::optional(len) : std::nullopt, sink);
    return info;
  });
}

Result<TreeStats> LocalStore::get_dir(const Ref& ref, std::string_view path,
                                      const std::filesystem::path& local_dir) {
  return guard([&] {
    std::string p = normalize_path(path, true);
    auto tree = open_ref(ref);
    auto e = tree->stat(p);
    if (!e)
      failf(ErrorCode::kNotFound, "\"{}\" not found in {} (list files with: pachctl list-file)", p,
            describe(ref));
    if (e->info.type != FileInfo::Type::kDirectory)
      failf(ErrorCode::kInvalidArgument, "\"{}\" is a file; copy a file without -r", p);
    UniqueFd out = open_output_dir(local_dir);
    TreeStats copied;
    copy_dir_out(*tree, p, out.get(), copied, local_dir.string());
    if (::syncfs(out.get()) != 0) fail_errno(errno, "sync " + local_dir.string());
    return copied;
  });
}

Result<FileInfo> LocalStore::stat_file(const Ref& ref, std::string_view path) {
  return guard([&] {
    std::string p = normalize_path(path, true);
    auto tree = open_ref(ref);
    return stat_in(*tree, p, ref);
  });
}

Result<TreeStats> LocalStore::delete_file(std::string_view branch, std::string_view path) {
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

Result<std::vector<FileInfo>> LocalStore::list_files(const Ref& ref, std::string_view dir_or_glob,
                                                     const ListOptions& opts) {
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

}  // namespace pfs::detail
