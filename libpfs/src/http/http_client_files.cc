// http_client_files.cc: the remote Client's calls on files and directories:
// uploads (one file as the body; a directory or a batch as one tar stream,
// made as it is read), downloads (a file, a byte range of it, a directory as
// a tar stream unpacked as it comes), stat, list and delete.
#include "http_client.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "fail.h"
#include "fsutil.h"
#include "local_dir.h"
#include "names.h"
#include "pipe.h"
#include "tar.h"

namespace pfs::detail::remote {
namespace {

// A tar stream made as it is read: the files `next` names, one after the
// other, each read from its fd (a file's size is taken when it is opened;
// a file that changes size meanwhile fails the upload).
class TarSource final : public Source {
 public:
  using Next = std::function<bool(std::string& rel, UniqueFd& fd)>;
  explicit TarSource(Next next)
      : next_(std::move(next)), tar_([this](const char* p, std::size_t n) {
          out_.append(p, n);
          return true;
        }) {}

  Result<std::size_t> read(std::span<char> buf) override {
    return guard([&]() -> std::size_t {
      while (pos_ == out_.size() && !ended_) fill();
      std::size_t n = std::min(buf.size(), out_.size() - pos_);
      std::memcpy(buf.data(), out_.data() + pos_, n);
      pos_ += n;
      return n;
    });
  }

 private:
  // Makes more of the stream: the next file's header, or a piece of its data.
  void fill() {
    out_.clear();
    pos_ = 0;
    if (!fd_) {
      std::string rel;
      if (!next_(rel, fd_)) {
        tar_.finish();
        ended_ = true;
        return;
      }
      struct stat st {};
      if (::fstat(fd_.get(), &st) != 0) fail_errno(errno, "stat " + rel);
      left_ = static_cast<std::uint64_t>(st.st_size);
      rel_ = rel;
      tar_.begin_file(rel, left_, mtime_ns(st));
      if (left_ == 0) fd_.reset();
      return;
    }
    std::vector<char>& buf = buf_;
    buf.resize(256 * 1024);
    ssize_t n = ::read(fd_.get(), buf.data(), std::min<std::uint64_t>(buf.size(), left_));
    if (n < 0) {
      if (errno == EINTR) return;
      fail_errno(errno, "read " + rel_);
    }
    if (n == 0) failf(ErrorCode::kIo, "{} got shorter while it was being sent; send it again", rel_);
    tar_.data(buf.data(), static_cast<std::size_t>(n));
    left_ -= static_cast<std::uint64_t>(n);
    if (left_ == 0) fd_.reset();
  }

  Next next_;
  std::string out_;
  std::size_t pos_ = 0;
  TarWriter tar_;
  UniqueFd fd_;
  std::uint64_t left_ = 0;
  std::string rel_;
  bool ended_ = false;
  std::vector<char> buf_;
};

// A Sink into a BytePipe (the download side of get_dir).
class PipeSink final : public Sink {
 public:
  explicit PipeSink(BytePipe& p) : p_(p) {}
  Result<void> write(std::span<const char> data) override {
    if (!p_.push(data.data(), data.size()))
      return Error{ErrorCode::kIo, "the copy stopped (see the error it reported)"};
    return {};
  }

 private:
  BytePipe& p_;
};

FileInfo stat(Transport& http, const Ref& ref, std::string_view path) {
  Query q;
  q.ref(ref);
  return as<FileInfo>(http.get_json(file_target("/stat/", path) + q.str()));
}

// Reads [offset, offset+length) of a file into `sink`.
FileInfo fetch(Transport& http, const Ref& ref, std::string_view path, Sink& sink, const ReadRange& range,
               bool progress) {
  Query q;
  q.ref(ref);
  if (range.offset > 0 || range.length) q.add("offset", std::to_string(range.offset));
  if (range.length) q.add("length", std::to_string(*range.length));
  Req rq{"GET", file_target("/file/", path) + q.str()};
  rq.download = &sink;
  rq.progress = progress;
  Resp r = http.request(rq);
  FileInfo info;
  info.path = normalize_path(path);  // as the server has checked it
  info.type = FileInfo::Type::kFile;
  std::string size = r.header("x-pfs-size"), mtime = r.header("x-pfs-mtime-ns");
  try {
    info.size = size.empty() ? 0 : std::stoull(size);
    info.mtime_ns = mtime.empty() ? 0 : std::stoll(mtime);
  } catch (const std::exception&) {
    failf(ErrorCode::kIo, "the server sent a malformed X-Pfs-Size or X-Pfs-Mtime-Ns header");
  }
  return info;
}

// A file on the server: each read is a request for that byte range.
class RemoteFile final : public FileHandle {
 public:
  RemoteFile(Transport& http, Ref ref, std::string path, FileInfo info)
      : http_(http), ref_(std::move(ref)), path_(std::move(path)), info_(std::move(info)) {}
  const FileInfo& info() const override { return info_; }

  Result<std::size_t> read_at(std::uint64_t offset, std::span<char> buf) override {
    return guard([&]() -> std::size_t {
      if (offset >= info_.size || buf.empty()) return 0;
      std::string out;
      auto sink = Sink::to_string(&out);
      ReadRange r;
      r.offset = offset;
      r.length = std::min<std::uint64_t>(buf.size(), info_.size - offset);
      fetch(http_, ref_, path_, *sink, r, false);
      std::size_t n = std::min(out.size(), buf.size());
      std::memcpy(buf.data(), out.data(), n);
      return n;
    });
  }

 private:
  Transport& http_;
  Ref ref_;
  std::string path_;
  FileInfo info_;
};

// A batch travels as one tar stream (POST /dir/<path>), so that the
// server publishes it in one operation, as a local put_dir does.
PutDirResult post_tar(Transport& http, std::string_view branch, std::string_view path, TarSource& tar) {
  Query q;
  q.add("branch", branch);
  std::string p = normalize_path(path, true);
  Req rq{"POST", (p.empty() ? std::string("/dir") : file_target("/dir/", p)) + q.str()};
  rq.upload = &tar;
  rq.progress = true;
  return as<PutDirResult>(http.parse(http.request(rq).body));
}

// A tar header needs the file's size first: a Source that is not a
// regular file is copied to an unnamed temporary file.
UniqueFd spool(Source& src) {
  struct stat st {};
  if (src.fd() >= 0 && ::fstat(src.fd(), &st) == 0 && S_ISREG(st.st_mode) &&
      ::lseek(src.fd(), 0, SEEK_CUR) == 0) {
    UniqueFd fd(::fcntl(src.fd(), F_DUPFD_CLOEXEC, 0));
    if (fd) return fd;
  }
  const char* tmp = std::getenv("TMPDIR");
  std::string dir = tmp && *tmp ? tmp : "/tmp";
  UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!fd) fail_errno(errno, "create a temporary file in " + dir);
  std::vector<char> buf(1 << 20);
  for (;;) {
    std::size_t n = unwrap(src.read(buf));
    if (n == 0) break;
    write_all(fd.get(), buf.data(), n, "write a temporary file");
  }
  if (::lseek(fd.get(), 0, SEEK_SET) != 0) fail_errno(errno, "rewind a temporary file");
  return fd;
}

// Writes the files and directories of a tar stream below `outfd`: only
// those, only at checked relative paths, never through a symlink, never
// over an existing file.
void unpack(Source& in, int outfd, const std::string& local, TreeStats& copied) {
  TarReader tar(in);
  TarReader::Entry e;
  std::vector<char> buf(1 << 20);
  while (tar.next(e)) {
    std::string rel = normalize_path(e.path);
    if (e.type == TarReader::Entry::Type::kOther)
      failf(ErrorCode::kIo, "the server sent \"{}\", which is neither a file nor a directory", rel);
    if (e.type == TarReader::Entry::Type::kDir) {
      mkdirs_beneath(outfd, rel);
      continue;
    }
    if (rel.find('/') != std::string::npos) mkdirs_beneath(outfd, path_parent(rel));
    UniqueFd f = open_beneath(outfd, rel, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (!f) fail_errno(errno, "create " + local + "/" + rel);
    std::uint64_t n = 0;
    for (;;) {
      std::size_t got = tar.read(buf);
      if (got == 0) break;
      write_all(f.get(), buf.data(), got, "write " + local + "/" + rel);
      n += got;
    }
    copied.files += 1;
    copied.bytes += n;
  }
}

}  // namespace

Result<FileInfo> RemoteClient::put_file(std::string_view branch, std::string_view path, Source& src,
                                        const PutOptions& opts) {
  return guard([&] {
    Query q;
    q.add("branch", branch);
    if (opts.append) q.add("append", "true");
    if (opts.offset) q.add("offset", std::to_string(*opts.offset));
    Req rq{"POST", file_target("/file/", path) + q.str()};
    rq.upload = &src;
    rq.upload_size = size_left(src);
    rq.progress = true;
    return as<FileInfo>(http_.parse(http_.request(rq).body));
  });
}

Result<PutDirResult> RemoteClient::put_dir(std::string_view branch, std::string_view path,
                                           const std::filesystem::path& local_dir) {
  return guard([&] {
    std::string p = normalize_path(path, true);
    UniqueFd dir = open_input_dir(local_dir);
    std::vector<std::string> files, skipped;
    walk_local_dir(dir.get(), "", p, files, skipped);
    TarSource tar([&, i = std::size_t{0}](std::string& rel, UniqueFd& fd) mutable {
      if (i == files.size()) return false;
      rel = files[i++];
      fd = open_beneath(dir.get(), rel, O_RDONLY | O_CLOEXEC);
      if (!fd) fail_errno(errno, "open " + (local_dir / rel).string());
      return true;
    });
    PutDirResult r = post_tar(http_, branch, p, tar);
    r.skipped = std::move(skipped);
    return r;
  });
}

Result<PutDirResult> RemoteClient::put_files(std::string_view branch, std::string_view path,
                                             FileBatch& batch) {
  return guard([&] {
    TarSource tar([&](std::string& rel, UniqueFd& fd) {
      Source* src = unwrap(batch.next(rel));
      if (!src) return false;
      fd = spool(*src);
      return true;
    });
    return post_tar(http_, branch, path, tar);
  });
}

Result<std::unique_ptr<FileHandle>> RemoteClient::open_file(const Ref& ref, std::string_view path) {
  return guard([&]() -> std::unique_ptr<FileHandle> {
    FileInfo info = stat(http_, ref, path);
    if (info.type == FileInfo::Type::kDirectory)
      failf(ErrorCode::kInvalidArgument, "\"{}\" is a directory (list it with list-file)", info.path);
    return std::make_unique<RemoteFile>(http_, ref, std::string(path), std::move(info));
  });
}

Result<FileInfo> RemoteClient::get_file(const Ref& ref, std::string_view path, Sink& sink,
                                        const ReadRange& range) {
  return guard([&] { return fetch(http_, ref, path, sink, range, true); });
}

// GET /archive/<path>: the tar stream is written into a pipe by libcurl
// on a thread of its own and unpacked here as it comes.
Result<TreeStats> RemoteClient::get_dir(const Ref& ref, std::string_view path,
                                        const std::filesystem::path& local_dir) {
  return guard([&] {
    std::string p = normalize_path(path, true);
    Query q;
    q.ref(ref);
    // Fail before making the local directory when the source is wrong.
    FileInfo info = stat(http_, ref, p);
    if (info.type != FileInfo::Type::kDirectory)
      failf(ErrorCode::kInvalidArgument, "\"{}\" is a file; copy a file without -r", p);
    UniqueFd out = open_output_dir(local_dir);
    BytePipe pipe;
    PipeSink sink(pipe);
    std::optional<Error> fetch_error;
    std::thread fetcher([&] {
      try {
        Req rq{"GET", (p.empty() ? std::string("/archive") : file_target("/archive/", p)) + q.str()};
        rq.download = &sink;
        rq.progress = true;
        http_.request(rq);
        pipe.finish(true);
      } catch (Fail& f) {
        fetch_error = f.error;
        pipe.finish(false, f.error.message, f.error.code);
      }
    });
    TreeStats copied;
    try {
      unpack(pipe, out.get(), local_dir.string(), copied);
    } catch (...) {
      pipe.close();  // the fetcher's next write fails: it stops
      fetcher.join();
      if (fetch_error) throw Fail{*fetch_error};
      throw;
    }
    // Whatever follows the archive's end (padding) is read and dropped,
    // so that the fetcher never waits on a full pipe.
    std::vector<char> rest(65536);
    for (;;) {
      auto n = pipe.read(rest);
      if (!n || *n == 0) break;
    }
    fetcher.join();
    if (fetch_error) throw Fail{*fetch_error};
    if (::syncfs(out.get()) != 0) fail_errno(errno, "sync " + local_dir.string());
    return copied;
  });
}

Result<FileInfo> RemoteClient::stat_file(const Ref& ref, std::string_view path) {
  return guard([&] { return stat(http_, ref, path); });
}

Result<TreeStats> RemoteClient::delete_file(std::string_view branch, std::string_view path) {
  return guard([&] {
    Query q;
    q.add("branch", branch);
    return as<TreeStats>(http_.parse(http_.request({"DELETE", file_target("/file/", path) + q.str()}).body));
  });
}

Result<std::vector<FileInfo>> RemoteClient::list_files(const Ref& ref, std::string_view dir_or_glob,
                                                       const ListOptions& opts) {
  return guard([&] {
    Query q;
    q.ref(ref);
    if (opts.recursive) q.add("recursive", "true");
    return as<std::vector<FileInfo>>(http_.get_json(file_target("/list/", dir_or_glob) + q.str()));
  });
}

}  // namespace pfs::detail::remote
