// http_client.cc: pfs::connect(): the Client interface over the HTTP API
// (docs/http.md), on libcurl. Every call is one request; errors come back as
// the server's {"error", "code"} and become the same pfs::Error a local
// store returns, so pachctl prints the same message and exits the same way.
#include <pfs/json.h>
#include <pfs/remote.h>
#include <pfs/server.h>

#include <curl/curl.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "fail.h"
#include "fsutil.h"
#include "names.h"
#include "pipe.h"
#include "local_dir.h"
#include "tar.h"

namespace pfs {
namespace detail {
namespace {

using json = nlohmann::json;

// Percent-encodes everything but unreserved characters (and '/' in paths).
std::string encode(std::string_view s, bool keep_slash) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/'))
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  return out;
}

// A query string built up one parameter at a time.
class Query {
 public:
  Query& add(std::string_view key, std::string_view value) {
    out_ += out_.empty() ? '?' : '&';
    out_ += encode(key, false);
    out_ += '=';
    out_ += encode(value, false);
    return *this;
  }
  Query& ref(const Ref& r, std::string_view prefix = "") {
    switch (r.kind) {
      case Ref::Kind::kBranch:
        return add(std::string(prefix) + "branch", r.name);
      case Ref::Kind::kCommit:
        return add(std::string(prefix) + "commit", r.name);
      case Ref::Kind::kAuto:
        return add(prefix.empty() ? "ref" : prefix.substr(0, prefix.size() - 1), r.name);
    }
    return *this;
  }
  const std::string& str() const { return out_; }

 private:
  std::string out_;
};

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
};

// One request's state, shared with libcurl's callbacks.
struct Call {
  Source* upload = nullptr;       // the body, read as libcurl asks
  std::optional<Error> upload_error;
  Sink* download = nullptr;       // where a 2xx body goes (else into `body`)
  std::optional<Error> download_error;
  std::string body;               // a non-file response body
  long status = 0;
  CURL* curl = nullptr;
  std::vector<std::pair<std::string, std::string>> headers;
  const std::function<void(const Progress&)>* progress = nullptr;
  std::chrono::steady_clock::time_point last_progress{};
};

std::size_t on_read(char* buf, std::size_t size, std::size_t n, void* p) {
  auto* call = static_cast<Call*>(p);
  auto r = call->upload->read(std::span<char>(buf, size * n));
  if (!r) {
    call->upload_error = r.error();
    return CURL_READFUNC_ABORT;
  }
  return *r;
}

std::size_t on_write(char* data, std::size_t size, std::size_t n, void* p) {
  auto* call = static_cast<Call*>(p);
  std::size_t len = size * n;
  if (call->status == 0) curl_easy_getinfo(call->curl, CURLINFO_RESPONSE_CODE, &call->status);
  if (call->download && call->status >= 200 && call->status < 300) {
    auto r = call->download->write(std::span<const char>(data, len));
    if (!r) {
      call->download_error = r.error();
      return 0;  // aborts the transfer
    }
    return len;
  }
  call->body.append(data, len);
  return len;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* p) {
  auto* call = static_cast<Call*>(p);
  std::string_view line(data, size * n);
  auto colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string key(line.substr(0, colon));
    for (auto& ch : key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    std::string_view v = line.substr(colon + 1);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.remove_suffix(1);
    call->headers.emplace_back(std::move(key), std::string(v));
  }
  return size * n;
}

int on_progress(void* p, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow) {
  auto* call = static_cast<Call*>(p);
  if (!call->progress || !*call->progress) return 0;
  auto now = std::chrono::steady_clock::now();
  if (now - call->last_progress < std::chrono::milliseconds(100)) return 0;
  call->last_progress = now;
  Progress pr;
  pr.upload = call->upload != nullptr;
  pr.done = static_cast<std::uint64_t>(pr.upload ? ulnow : dlnow);
  pr.total = static_cast<std::uint64_t>(pr.upload ? ultotal : dltotal);
  (*call->progress)(pr);
  return 0;
}

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

class RemoteClient;

// A file on the server: each read is a request for that byte range.
class RemoteFile final : public FileHandle {
 public:
  RemoteFile(RemoteClient& c, Ref ref, std::string path, FileInfo info)
      : c_(c), ref_(std::move(ref)), path_(std::move(path)), info_(std::move(info)) {}
  const FileInfo& info() const override { return info_; }
  Result<std::size_t> read_at(std::uint64_t offset, std::span<char> buf) override;

 private:
  RemoteClient& c_;
  Ref ref_;
  std::string path_;
  FileInfo info_;
};

class RemoteClient final : public Client {
 public:
  RemoteClient(std::string base, RemoteOptions opts) : base_(std::move(base)), opts_(std::move(opts)) {}
  ~RemoteClient() override {
    for (CURL* h : idle_) curl_easy_cleanup(h);
  }

  // ---- the request machinery

  struct Req {
    Req(std::string m, std::string t) : method(std::move(m)), target(std::move(t)) {}
    std::string method;
    std::string target;  // path and query, already encoded
    Source* upload = nullptr;
    std::optional<std::uint64_t> upload_size;
    Sink* download = nullptr;
    bool progress = false;
  };
  struct Resp {
    long status = 0;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string header(std::string_view key) const {
      for (const auto& [k, v] : headers)
        if (k == key) return v;
      return {};
    }
  };

  // Sends a request; a non-2xx answer becomes its pfs::Error (thrown).
  Resp request(const Req& rq, const std::vector<long>& also_ok = {}) {
    CURL* h = take_handle();
    struct Back {
      RemoteClient* c;
      CURL* h;
      ~Back() { c->give_back(h); }
    } back{this, h};
    Call call;
    call.curl = h;
    call.upload = rq.upload;
    call.download = rq.download;
    if (rq.progress) call.progress = &opts_.progress;
    std::string url = base_ + rq.target;
    curl_easy_setopt(h, CURLOPT_URL, url.c_str());
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq.method == "GET" ? nullptr : rq.method.c_str());
    curl_easy_setopt(h, CURLOPT_NOBODY, rq.method == "HEAD" ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &call);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &call);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, opts_.connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    // Send "a/../b" as it is, for the server to refuse, rather than as "b".
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &call);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, rq.progress && opts_.progress ? 0L : 1L);
    struct curl_slist* hdrs = nullptr;
    if (!opts_.token.empty()) hdrs = curl_slist_append(hdrs, ("Authorization: Bearer " + opts_.token).c_str());
    if (rq.upload) {
      curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
      curl_easy_setopt(h, CURLOPT_READDATA, &call);
      if (rq.upload_size)
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(*rq.upload_size));
      else
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(-1));
    } else {
      curl_easy_setopt(h, CURLOPT_UPLOAD, 0L);
      if (rq.method == "POST") {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L);
      } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, rq.method == "GET" ? 1L : 0L);
        if (rq.method != "GET") curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq.method.c_str());
      }
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    CURLcode rc = curl_easy_perform(h);
    if (call.progress && *call.progress) {
      Progress end;
      end.upload = rq.upload != nullptr;
      end.finished = true;
      (*call.progress)(end);
    }
    curl_slist_free_all(hdrs);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    if (call.upload_error) throw Fail{*call.upload_error};
    if (call.download_error) throw Fail{*call.download_error};
    if (rc != CURLE_OK)
      failf(ErrorCode::kIo, "the request to {} failed: {}", base_, curl_easy_strerror(rc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &call.status);
    Resp r{call.status, std::move(call.body), std::move(call.headers)};
    bool ok = r.status >= 200 && r.status < 300;
    for (long s : also_ok) ok = ok || r.status == s;
    if (!ok) throw Fail{error_of(r)};
    return r;
  }

  Error error_of(const Resp& r) {
    // The code the body names, else the status's (server.h: one table).
    Error e{code_of_http_status(static_cast<int>(r.status)),
            fmt::format("the server answered HTTP {}", r.status)};
    auto j = json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("error") && j["error"].is_string()) {
      e.message = j["error"].get<std::string>();
      if (auto c = code_from_name(j.value("code", ""))) e.code = *c;
    } else if (r.status == 401) {
      e.code = ErrorCode::kPermissionDenied;
      e.message = "the server needs a token (--token-file or PFS_TOKEN)";
    }
    return e;
  }

  json get_json(const std::string& target) { return parse(request({"GET", target}).body); }
  json post_json(const std::string& target) { return parse(request({"POST", target}).body); }
  json parse(const std::string& body) {
    auto j = json::parse(body, nullptr, false);
    if (j.is_discarded())
      failf(ErrorCode::kIo, "the server at {} sent a malformed answer (not JSON)", base_);
    return j;
  }
  template <class T>
  static T as(const json& j) {
    try {
      return j.get<T>();
    } catch (const json::exception& e) {
      failf(ErrorCode::kIo, "the server sent an unexpected answer: {}", e.what());
    }
  }

  static std::string file_target(std::string_view route, std::string_view path) {
    return std::string(route) + encode(path, true);
  }

  // ---- Client

  Result<StoreInfo> info() override {
    return guard([&] { return as<StoreInfo>(get_json("/info")); });
  }

  Result<FileInfo> put_file(std::string_view branch, std::string_view path, Source& src,
                            const PutOptions& opts) override {
    return guard([&] {
      Query q;
      q.add("branch", branch);
      if (opts.append) q.add("append", "true");
      if (opts.offset) q.add("offset", std::to_string(*opts.offset));
      Req rq{"POST", file_target("/file/", path) + q.str()};
      rq.upload = &src;
      rq.upload_size = size_left(src);
      rq.progress = true;
      return as<FileInfo>(parse(request(rq).body));
    });
  }

  // The bytes a Source has left when it is a regular file (sent with a
  // Content-Length); otherwise unknown (sent chunked).
  static std::optional<std::uint64_t> size_left(Source& src) {
    struct stat st {};
    if (src.fd() >= 0 && ::fstat(src.fd(), &st) == 0 && S_ISREG(st.st_mode)) {
      off_t pos = ::lseek(src.fd(), 0, SEEK_CUR);
      if (pos >= 0 && pos <= st.st_size) return static_cast<std::uint64_t>(st.st_size - pos);
    }
    return std::nullopt;
  }

  // A batch travels as one tar stream (POST /dir/<path>), so that the
  // server publishes it in one operation, as a local put_dir does.
  PutDirResult post_tar(std::string_view branch, std::string_view path, TarSource& tar) {
    Query q;
    q.add("branch", branch);
    std::string p = normalize_path(path, true);
    Req rq{"POST", (p.empty() ? std::string("/dir") : file_target("/dir/", p)) + q.str()};
    rq.upload = &tar;
    rq.progress = true;
    return as<PutDirResult>(parse(request(rq).body));
  }

  Result<PutDirResult> put_dir(std::string_view branch, std::string_view path,
                               const std::filesystem::path& local_dir) override {
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
      PutDirResult r = post_tar(branch, p, tar);
      r.skipped = std::move(skipped);
      return r;
    });
  }

  Result<PutDirResult> put_files(std::string_view branch, std::string_view path,
                                 FileBatch& batch) override {
    return guard([&] {
      TarSource tar([&](std::string& rel, UniqueFd& fd) {
        Source* src = unwrap(batch.next(rel));
        if (!src) return false;
        fd = spool(*src);
        return true;
      });
      return post_tar(branch, path, tar);
    });
  }

  // A tar header needs the file's size first: a Source that is not a
  // regular file is copied to an unnamed temporary file.
  static UniqueFd spool(Source& src) {
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

  Result<std::unique_ptr<FileHandle>> open_file(const Ref& ref, std::string_view path) override {
    return guard([&]() -> std::unique_ptr<FileHandle> {
      FileInfo info = stat(ref, path);
      if (info.type == FileInfo::Type::kDirectory)
        failf(ErrorCode::kInvalidArgument, "\"{}\" is a directory (list it with list-file)", info.path);
      return std::make_unique<RemoteFile>(*this, ref, std::string(path), std::move(info));
    });
  }

  // Reads [offset, offset+length) of a file into `sink`.
  FileInfo fetch(const Ref& ref, std::string_view path, Sink& sink, const ReadRange& range,
                 bool progress) {
    Query q;
    q.ref(ref);
    if (range.offset > 0 || range.length) q.add("offset", std::to_string(range.offset));
    if (range.length) q.add("length", std::to_string(*range.length));
    Req rq{"GET", file_target("/file/", path) + q.str()};
    rq.download = &sink;
    rq.progress = progress;
    Resp r = request(rq);
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

  Result<FileInfo> get_file(const Ref& ref, std::string_view path, Sink& sink,
                            const ReadRange& range) override {
    return guard([&] { return fetch(ref, path, sink, range, true); });
  }

  // GET /archive/<path>: the tar stream is written into a pipe by libcurl
  // on a thread of its own and unpacked here as it comes.
  Result<TreeStats> get_dir(const Ref& ref, std::string_view path,
                            const std::filesystem::path& local_dir) override {
    return guard([&] {
      std::string p = normalize_path(path, true);
      Query q;
      q.ref(ref);
      // Fail before making the local directory when the source is wrong.
      FileInfo info = stat(ref, p);
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
          request(rq);
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

  // Writes the files and directories of a tar stream below `outfd`: only
  // those, only at checked relative paths, never through a symlink, never
  // over an existing file.
  static void unpack(Source& in, int outfd, const std::string& local, TreeStats& copied) {
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

  FileInfo stat(const Ref& ref, std::string_view path) {
    Query q;
    q.ref(ref);
    return as<FileInfo>(get_json(file_target("/stat/", path) + q.str()));
  }

  Result<FileInfo> stat_file(const Ref& ref, std::string_view path) override {
    return guard([&] { return stat(ref, path); });
  }

  Result<TreeStats> delete_file(std::string_view branch, std::string_view path) override {
    return guard([&] {
      Query q;
      q.add("branch", branch);
      return as<TreeStats>(parse(request({"DELETE", file_target("/file/", path) + q.str()}).body));
    });
  }

  Result<std::vector<FileInfo>> list_files(const Ref& ref, std::string_view dir_or_glob,
                                           const ListOptions& opts) override {
    return guard([&] {
      Query q;
      q.ref(ref);
      if (opts.recursive) q.add("recursive", "true");
      return as<std::vector<FileInfo>>(get_json(file_target("/list/", dir_or_glob) + q.str()));
    });
  }

  Result<CommitInfo> commit(std::string_view branch, std::string_view message) override {
    return guard([&] {
      Query q;
      q.add("branch", branch);
      if (!message.empty()) q.add("message", message);
      return as<CommitInfo>(post_json("/commit" + q.str()));
    });
  }

  Result<std::vector<CommitInfo>> list_commits(const LogOptions& opts) override {
    return guard([&] {
      Query q;
      if (opts.all) q.add("all", "true");
      else q.add("branch", opts.branch);
      if (opts.limit) q.add("limit", std::to_string(*opts.limit));
      return as<std::vector<CommitInfo>>(get_json("/commit" + q.str()));
    });
  }

  Result<CommitInfo> inspect_commit(std::string_view commit) override {
    return guard([&] { return as<CommitInfo>(get_json("/commit/" + named(commit, "commit"))); });
  }

  Result<void> delete_commit(std::string_view commit) override {
    return guard([&] { request({"DELETE", "/commit/" + named(commit, "commit")}); });
  }

  Result<BranchInfo> create_branch(std::string_view name, std::string_view from_commit) override {
    return guard([&] {
      Query q;
      q.add("branch", name);
      if (!from_commit.empty()) q.add("commit", from_commit);
      return as<BranchInfo>(post_json("/branch" + q.str()));
    });
  }

  Result<std::vector<BranchInfo>> list_branches() override {
    return guard([&] { return as<std::vector<BranchInfo>>(get_json("/branch")); });
  }

  Result<BranchInfo> inspect_branch(std::string_view name) override {
    return guard([&] { return as<BranchInfo>(get_json("/branch/" + named(name, "branch"))); });
  }

  Result<void> delete_branch(std::string_view name) override {
    return guard([&] { request({"DELETE", "/branch/" + named(name, "branch")}); });
  }

  Result<std::vector<DiffEntry>> diff(const Ref& from, const Ref& to) override {
    return guard([&] {
      Query q;
      q.ref(from, "from_").ref(to, "to_");
      return as<std::vector<DiffEntry>>(get_json("/diff" + q.str()));
    });
  }

  Result<CommitInfo> revert(std::string_view branch, std::string_view commit,
                            const RevertOptions& opts) override {
    return guard([&] {
      Query q;
      q.add("branch", branch).add("commit", commit);
      if (opts.force) q.add("force", "true");
      if (!opts.message.empty()) q.add("message", opts.message);
      return as<CommitInfo>(post_json("/revert" + q.str()));
    });
  }

  Result<MergeResult> merge(std::string_view into, std::string_view from,
                            const MergeOptions& opts) override {
    return guard([&] {
      Query q;
      q.add("into", into).add("from", from);
      switch (opts.on_conflict) {
        case MergeOptions::Strategy::kFail: break;
        case MergeOptions::Strategy::kOurs: q.add("on_conflict", "ours"); break;
        case MergeOptions::Strategy::kTheirs: q.add("on_conflict", "theirs"); break;
      }
      if (!opts.message.empty()) q.add("message", opts.message);
      Resp r = request({"POST", "/merge" + q.str()}, {409});
      json j = parse(r.body);
      if (r.status == 409 && !j.contains("conflicts")) throw Fail{error_of(r)};
      return as<MergeResult>(j);
    });
  }

  // ---- replication

  // A Sink that passes bytes on and tells whether it failed itself (rather
  // than the connection).
  class CountingSink final : public Sink {
   public:
    explicit CountingSink(Sink& out) : out_(out) {}
    Result<void> write(std::span<const char> data) override {
      auto r = out_.write(data);
      if (!r) failed = true;
      else bytes += data.size();
      return r;
    }
    std::uint64_t bytes = 0;
    bool failed = false;

   private:
    Sink& out_;
  };

  Result<CommitInfo> send(std::string_view commit, Sink& out, const SendOptions& opts) override {
    return guard([&] {
      // The commit first: what send returns, and the same error as a local
      // store for a name that is no commit, before any byte has moved.
      CommitInfo info = as<CommitInfo>(get_json("/commit/" + named(commit, "commit")));
      Query q;
      if (!opts.parent.empty()) q.add("parent", opts.parent);
      CountingSink counted(out);
      Req rq{"GET", "/send/" + encode(info.id, false) + q.str()};
      rq.download = &counted;
      rq.progress = true;
      try {
        request(rq);
      } catch (Fail& f) {
        // NOTE: the server can only report an error found after the stream
        // began by cutting the connection: that is this kIo.
        if (f.error.code == ErrorCode::kIo && !counted.failed && counted.bytes > 0)
          f.error.message = fmt::format("the stream of commit {} from {} broke off after {} bytes ({}); "
                                        "nothing of it may be used",
                                        info.id, base_, counted.bytes, f.error.message);
        throw;
      }
      return info;
    });
  }

  Result<ReceiveResult> receive(Source& in, const ReceiveOptions& opts) override {
    return guard([&] {
      Query q;
      q.add("branch", opts.branch);
      if (!opts.parent.empty()) q.add("parent", opts.parent);
      if (const auto& c = opts.as_commit) {
        q.add("id", c->id);
        if (!c->parent.empty()) q.add("commit_parent", c->parent);
        if (!c->merge_parent.empty()) q.add("merge_parent", c->merge_parent);
        q.add("commit_branch", c->branch).add("time_ns", std::to_string(c->time_ns));
        q.add("message", c->message);
        q.add("files", std::to_string(c->stats.files)).add("bytes", std::to_string(c->stats.bytes));
      }
      Req rq{"POST", "/receive" + q.str()};
      rq.upload = &in;
      rq.upload_size = size_left(in);
      rq.progress = true;
      return as<ReceiveResult>(parse(request(rq).body));
    });
  }

  Result<BranchInfo> set_branch_head(std::string_view name, std::string_view commit,
                                     const SetHeadOptions& opts) override {
    return guard([&] {
      Query q;
      q.add("commit", commit);
      if (opts.expected_head) q.add("expect", *opts.expected_head);
      if (opts.force) q.add("force", "true");
      return as<BranchInfo>(post_json("/branch/" + named(name, "branch") + "/head" + q.str()));
    });
  }

  Result<FsckReport> fsck(bool repair) override {
    return guard([&] {
      return as<FsckReport>(repair ? post_json("/fsck?repair=true") : get_json("/fsck"));
    });
  }

  Result<GcReport> gc() override {
    return guard([&] { return as<GcReport>(post_json("/gc")); });
  }

  // A name in a route's last segment: never empty (that would be another
  // route), encoded.
  static std::string named(std::string_view name, std::string_view what) {
    if (name.empty()) failf(ErrorCode::kInvalidArgument, "the {} name is empty", what);
    return encode(name, false);
  }

 private:
  CURL* take_handle() {
    {
      std::lock_guard lk(mu_);
      if (!idle_.empty()) {
        CURL* h = idle_.back();
        idle_.pop_back();
        return h;
      }
    }
    static CurlGlobal global;
    CURL* h = curl_easy_init();
    if (!h) fail(ErrorCode::kInternal, "curl_easy_init failed");
    return h;
  }
  void give_back(CURL* h) {
    std::lock_guard lk(mu_);
    idle_.push_back(h);  // keeps its connection for the next request
  }

  std::string base_;
  RemoteOptions opts_;
  std::mutex mu_;
  std::vector<CURL*> idle_;
};

Result<std::size_t> RemoteFile::read_at(std::uint64_t offset, std::span<char> buf) {
  return guard([&]() -> std::size_t {
    if (offset >= info_.size || buf.empty()) return 0;
    std::string out;
    auto sink = Sink::to_string(&out);
    ReadRange r;
    r.offset = offset;
    r.length = std::min<std::uint64_t>(buf.size(), info_.size - offset);
    c_.fetch(ref_, path_, *sink, r, false);
    std::size_t n = std::min(out.size(), buf.size());
    std::memcpy(buf.data(), out.data(), n);
    return n;
  });
}

}  // namespace
}  // namespace detail

Result<std::unique_ptr<Client>> connect(std::string_view url, const RemoteOptions& options) {
  std::string base(url);
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (base.rfind("http://", 0) != 0 && base.rfind("https://", 0) != 0)
    return Error{ErrorCode::kInvalidArgument,
                 fmt::format("server address \"{}\" is not an http:// or https:// URL "
                             "(e.g. http://127.0.0.1:8080)",
                             url)};
  auto c = std::make_unique<detail::RemoteClient>(base, options);
  auto ok = detail::guard([&] { c->request({"GET", "/health"}); });
  if (!ok) {
    Error e = std::move(ok).error();
    if (e.code == ErrorCode::kIo)
      e.message = fmt::format("cannot reach a pfs server at {}: {} (is pachctl serve running?)", base,
                              e.message);
    return e;
  }
  return std::unique_ptr<Client>(std::move(c));
}

}  // namespace pfs
