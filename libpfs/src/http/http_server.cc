// http_server.cc: the HTTP API (docs/http.md) over a Client: its routes.
//
// The engine under it (http_engine.h: Boost.Beast on Boost.Asio) parses and
// checks each request, enforces the limits and runs the routes; a route
// reads its query and body from a Request and fills a Response. Uploads
// pull the body as a Source (Client::put_file publishes the file only when
// the body is complete); downloads are streamed from a FileHandle.
#include <pfs/json.h>
#include <pfs/server.h>

#include <cctype>
#include <charconv>
#include <cstring>
#include <ctime>
#include <thread>

#include <fmt/format.h>

#include "fail.h"
#include "fsutil.h"
#include "http_engine.h"
#include "names.h"
#include "pipe.h"
#include "local_dir.h"
#include "tar.h"

namespace pfs {

namespace {

// The one table of error codes and HTTP statuses: the server answers with
// the status of a code; the remote client reads a status back as the first
// code listed with it (when the body names no code of its own).
struct StatusOf {
  ErrorCode code;
  int status;
};
constexpr StatusOf kStatusTable[] = {
    {ErrorCode::kInvalidArgument, 400}, {ErrorCode::kPermissionDenied, 403},
    {ErrorCode::kNotFound, 404},        {ErrorCode::kConflict, 409},
    {ErrorCode::kAlreadyExists, 409},   {ErrorCode::kUnsupported, 501},
    {ErrorCode::kBusy, 503},            {ErrorCode::kIo, 500},
    {ErrorCode::kCorruption, 500},      {ErrorCode::kInternal, 500},
};

}  // namespace

int http_status(ErrorCode code) {
  for (const auto& e : kStatusTable)
    if (e.code == code) return e.status;
  return 500;
}

ErrorCode code_of_http_status(int status) {
  for (const auto& e : kStatusTable)
    if (e.status == status) return e.code;
  switch (status) {
    case 401:  // no or a wrong token
      return ErrorCode::kPermissionDenied;
    case 408:  // the request came too slowly; try again
      return ErrorCode::kBusy;
    default:   // 413, 414, 416, 417, 431: what was sent is not acceptable
      if (status >= 400 && status < 500) return ErrorCode::kInvalidArgument;
      return ErrorCode::kIo;
  }
}

namespace detail {
namespace {

using json = nlohmann::json;
using http::Request;
using http::Response;

constexpr std::size_t kPiece = 256 * 1024;  // read and write granularity

// A Result's value, or throws its error (caught by the route wrapper).
template <class T>
T take(Result<T>&& r) {
  if (!r) throw Fail{std::move(r).error()};
  return std::move(r).value();
}
void take(Result<void>&& r) {
  if (!r) throw Fail{std::move(r).error()};
}

// ---- query parameters

bool flag(const Request& req, const char* key) {
  const std::string* v = req.find(key);
  if (!v) return false;
  if (v->empty() || *v == "true" || *v == "1" || *v == "yes") return true;
  if (*v == "false" || *v == "0" || *v == "no") return false;
  failf(ErrorCode::kInvalidArgument, "query parameter {}={}: use true or false", key, *v);
}

std::uint64_t number(const Request& req, const char* key) {
  std::string v = req.param(key);
  if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string::npos)
    failf(ErrorCode::kInvalidArgument, "query parameter {}={}: not a non-negative integer", key, v);
  return std::stoull(v);
}

// A parameter that must be there, as number() reads it; `why` says what needs it.
std::uint64_t required_number(const Request& req, const char* key, std::string_view why) {
  if (!req.has(key)) failf(ErrorCode::kInvalidArgument, "query parameter {} is missing: {}", key, why);
  return number(req, key);
}

// The same for a signed integer (a time, which may be before 1970).
std::int64_t required_signed(const Request& req, const char* key, std::string_view why) {
  if (!req.has(key)) failf(ErrorCode::kInvalidArgument, "query parameter {} is missing: {}", key, why);
  std::string v = req.param(key);
  std::int64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (v.empty() || ec != std::errc() || end != v.data() + v.size())
    failf(ErrorCode::kInvalidArgument, "query parameter {}={}: not an integer", key, v);
  return n;
}

// Where a read looks: ?branch= (working state), ?commit= (a commit, or a
// branch's head), ?ref= (either, as Ref::any); master's working state when
// none is given.
Ref read_ref(const Request& req) {
  int given = req.has("branch") + req.has("commit") + req.has("ref");
  if (given > 1) fail(ErrorCode::kInvalidArgument, "give one of branch, commit and ref, not several");
  if (req.has("commit")) return Ref::commit(req.param("commit"));
  if (req.has("ref")) return Ref::any(req.param("ref"));
  return Ref::branch(req.param("branch", "master"));
}

std::string write_branch(const Request& req) { return req.param("branch", "master"); }

// POST /receive's options: ?branch=&parent=, and for replication the exact
// commit to record, one query parameter per CommitInfo field.
ReceiveOptions receive_options(const Request& req) {
  static constexpr const char* kCommitFields[] = {"commit_parent", "merge_parent", "commit_branch",
                                                  "time_ns",       "message",      "files",
                                                  "bytes"};
  ReceiveOptions o;
  o.branch = write_branch(req);
  o.parent = req.param("parent");
  if (!req.has("id")) {
    for (const char* key : kCommitFields)
      if (req.has(key))
        failf(ErrorCode::kInvalidArgument,
              "query parameter {} describes the commit to record: give it with id= (and "
              "time_ns=, files=, bytes=)",
              key);
    return o;
  }
  constexpr std::string_view why = "receiving as an exact commit (id=) needs time_ns, files and bytes";
  CommitInfo ci;
  ci.id = req.param("id");
  ci.parent = req.param("commit_parent");
  ci.merge_parent = req.param("merge_parent");
  ci.branch = req.param("commit_branch");
  ci.message = req.param("message");
  ci.time_ns = required_signed(req, "time_ns", why);
  ci.stats.files = required_number(req, "files", why);
  ci.stats.bytes = required_number(req, "bytes", why);
  o.as_commit = std::move(ci);
  return o;
}

// The path a route captured (decoded and UTF-8-checked by the engine); pfs's
// own checks (normalize_path) then refuse "..", "//", NUL and the like.
std::string captured(const Request& req, bool allow_root) {
  std::string p = req.matches.size() > 1 ? req.matches[1] : std::string();
  return normalize_path(p, allow_root);
}

// The regular files of a tar stream, as a FileBatch; other entries are
// listed in `skipped`, directories are implied by the files' paths.
class TarBatch final : public FileBatch {
 public:
  TarBatch(TarReader& tar, std::vector<std::string>& skipped) : tar_(tar), skipped_(skipped) {}
  Result<Source*> next(std::string& path) override {
    return guard([&]() -> Source* {
      TarReader::Entry e;
      while (tar_.next(e)) {
        std::string p = e.path;
        while (p.rfind("./", 0) == 0) p.erase(0, 2);
        if (e.type == TarReader::Entry::Type::kFile) {
          path = p;
          return &tar_.data();
        }
        if (e.type == TarReader::Entry::Type::kOther) skipped_.push_back(p);
      }
      return nullptr;
    });
  }

 private:
  TarReader& tar_;
  std::vector<std::string>& skipped_;
};

// `attachment; filename="<path>"` (RFC 6266), with the path quoted, plus its
// UTF-8 form (RFC 5987) when it is not plain ASCII.
std::string disposition(const std::string& path) {
  std::string quoted, encoded;
  bool ascii = true;
  for (unsigned char ch : path) {
    if (ch >= 0x80) {
      ascii = false;
      quoted += '_';
    } else {
      if (ch == '"' || ch == '\\') quoted += '\\';
      quoted += static_cast<char>(ch);
    }
    if (std::isalnum(ch) || std::strchr("!#$&+-.^_`|~/", ch))
      encoded += static_cast<char>(ch);
    else
      encoded += fmt::format("%{:02X}", ch);
  }
  std::string out = "attachment; filename=\"" + quoted + "\"";
  if (!ascii) out += "; filename*=UTF-8''" + encoded;
  return out;
}

// Streams `entries` (files and directories of `ref`) as a tar, with paths
// relative to `base`; false when the client went away or a file failed.
bool write_tar(Client& c, const Ref& ref, const std::vector<FileInfo>& entries, const std::string& base,
               http::BodyWriter& out, Response& res) {
  try {
    TarWriter tar([&](const char* p, std::size_t n) { return out.write(p, n); });
    std::vector<char> buf(kPiece);
    for (const auto& e : entries) {
      std::string name = base.empty() ? e.path : e.path.substr(base.size() + 1);
      if (e.type == FileInfo::Type::kDirectory) {
        tar.add_dir(name, e.mtime_ns);
        continue;
      }
      auto f = c.open_file(ref, e.path);
      if (!f) {  // gone since the listing: cut the response
        res.cut_reason = f.error().message;
        return false;
      }
      std::uint64_t size = (*f)->info().size, off = 0;
      tar.begin_file(name, size, (*f)->info().mtime_ns);
      while (off < size) {
        auto n = (*f)->read_at(off, std::span<char>(buf.data(), buf.size()));
        if (!n || *n == 0) return false;
        tar.data(buf.data(), *n);
        off += *n;
      }
    }
    tar.finish();
    return true;
  } catch (Fail& f) {
    res.cut_reason = f.error.message;
    return false;
  } catch (...) {
    return false;
  }
}

// ---- the router: literal pieces, "{seg}" (one non-empty segment) and
// "{rest}" (everything after, possibly empty), e.g. "/branch/{seg}/head".
class Router {
 public:
  void add(std::string method, std::string pattern, std::function<void(Request&, Response&)> fn,
           std::function<bool(const Request&)> quick = {}) {
    entries_.push_back({std::move(method), std::move(pattern), http::Route{std::move(fn), std::move(quick)}});
  }

  const http::Route* find(Request& req) const {
    // NOTE: not a ?: of "GET" and req.method: that makes a temporary string.
    std::string_view method = req.method;
    if (method == "HEAD") method = "GET";
    for (const auto& e : entries_) {
      if (e.method != method) continue;
      req.matches.assign(1, req.path);
      if (match(e.pattern, req.path, req.matches)) return &e.route;
    }
    req.matches.clear();
    return nullptr;
  }

 private:
  static bool match(std::string_view pat, std::string_view path, std::vector<std::string>& out) {
    while (!pat.empty()) {
      if (pat.rfind("{rest}", 0) == 0) {
        out.emplace_back(path);
        return true;
      }
      if (pat.rfind("{seg}", 0) == 0) {
        auto end = path.find('/');
        std::string_view seg = path.substr(0, end);
        if (seg.empty()) return false;
        out.emplace_back(seg);
        path.remove_prefix(seg.size());
        pat.remove_prefix(5);
        continue;
      }
      if (path.empty() || path.front() != pat.front()) return false;
      path.remove_prefix(1);
      pat.remove_prefix(1);
    }
    return path.empty();
  }

  struct Entry {
    std::string method, pattern;
    http::Route route;
  };
  std::vector<Entry> entries_;
};

class HttpServer final : public Server {
 public:
  HttpServer(std::unique_ptr<Client> store, ServerOptions opts)
      : store_(std::move(store)), opts_(std::move(opts)) {
    routes();
    http::EngineOptions e;
    e.host = opts_.host;
    e.port = opts_.port;
    e.workers = std::max<std::size_t>(opts_.threads, 1);
    e.io_threads = opts_.io_threads;
    e.max_connections = opts_.max_connections;
    e.max_per_client = opts_.max_per_client;
    e.header_timeout = opts_.header_timeout;
    e.idle_timeout = opts_.idle_timeout;
    e.io_timeout = opts_.io_timeout;
    e.max_upload = opts_.max_upload;
    e.log = opts_.log;
    engine_ = std::make_unique<http::Engine>(
        std::move(e), [this](Request& req) { return router_.find(req); },
        [this](const Request& req, Response& res) { return authorized(req, res); });
  }

  Result<void> bind() { return engine_->bind(); }
  int port() const override { return engine_->port(); }
  Result<void> run() override { return engine_->run(); }
  void stop() override { engine_->stop(); }

 private:
  using Fn = std::function<void(const Request&, Response&)>;

  // Every route runs through this: a Fail (bad input, a Client error)
  // becomes its JSON error. (The engine turns anything else into a 500.)
  static std::function<void(Request&, Response&)> h(Fn fn) {
    return [fn = std::move(fn)](Request& req, Response& res) {
      try {
        fn(req, res);
      } catch (Fail& f) {
        res.error(f.error);
      }
    };
  }
  // `quick`: always answered from the network thread (see http::Route).
  void get(const std::string& p, Fn fn, bool quick = false) {
    std::function<bool(const Request&)> always;
    if (quick) always = [](const Request&) { return true; };
    router_.add("GET", p, h(std::move(fn)), std::move(always));
  }
  void post(const std::string& p, Fn fn) { router_.add("POST", p, h(std::move(fn))); }
  void put(const std::string& p, Fn fn) { router_.add("PUT", p, h(std::move(fn))); }
  void del(const std::string& p, Fn fn) { router_.add("DELETE", p, h(std::move(fn))); }

  void routes();
  void file_routes();
  void commit_routes();

  // Whether the request carries the token (or needs none); a 401 when not.
  bool authorized(const Request& req, Response& res) const {
    if (opts_.token.empty()) return true;
    std::string want = "Bearer " + opts_.token;
    std::string got = req.header("Authorization");
    // Compared in constant time: the token is a secret.
    unsigned char diff = got.size() != want.size();
    for (std::size_t i = 0; i < want.size(); i++)
      diff |= static_cast<unsigned char>(want[i] ^ (i < got.size() ? got[i] : 0));
    if (diff == 0) return true;
    res.set_header("WWW-Authenticate", "Bearer");
    res.error(401, "unauthorized",
              "this server needs a token: send \"Authorization: Bearer TOKEN\" (pachctl: "
              "--token-file or PFS_TOKEN)");
    return false;
  }

  static Ref diff_ref(const Request& req, const char* side) {
    std::string s = side;
    std::string c = s + "_commit", b = s + "_branch";
    int given = req.has(s) + req.has(c) + req.has(b);
    if (given != 1) failf(ErrorCode::kInvalidArgument, "give exactly one of {}, {} and {}", s, c, b);
    if (req.has(c)) return Ref::commit(req.param(c));
    if (req.has(b)) return Ref::branch(req.param(b));
    return Ref::any(req.param(s));
  }

  // A Range header on a file of `len` bytes: {start, count} to send, or
  // nullopt for all of it; a 416 (thrown as done) when it is outside.
  static std::optional<std::pair<std::uint64_t, std::uint64_t>> range_of(const Request& req, Response& res,
                                                                         std::uint64_t len) {
    std::string value = req.header("Range");
    if (value.empty()) return std::nullopt;
    auto r = http::parse_range(value);
    if (!r) return std::nullopt;  // malformed or several ranges: the whole file (RFC 9110)
    auto [first, last] = *r;
    std::int64_t n = static_cast<std::int64_t>(len);
    if (first < 0) {  // a suffix: the last `last` bytes
      first = std::max<std::int64_t>(0, n - last);
      last = n - 1;
    } else if (last < 0 || last >= n) {
      last = n - 1;
    }
    if (first >= n || first > last) {
      res.set_header("Content-Range", fmt::format("bytes */{}", len));
      res.error(416, "invalid_argument",
                fmt::format("range {} is not within the file ({} bytes)", value.substr(0, 60), len));
      throw RangeRefused{};
    }
    return std::pair<std::uint64_t, std::uint64_t>(first, last - first + 1);
  }
  struct RangeRefused {};

  // Refuses an upload that cannot succeed before its body is read.
  void precheck_put(const std::string& branch, const std::string& path, const PutOptions& o) {
    if (o.append && o.offset) fail(ErrorCode::kInvalidArgument, "append and offset exclude each other; pick one");
    take(store_->inspect_branch(branch));
    if (o.offset) {
      FileInfo f = take(store_->stat_file(Ref::branch(branch), path));
      if (*o.offset > f.size)
        failf(ErrorCode::kInvalidArgument, "offset {} is past the end of \"{}\" ({} bytes)", *o.offset, path,
              f.size);
    }
  }

  void get_file(const Request& req, Response& res);
  void get_glob(const Request& req, Response& res, const std::string& pattern);
  void get_archive(const Request& req, Response& res);
  void get_send(const Request& req, Response& res);


  std::unique_ptr<Client> store_;
  ServerOptions opts_;
  Router router_;
  std::unique_ptr<http::Engine> engine_;
};

void HttpServer::routes() {
  Client& c = *store_;
  get("/health", [](const Request&, Response& res) { res.json(200, json{{"status", "ok"}}); }, true);
  get("/info", [&c](const Request&, Response& res) { res.json(200, json(take(c.info()))); });
  file_routes();
  commit_routes();

  // ---- replication: send streams out and in, branch heads by compare-and-swap
  get("/send/{seg}", [this](const Request& req, Response& res) { get_send(req, res); });
  post("/receive", [&c](const Request& req, Response& res) {
    ReceiveOptions o = receive_options(req);
    res.json(200, json(take(c.receive(*req.body, o))));
  });
  post("/branch/{seg}/head", [&c](const Request& req, Response& res) {
    if (!req.has("commit"))
      fail(ErrorCode::kInvalidArgument,
           "name the commit: POST /branch/NAME/head?commit=C[&expect=HEAD][&force=true]");
    SetHeadOptions o;
    if (req.has("expect")) o.expected_head = req.param("expect");  // "": no commits yet
    o.force = flag(req, "force");
    res.json(200, json(take(c.set_branch_head(req.matches[1], req.param("commit"), o))));
  });

  // ---- history and the store
  get("/diff", [&c](const Request& req, Response& res) {
    res.json(200, json(take(c.diff(diff_ref(req, "from"), diff_ref(req, "to")))));
  });
  post("/revert", [&c](const Request& req, Response& res) {
    if (!req.has("commit"))
      fail(ErrorCode::kInvalidArgument, "name the commit to restore: POST /revert?commit=C[&branch=B]");
    RevertOptions o;
    o.force = flag(req, "force");
    o.message = req.param("message");
    res.json(200, json(take(c.revert(write_branch(req), req.param("commit"), o))));
  });
  post("/merge", [&c](const Request& req, Response& res) {
    if (!req.has("from"))
      fail(ErrorCode::kInvalidArgument, "name the branch to merge: POST /merge?from=B[&into=master]");
    MergeOptions o;
    std::string how = req.param("on_conflict", "fail");
    if (how == "ours") o.on_conflict = MergeOptions::Strategy::kOurs;
    else if (how == "theirs") o.on_conflict = MergeOptions::Strategy::kTheirs;
    else if (how != "fail") failf(ErrorCode::kInvalidArgument, "on_conflict={}: use fail, ours or theirs", how);
    o.message = req.param("message");
    MergeResult m = take(c.merge(req.param("into", "master"), req.param("from"), o));
    json j = m;
    if (!m.conflicts.empty()) {
      j["error"] = fmt::format("the merge has {} conflict(s); nothing was changed", m.conflicts.size());
      j["code"] = "conflict";
      res.json(409, j);
    } else {
      res.json(200, j);
    }
  });
  get("/fsck", [&c](const Request&, Response& res) { res.json(200, json(take(c.fsck(false)))); });
  post("/fsck", [&c](const Request& req, Response& res) { res.json(200, json(take(c.fsck(flag(req, "repair"))))); });
  post("/gc", [&c](const Request&, Response& res) { res.json(200, json(take(c.gc()))); });
}

void HttpServer::file_routes() {
  Client& c = *store_;
  // GET of a file: on the network thread (a small one is answered from
  // there; a large one is then streamed by a worker); a glob, which lists,
  // always on a worker.
  router_.add("GET", "/file/{rest}", h([this](const Request& req, Response& res) {
                try {
                  get_file(req, res);
                } catch (RangeRefused&) {
                }
              }),
              [](const Request& req) { return req.matches.size() > 1 && !is_glob(req.matches[1]); });
  auto put_route = [this, &c](const Request& req, Response& res) {
    std::string b = write_branch(req), p = captured(req, false);
    PutOptions o;
    o.append = flag(req, "append");
    if (req.has("offset")) o.offset = number(req, "offset");
    precheck_put(b, p, o);
    res.json(200, json(take(c.put_file(b, p, *req.body, o))));
  };
  post("/file/{rest}", put_route);
  put("/file/{rest}", put_route);
  del("/file/{rest}", [&c](const Request& req, Response& res) {
    res.json(200, json(take(c.delete_file(write_branch(req), captured(req, false)))));
  });
  auto stat = [&c](const Request& req, Response& res) {
    res.json(200, json(take(c.stat_file(read_ref(req), captured(req, true)))));
  };
  get("/stat/{rest}", stat, true);
  get("/stat", stat, true);
  auto list = [&c](const Request& req, Response& res) {
    ListOptions o;
    o.recursive = flag(req, "recursive");
    std::string raw = req.matches.size() > 1 ? req.matches[1] : "";
    std::string p = is_glob(raw) ? raw : captured(req, true);
    res.json(200, json(take(c.list_files(read_ref(req), p, o))));
  };
  get("/list/{rest}", list);
  get("/list", list);

  // A directory as a tar stream, in and out.
  auto put_dir = [&c](const Request& req, Response& res) {
    std::string b = write_branch(req), p = captured(req, true);
    take(c.inspect_branch(b));
    std::vector<std::string> skipped;
    PutDirResult r = take(guard([&] {
      TarReader tar(*req.body);
      TarBatch batch(tar, skipped);
      return take(c.put_files(b, p, batch));
    }));
    r.skipped.insert(r.skipped.end(), skipped.begin(), skipped.end());
    res.json(200, json(r));
  };
  post("/dir/{rest}", put_dir);
  post("/dir", put_dir);
  auto archive = [this](const Request& req, Response& res) { get_archive(req, res); };
  get("/archive/{rest}", archive);
  get("/archive", archive);
}

void HttpServer::commit_routes() {
  Client& c = *store_;
  post("/commit", [&c](const Request& req, Response& res) {
    res.json(200, json(take(c.commit(write_branch(req), req.param("message")))));
  });
  get("/commit", [&c](const Request& req, Response& res) {
    LogOptions o;
    if (req.has("branch")) o.branch = req.param("branch");
    else o.all = true;  // v0.8: "GET /commit: getting all commits"
    if (req.has("all")) o.all = flag(req, "all");
    if (req.has("limit")) o.limit = number(req, "limit");
    res.json(200, json(take(c.list_commits(o))));
  });
  get("/commit/{seg}", [&c](const Request& req, Response& res) {
    res.json(200, json(take(c.inspect_commit(req.matches[1]))));
  });
  del("/commit/{seg}", [&c](const Request& req, Response& res) {
    take(c.delete_commit(req.matches[1]));
    res.json(200, json::object());
  });
  post("/branch", [&c](const Request& req, Response& res) {
    if (!req.has("branch"))
      fail(ErrorCode::kInvalidArgument, "name the new branch: POST /branch?branch=NAME[&commit=C]");
    res.json(201, json(take(c.create_branch(req.param("branch"), req.param("commit")))));
  });
  get("/branch", [&c](const Request&, Response& res) { res.json(200, json(take(c.list_branches()))); });
  get("/branch/{seg}", [&c](const Request& req, Response& res) {
    res.json(200, json(take(c.inspect_branch(req.matches[1]))));
  });
  del("/branch/{seg}", [&c](const Request& req, Response& res) {
    take(c.delete_branch(req.matches[1]));
    res.json(200, json::object());
  });
}

// GET /file/<path>: the file's bytes (a slice with ?offset=&length= or a
// Range header); a glob answers every match.
void HttpServer::get_file(const Request& req, Response& res) {
  const std::string& raw = req.matches[1];
  if (is_glob(raw)) return get_glob(req, res, raw);
  std::string p = captured(req, false);
  std::shared_ptr<FileHandle> f = take(store_->open_file(read_ref(req), p));
  // ?offset=&length=: a slice, checked as a local read checks it (the
  // remote client's ranges); the Range header works as well, within it.
  std::uint64_t size = f->info().size, start = 0, len = size;
  if (req.has("offset") || req.has("length")) {
    ReadRange r;
    if (req.has("offset")) r.offset = number(req, "offset");
    if (req.has("length")) r.length = number(req, "length");
    len = check_read_range(size, r, p);
    start = r.offset;
  }
  if (auto range = range_of(req, res, len)) {
    res.status = 206;
    res.set_header("Content-Range", fmt::format("bytes {}-{}/{}", range->first, range->first + range->second - 1, len));
    start += range->first;
    len = range->second;
  }
  res.content_type = "application/octet-stream";
  res.set_header("Accept-Ranges", "bytes");
  res.set_header("Last-Modified", http::http_date(static_cast<std::time_t>(f->info().mtime_ns / 1000000000)));
  res.set_header("X-Pfs-Size", std::to_string(size));
  res.set_header("X-Pfs-Mtime-Ns", std::to_string(f->info().mtime_ns));
  if (len <= kPiece) {
    // A small file goes out with its headers in one write, from here.
    res.body.resize(len);
    std::size_t got = 0;
    while (got < len) {
      std::size_t n = take(f->read_at(start + got, std::span<char>(res.body.data() + got, len - got)));
      if (n == 0) fail(ErrorCode::kIo, fmt::format("\"{}\" ended before its size; run pachctl fsck", p));
      got += n;
    }
    return;
  }
  res.stream_length = len;
  res.stream = [f, start, len, &res](http::BodyWriter& out) {
    std::vector<char> buf(kPiece);
    for (std::uint64_t off = 0; off < len;) {
      auto n = f->read_at(start + off, std::span<char>(buf.data(), std::min<std::uint64_t>(kPiece, len - off)));
      if (!n || *n == 0) {  // an error: cut the response (the client sees it short)
        res.cut_reason = n ? "the file ended before its size" : n.error().message;
        return false;
      }
      if (!out.write(buf.data(), *n)) return false;
      off += *n;
    }
    return true;
  };
}

// GET /archive/<dir>: everything below a directory, as a tar stream.
void HttpServer::get_archive(const Request& req, Response& res) {
  Ref ref = read_ref(req);
  std::string p = captured(req, true);
  FileInfo info = take(store_->stat_file(ref, p));
  if (info.type != FileInfo::Type::kDirectory)
    failf(ErrorCode::kInvalidArgument, "\"{}\" is a file; copy a file without -r", p);
  ListOptions o;
  o.recursive = true;
  auto entries = std::make_shared<std::vector<FileInfo>>(take(store_->list_files(ref, p, o)));
  Client* c = store_.get();
  res.content_type = "application/x-tar";
  res.stream = [c, ref, entries, p, &res](http::BodyWriter& out) { return write_tar(*c, ref, *entries, p, out, res); };
}

// GET /send/<commit>?parent=P: the commit's tree as a btrfs send stream,
// chunked. Both commits are looked up first (404 as JSON), and sent by id:
// a branch that moves meanwhile does not change what is sent. NOTE: the
// stream is written by Client::send on a thread of its own into a bounded
// pipe; the route waits for its first bytes (or its end) before it
// answers, so that an error found before any byte is still a JSON error
// with its own status, as locally; once bytes are out, an error can only
// cut the response short.
void HttpServer::get_send(const Request& req, Response& res) {
  CommitInfo commit = take(store_->inspect_commit(req.matches[1]));
  SendOptions o;
  if (std::string parent = req.param("parent"); !parent.empty()) o.parent = take(store_->inspect_commit(parent)).id;
  struct Job {
    BytePipe pipe;
    std::thread worker;
    ~Job() {
      pipe.close();  // a send still writing fails (kIo) and ends
      if (worker.joinable()) worker.join();
    }
  };
  class Out final : public Sink {
   public:
    explicit Out(BytePipe& p) : p_(p) {}
    Result<void> write(std::span<const char> data) override {
      if (!p_.push(data.data(), data.size())) return Error{ErrorCode::kIo, "the client closed the connection"};
      return {};
    }

   private:
    BytePipe& p_;
  };
  auto job = std::make_shared<Job>();
  Client* c = store_.get();
  job->worker = std::thread([job = job.get(), c, id = commit.id, o] {
    Out out(job->pipe);
    auto r = c->send(id, out, o);
    if (r) job->pipe.finish(true);
    else job->pipe.finish(false, r.error().message, r.error().code);
  });
  auto first = std::make_shared<std::string>(kPiece, '\0');
  first->resize(take(job->pipe.read(std::span<char>(first->data(), first->size()))));
  res.content_type = "application/octet-stream";
  res.set_header("Accept-Ranges", "none");  // a stream is sent whole (RFC 9110 allows it)
  res.set_header("X-Pfs-Commit", commit.id);
  if (!o.parent.empty()) res.set_header("X-Pfs-Parent", o.parent);
  res.stream = [job, first, &res](http::BodyWriter& out) {
    if (!out.write(first->data(), first->size())) return false;
    std::vector<char> buf(kPiece);
    for (;;) {
      auto n = job->pipe.read(std::span<char>(buf.data(), buf.size()));
      if (!n) {
        res.cut_reason = n.error().message;
        return false;
      }
      if (*n == 0) return true;
      if (!out.write(buf.data(), *n)) return false;
    }
  };
}

// Every file a glob matches, each as a part of a multipart/mixed body (or
// of a tar stream).
void HttpServer::get_glob(const Request& req, Response& res, const std::string& pattern) {
  Ref ref = read_ref(req);
  std::vector<FileInfo> all = take(store_->list_files(ref, pattern, {}));
  auto files = std::make_shared<std::vector<FileInfo>>();
  for (auto& f : all)
    if (f.type == FileInfo::Type::kFile) files->push_back(std::move(f));
  std::string format = req.param("format");
  if (format.empty() && req.header("Accept").find("application/x-tar") != std::string::npos) format = "tar";
  Client* c = store_.get();
  if (format == "tar") {
    res.content_type = "application/x-tar";
    res.stream = [c, ref, files, &res](http::BodyWriter& out) { return write_tar(*c, ref, *files, "", out, res); };
    return;
  }
  if (!format.empty() && format != "multipart")
    failf(ErrorCode::kInvalidArgument, "format={}: use multipart (the default) or tar", format);
  std::string boundary = "pfs-" + random_hex(24);
  res.content_type = "multipart/mixed; boundary=" + boundary;
  res.stream = [c, ref, files, boundary, &res](http::BodyWriter& out) {
    std::vector<char> buf(kPiece);
    for (const auto& info : *files) {
      auto f = c->open_file(ref, info.path);
      if (!f) {  // gone since the listing: cut the response
        res.cut_reason = f.error().message;
        return false;
      }
      std::string head = fmt::format(
          "--{}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n"
          "Content-Disposition: {}\r\n\r\n",
          boundary, (*f)->info().size, disposition(info.path));
      if (!out.write(head.data(), head.size())) return false;
      std::uint64_t off = 0, size = (*f)->info().size;
      while (off < size) {
        auto n = (*f)->read_at(off, buf);
        if (!n || *n == 0) return false;
        if (!out.write(buf.data(), *n)) return false;
        off += *n;
      }
      if (!out.write("\r\n", 2)) return false;
    }
    std::string tail = "--" + boundary + "--\r\n";
    return out.write(tail.data(), tail.size());
  };
}

}  // namespace
}  // namespace detail

Result<std::unique_ptr<Server>> Server::create(std::unique_ptr<Client> store, ServerOptions options) {
  if (options.token.empty() && !options.insecure && !detail::http::is_loopback_host(options.host))
    return Error{ErrorCode::kInvalidArgument,
                 fmt::format("refusing to serve {} without a token: anyone who can reach it could read and "
                             "change the store; give a token (pachctl serve --token-file FILE), listen on "
                             "127.0.0.1, or say --insecure if this network is trusted",
                             options.host)};
  if (!options.token.empty() && options.token.size() < kMinTokenLength)
    return Error{ErrorCode::kInvalidArgument,
                 fmt::format("the token is {} characters long; use at least {} (e.g. openssl rand -hex 32)",
                             options.token.size(), kMinTokenLength)};
  auto s = std::make_unique<detail::HttpServer>(std::move(store), std::move(options));
  if (auto r = s->bind(); !r) return std::move(r).error();
  return std::unique_ptr<Server>(std::move(s));
}

}  // namespace pfs
