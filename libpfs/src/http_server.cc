// http_server.cc: the HTTP API (docs/http.md) over a Client, on cpp-httplib.
//
// cpp-httplib serves each connection on a thread of its pool, with blocking
// sockets: simple, and a long transfer holds only its own thread. Request
// bodies arrive pushed (a ContentReader calls us with each piece) while
// Client::put_file pulls from a Source, so an upload runs put_file on a
// thread of its own, fed through a small bounded queue (BodyPipe): memory
// stays bounded whatever the file's size, and the file is published only
// when the body is complete. Downloads are pulled by cpp-httplib from a
// FileHandle, which also gives Range support.
#include <pfs/json.h>
#include <pfs/server.h>

#include <httplib.h>

#include <cctype>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "fail.h"
#include "fsutil.h"
#include "names.h"
#include "pipe.h"
#include "store.h"
#include "tar.h"

namespace pfs {

int http_status(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return 400;
    case ErrorCode::kPermissionDenied:
      return 403;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kConflict:
      return 409;
    case ErrorCode::kUnsupported:
      return 501;
    case ErrorCode::kBusy:
      return 503;
    case ErrorCode::kCorruption:
    case ErrorCode::kIo:
    case ErrorCode::kInternal:
      return 500;
  }
  return 500;
}

namespace detail {
namespace {

using json = nlohmann::json;
using httplib::Request;
using httplib::Response;

constexpr std::size_t kPiece = 256 * 1024;      // read and write granularity

void send_json(Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(j.dump() + "\n", "application/json");
}

void send_error(Response& res, const Error& e) { send_json(res, http_status(e.code), json(e)); }

void send_error(Response& res, ErrorCode code, std::string message) {
  send_error(res, Error{code, std::move(message)});
}

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

bool has(const Request& req, const char* key) { return req.has_param(key); }
std::string param(const Request& req, const char* key, std::string def = {}) {
  return req.has_param(key) ? req.get_param_value(key) : def;
}

bool flag(const Request& req, const char* key) {
  if (!req.has_param(key)) return false;
  std::string v = req.get_param_value(key);
  if (v.empty() || v == "true" || v == "1" || v == "yes") return true;
  if (v == "false" || v == "0" || v == "no") return false;
  failf(ErrorCode::kInvalidArgument, "query parameter {}={}: use true or false", key, v);
}

std::uint64_t number(const Request& req, const char* key) {
  std::string v = req.get_param_value(key);
  if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string::npos)
    failf(ErrorCode::kInvalidArgument, "query parameter {}={}: not a non-negative integer", key, v);
  return std::stoull(v);
}

// A parameter that must be there, as number() reads it; `why` says what needs it.
std::uint64_t required_number(const Request& req, const char* key, std::string_view why) {
  if (!req.has_param(key)) failf(ErrorCode::kInvalidArgument, "query parameter {} is missing: {}", key, why);
  return number(req, key);
}

// The same for a signed integer (a time, which may be before 1970).
std::int64_t required_signed(const Request& req, const char* key, std::string_view why) {
  if (!req.has_param(key)) failf(ErrorCode::kInvalidArgument, "query parameter {} is missing: {}", key, why);
  std::string v = req.get_param_value(key);
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
  int given = has(req, "branch") + has(req, "commit") + has(req, "ref");
  if (given > 1) fail(ErrorCode::kInvalidArgument, "give one of branch, commit and ref, not several");
  if (has(req, "commit")) return Ref::commit(param(req, "commit"));
  if (has(req, "ref")) return Ref::any(param(req, "ref"));
  return Ref::branch(param(req, "branch", "master"));
}

std::string write_branch(const Request& req) { return param(req, "branch", "master"); }

// POST /receive's options: ?branch=&parent=, and for replication the exact
// commit to record, one query parameter per CommitInfo field. NOTE: not
// headers: cpp-httplib 0.11 percent-decodes header values too, so a message
// with a '%' in it would not arrive as sent.
ReceiveOptions receive_options(const Request& req) {
  static constexpr const char* kCommitFields[] = {"commit_parent", "merge_parent", "commit_branch",
                                                  "time_ns",       "message",      "files",
                                                  "bytes"};
  ReceiveOptions o;
  o.branch = write_branch(req);
  o.parent = param(req, "parent");
  if (!has(req, "id")) {
    for (const char* key : kCommitFields)
      if (has(req, key))
        failf(ErrorCode::kInvalidArgument,
              "query parameter {} describes the commit to record: give it with id= (and "
              "time_ns=, files=, bytes=)",
              key);
    return o;
  }
  constexpr std::string_view why = "receiving as an exact commit (id=) needs time_ns, files and bytes";
  CommitInfo ci;
  ci.id = param(req, "id");
  ci.parent = param(req, "commit_parent");
  ci.merge_parent = param(req, "merge_parent");
  ci.branch = param(req, "commit_branch");
  ci.message = param(req, "message");
  ci.time_ns = required_signed(req, "time_ns", why);
  ci.stats.files = required_number(req, "files", why);
  ci.stats.bytes = required_number(req, "bytes", why);
  o.as_commit = std::move(ci);
  return o;
}

// The path a route captured: cpp-httplib has percent-decoded it; pfs's own
// checks (normalize_path) then refuse "..", "//", NUL, bad UTF-8 and the like.
std::string captured(const Request& req, bool allow_root) {
  std::string p = req.matches.size() > 1 ? req.matches[1].str() : std::string();
  return normalize_path(p, allow_root);
}

// ---- uploads

// Whether the request has a body. cpp-httplib reads a body without a
// length until the connection closes, which for `curl -XPOST URL` (no body,
// no Content-Length, a kept-alive connection) would hang: such a request
// has no body here.
bool has_body(const Request& req) {
  return req.has_header("Content-Length") ||
         req.get_header_value("Transfer-Encoding").find("chunked") != std::string::npos;
}

// Runs `check` (an upload's checks of its query, before its body is read);
// when it throws, the body is read and dropped first: left unread,
// cpp-httplib would parse it as the next request on this connection.
template <class Fn>
auto before_body(const Request& req, const httplib::ContentReader& body, Fn&& check) {
  try {
    return check();
  } catch (...) {
    if (has_body(req)) body([](const char*, std::size_t) { return true; });
    throw;
  }
}

// Runs `consume(pipe)` on a thread while the request body streams into the
// pipe; returns consume's result. When consume fails early, the rest of the
// body is read and dropped so that the client gets the error, not a reset.
// Thrown for an upload larger than ServerOptions::max_upload: a 413.
struct TooLarge {
  std::uint64_t max;
};
void send_too_large(Response& res, std::uint64_t max) {
  send_json(res, 413,
            json{{"error", fmt::format("the request body is larger than this server accepts ({} "
                                       "bytes; pachctl serve --max-upload)",
                                       max)},
                 {"code", "too_large"}});
}

template <class T>
Result<T> with_body(const Request& req, Response& res, const httplib::ContentReader& body,
                    std::uint64_t max, std::function<Result<T>(Source&)> consume) {
  if (!has_body(req)) {
    auto empty = Source::from_string("");
    return consume(*empty);
  }
  BytePipe pipe;
  std::optional<Result<T>> out;
  std::thread worker([&] {
    out.emplace(consume(pipe));
    pipe.close();
  });
  bool reader_gone = false, over = false;
  std::uint64_t total = 0;
  bool complete = body([&](const char* data, std::size_t n) {
    total += n;
    if (max > 0 && total > max) {  // cpp-httplib checks only a declared length
      over = true;
      return false;
    }
    if (!reader_gone && !pipe.push(data, n)) reader_gone = true;
    return true;  // keep reading: drop what the failed reader no longer wants
  });
  pipe.finish(complete);
  worker.join();
  // Over the limit: counted here (a chunked body), or refused by cpp-httplib
  // from its declared length (it then sets 413 and reads nothing).
  if (over || (!complete && res.status == 413)) throw TooLarge{max};
  if (!complete && out->ok())  // cannot happen: the pipe reports the break
    return Error{ErrorCode::kInvalidArgument,
                 "the upload was cut off before its end; nothing was written"};
  return std::move(*out);
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

// ---- the server

thread_local std::chrono::steady_clock::time_point t_request_start;
// Bytes a streamed response without a length has sent (for the log), and
// why it was cut off, when it was.
thread_local std::optional<std::uint64_t> t_streamed;
thread_local std::string t_cut_reason;

// GET /send's stream: Client::send writes it on a thread of its own into a
// bounded pipe, which the connection's thread empties into the response.
// NOTE: the handler waits for the first bytes (or the end) before it
// answers, so that an error send finds before it writes anything is still
// a JSON error with its own status, as locally; once bytes are out, the
// status (200) is too, and an error can only cut the response short.
class SendJob {
 public:
  SendJob(Client& c, std::string commit, SendOptions opts) {
    worker_ = std::thread([this, &c, commit = std::move(commit), opts = std::move(opts)] {
      Out out(pipe_);
      auto r = c.send(commit, out, opts);
      if (r) pipe_.finish(true);
      else pipe_.finish(false, r.error().message, r.error().code);
    });
  }
  ~SendJob() {
    pipe_.close();  // a send still writing fails (kIo) and ends
    worker_.join();
  }

  // Waits for the stream's first bytes; throws send's error when it failed
  // before writing any.
  void start() {
    first_.resize(kPiece);
    first_.resize(take(pipe_.read(std::span<char>(first_.data(), first_.size()))));
  }

  // The rest, into the response; false when it had to be cut off.
  bool stream(httplib::DataSink& sink) {
    thread_local std::vector<char> buf(kPiece);
    if (!put(sink, first_.data(), first_.size())) return false;
    first_ = {};
    for (;;) {
      auto n = pipe_.read(std::span<char>(buf.data(), buf.size()));
      if (!n) {
        t_cut_reason = n.error().message;
        return false;
      }
      if (*n == 0) break;
      if (!put(sink, buf.data(), *n)) return false;
    }
    sink.done();
    return true;
  }

 private:
  class Out final : public Sink {
   public:
    explicit Out(BytePipe& p) : p_(p) {}
    Result<void> write(std::span<const char> data) override {
      if (!p_.push(data.data(), data.size()))
        return Error{ErrorCode::kIo, "the client closed the connection"};
      return {};
    }

   private:
    BytePipe& p_;
  };

  static bool put(httplib::DataSink& sink, const char* p, std::size_t n) {
    if (n == 0) return true;
    if (!sink.write(p, n)) {
      t_cut_reason = "the client closed the connection";
      return false;
    }
    t_streamed = t_streamed.value_or(0) + n;
    return true;
  }

  BytePipe pipe_;
  std::string first_;
  std::thread worker_;
};

class HttpServer final : public Server {
 public:
  HttpServer(std::unique_ptr<Client> store, ServerOptions opts)
      : store_(std::move(store)), opts_(std::move(opts)) {}

  Result<void> bind() {
    return guard([&] {
      std::size_t threads = std::max<std::size_t>(opts_.threads, 2);
      svr_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
      svr_.set_keep_alive_max_count(100000);  // clients that keep a connection keep it
      svr_.set_keep_alive_timeout(5);
      svr_.set_read_timeout(60);
      svr_.set_write_timeout(60);
      svr_.set_tcp_nodelay(true);
      if (opts_.max_upload > 0) svr_.set_payload_max_length(opts_.max_upload);
      routes();
      if (opts_.port == 0) {
        port_ = svr_.bind_to_any_port(opts_.host);
      } else if (svr_.bind_to_port(opts_.host, opts_.port)) {
        port_ = opts_.port;
      }
      if (port_ <= 0)
        failf(opts_.port != 0 && opts_.port < 1024 ? ErrorCode::kPermissionDenied : ErrorCode::kBusy,
              "cannot listen on {}:{} (in use, not an address of this machine, or a privileged "
              "port); pick another with --listen HOST:PORT",
              opts_.host, opts_.port);
    });
  }

  int port() const override { return port_; }

  Result<void> run() override {
    bool ok = stopping_ || svr_.listen_after_bind();
    finished_ = true;
    if (!ok)
      return Error{ErrorCode::kIo, fmt::format("the server on port {} stopped with an error", port_)};
    return {};
  }

  void stop() override {
    stopping_ = true;
    // cpp-httplib's stop() does nothing before the server runs: wait for it
    // (or for run() to have given up).
    while (!svr_.is_running() && !finished_ && running_soon())
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    svr_.stop();
  }

 private:
  using Handler = std::function<void(const Request&, Response&)>;
  using ReadingHandler =
      std::function<void(const Request&, Response&, const httplib::ContentReader&)>;

  // Every handler runs through this: a Fail (bad input, a Client error)
  // becomes its JSON error; anything else is a 500 with the reason.
  static void wrap(Response& res, const std::function<void()>& fn) {
    try {
      fn();
    } catch (Fail& f) {
      send_error(res, f.error);
    } catch (const TooLarge& t) {
      send_too_large(res, t.max);
    } catch (const std::exception& e) {
      send_error(res, ErrorCode::kInternal, std::string("internal error: ") + e.what());
    }
  }
  Handler h(std::function<void(const Request&, Response&)> fn) {
    return [fn](const Request& req, Response& res) { wrap(res, [&] { fn(req, res); }); };
  }
  ReadingHandler hr(ReadingHandler fn) {
    return [fn](const Request& req, Response& res, const httplib::ContentReader& body) {
      wrap(res, [&] { fn(req, res, body); });
    };
  }

  // A POST route that takes no body: one that comes anyway is read and
  // dropped, so that the connection stays usable.
  void post(const std::string& pattern, std::function<void(const Request&, Response&)> fn) {
    svr_.Post(pattern, [fn](const Request& req, Response& res, const httplib::ContentReader& body) {
      if (has_body(req)) body([](const char*, std::size_t) { return true; });
      wrap(res, [&] { fn(req, res); });
    });
  }

  void routes() {
    Client& c = *store_;
    // Paths may hold any byte after decoding; [\s\S] also matches newlines.
    const std::string file = R"(/file/([\s\S]*))";

    svr_.set_pre_routing_handler([this](const Request& req, Response& res) {
      start_request();
      return authorized(req, res) ? httplib::Server::HandlerResponse::Unhandled
                                  : httplib::Server::HandlerResponse::Handled;
    });
    // A client that asks before sending a body (curl does for large ones)
    // learns that an upload cannot succeed before it sends the bytes.
    // NOTE: cpp-httplib calls this before routing, so before the pre-routing
    // handler: the token is checked here too (else the checks below would
    // tell a client without it which branches and files exist).
    svr_.set_expect_100_continue_handler([this](const Request& req, Response& res) {
      start_request();
      if (!authorized(req, res)) return res.status;
      constexpr std::string_view route = "/file/";
      if (req.method == "POST" && req.path == "/receive") {
        try {
          receive_options(req);
        } catch (Fail& f) {
          send_error(res, f.error);
          return res.status;
        }
        return 100;
      }
      if ((req.method != "POST" && req.method != "PUT") || req.path.rfind(route, 0) != 0) return 100;
      try {
        PutOptions o;
        o.append = flag(req, "append");
        if (has(req, "offset")) o.offset = number(req, "offset");
        precheck_put(write_branch(req), normalize_path(req.path.substr(route.size())), o);
      } catch (Fail& f) {
        send_error(res, f.error);
        return res.status;
      }
      return 100;
    });
    svr_.set_error_handler([](const Request& req, Response& res) {
      if (!res.body.empty()) return;  // a handler's own error
      switch (res.status) {
        case 404:
          send_json(res, 404,
                    json{{"error", fmt::format("no route {} {} (see docs/http.md)", req.method, req.path)},
                         {"code", "not_found"}});
          break;
        case 413:
          send_json(res, 413, json{{"error", "the request body is larger than this server accepts "
                                             "(pachctl serve --max-upload)"},
                                   {"code", "too_large"}});
          break;
        case 416:
          send_json(res, 416, json{{"error", "the requested range is not within the file"},
                                   {"code", "invalid_argument"}});
          break;
        case 400:
          send_json(res, 400, json{{"error", "malformed HTTP request"}, {"code", "invalid_argument"}});
          break;
        default:
          send_json(res, res.status,
                    json{{"error", fmt::format("HTTP {}", res.status)}, {"code", "http_error"}});
      }
    });
    if (opts_.log) {
      svr_.set_logger([this](const Request& req, const Response& res) {
        auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() -
                                                            t_request_start)
                      .count();
        std::string bytes = t_streamed                       ? std::to_string(*t_streamed)
                            : res.has_header("Content-Length") ? res.get_header_value("Content-Length")
                                                               : std::to_string(res.body.size());
        // A streamed response that failed midway (or whose client left) was cut.
        bool cut = res.content_provider_ && !res.content_provider_success_ && req.method != "HEAD";
        std::string note = !cut ? std::string() : " cut off" + (t_cut_reason.empty() ? "" : ": " + t_cut_reason);
        opts_.log(fmt::format("{} {} {} {} {} {} {:.1f}ms{}", format_time_utc(now_ns()), req.remote_addr,
                              req.method, req.target, res.status, bytes, ms, note));
      });
    }

    svr_.Get("/health", [](const Request&, Response& res) {
      send_json(res, 200, json{{"status", "ok"}});
    });
    svr_.Get("/info", h([&c](const Request&, Response& res) { send_json(res, 200, json(take(c.info()))); }));

    // ---- files
    svr_.Get(file, h([this, &c](const Request& req, Response& res) {
      std::string raw = req.matches[1].str();
      if (is_glob(raw)) return get_glob(req, res, raw);
      std::string p = captured(req, false);
      std::shared_ptr<FileHandle> f = take(c.open_file(read_ref(req), p));
      // ?offset=&length=: a slice, checked as a local read checks it (the
      // remote client's ranges); the Range header works as well.
      std::uint64_t size = f->info().size, start = 0, len = size;
      if (has(req, "offset") || has(req, "length")) {
        ReadRange r;
        if (has(req, "offset")) r.offset = number(req, "offset");
        if (has(req, "length")) r.length = number(req, "length");
        len = check_read_range(size, r, p);
        start = r.offset;
      }
      if (!check_ranges(req, res, len)) return;
      res.set_header("Accept-Ranges", "bytes");
      res.set_header("Last-Modified", http_date(f->info().mtime_ns));
      res.set_header("X-Pfs-Size", std::to_string(size));
      res.set_header("X-Pfs-Mtime-Ns", std::to_string(f->info().mtime_ns));
      if (len <= kPiece) {
        // A small file goes out with its headers in one write, without the
        // provider's round trips (many small GETs a second are the common case).
        std::string body(len, '\0');
        std::size_t got = 0;
        while (got < len) {
          std::size_t n = take(f->read_at(start + got, std::span<char>(body.data() + got, len - got)));
          if (n == 0) fail(ErrorCode::kIo, "the file ended before its size; run pachctl fsck");
          got += n;
        }
        res.set_content(std::move(body), "application/octet-stream");
        return;
      }
      res.set_content_provider(
          len, "application/octet-stream",
          [f, start](std::size_t offset, std::size_t length, httplib::DataSink& sink) noexcept {
            thread_local std::vector<char> buf(kPiece);
            auto n = f->read_at(start + offset, std::span<char>(buf.data(), std::min(length, kPiece)));
            if (!n || *n == 0) return false;  // an error: cut the response (the client sees it short)
            return sink.write(buf.data(), *n);
          });
    }));
    auto put = [this, &c](const Request& req, Response& res, const httplib::ContentReader& body) {
      std::string b, p;
      PutOptions o;
      before_body(req, body, [&] {
        b = write_branch(req);
        p = captured(req, false);
        o.append = flag(req, "append");
        if (has(req, "offset")) o.offset = number(req, "offset");
        precheck_put(b, p, o);
      });
      FileInfo info = take(with_body<FileInfo>(req, res, body, opts_.max_upload, [&](Source& src) { return c.put_file(b, p, src, o); }));
      send_json(res, 200, json(info));
    };
    svr_.Post(file, hr(put));
    svr_.Put(file, hr(put));
    svr_.Delete(file, h([&c](const Request& req, Response& res) {
      send_json(res, 200, json(take(c.delete_file(write_branch(req), captured(req, false)))));
    }));
    auto stat = h([&c](const Request& req, Response& res) {
      send_json(res, 200, json(take(c.stat_file(read_ref(req), captured(req, true)))));
    });
    svr_.Get(R"(/stat/([\s\S]*))", stat);
    svr_.Get("/stat", stat);
    auto list = h([&c](const Request& req, Response& res) {
      ListOptions o;
      o.recursive = flag(req, "recursive");
      std::string raw = req.matches.size() > 1 ? req.matches[1].str() : "";
      std::string p = is_glob(raw) ? raw : captured(req, true);
      send_json(res, 200, json(take(c.list_files(read_ref(req), p, o))));
    });
    svr_.Get(R"(/list/([\s\S]*))", list);
    svr_.Get("/list", list);

    // A directory as a tar stream, in and out.
    auto put_dir = [this, &c](const Request& req, Response& res, const httplib::ContentReader& body) {
      std::string b, p;
      before_body(req, body, [&] {
        b = write_branch(req);
        p = captured(req, true);
        take(c.inspect_branch(b));
      });
      std::vector<std::string> skipped;
      PutDirResult r = take(with_body<PutDirResult>(req, res, body, opts_.max_upload, [&](Source& src) {
        return guard([&] {
          TarReader tar(src);
          TarBatch batch(tar, skipped);
          return take(c.put_files(b, p, batch));
        });
      }));
      r.skipped.insert(r.skipped.end(), skipped.begin(), skipped.end());
      send_json(res, 200, json(r));
    };
    svr_.Post(R"(/dir/([\s\S]*))", hr(put_dir));
    svr_.Post("/dir", hr(put_dir));
    auto archive = h([this](const Request& req, Response& res) { get_archive(req, res); });
    svr_.Get(R"(/archive/([\s\S]*))", archive);
    svr_.Get("/archive", archive);

    // ---- commits
    post("/commit", ([&c](const Request& req, Response& res) {
      send_json(res, 200, json(take(c.commit(write_branch(req), param(req, "message")))));
    }));
    svr_.Get("/commit", h([&c](const Request& req, Response& res) {
      LogOptions o;
      if (has(req, "branch")) {
        o.branch = param(req, "branch");
      } else {
        o.all = true;  // v0.8: "GET /commit: getting all commits"
      }
      if (has(req, "all")) o.all = flag(req, "all");
      if (has(req, "limit")) o.limit = number(req, "limit");
      send_json(res, 200, json(take(c.list_commits(o))));
    }));
    svr_.Get(R"(/commit/([^/]+))", h([&c](const Request& req, Response& res) {
      send_json(res, 200, json(take(c.inspect_commit(req.matches[1].str()))));
    }));
    svr_.Delete(R"(/commit/([^/]+))", h([&c](const Request& req, Response& res) {
      take(c.delete_commit(req.matches[1].str()));
      send_json(res, 200, json::object());
    }));

    // ---- branches
    post("/branch", ([&c](const Request& req, Response& res) {
      if (!has(req, "branch"))
        fail(ErrorCode::kInvalidArgument, "name the new branch: POST /branch?branch=NAME[&commit=C]");
      send_json(res, 201, json(take(c.create_branch(param(req, "branch"), param(req, "commit")))));
    }));
    svr_.Get("/branch", h([&c](const Request&, Response& res) {
      send_json(res, 200, json(take(c.list_branches())));
    }));
    svr_.Get(R"(/branch/([^/]+))", h([&c](const Request& req, Response& res) {
      send_json(res, 200, json(take(c.inspect_branch(req.matches[1].str()))));
    }));
    svr_.Delete(R"(/branch/([^/]+))", h([&c](const Request& req, Response& res) {
      take(c.delete_branch(req.matches[1].str()));
      send_json(res, 200, json::object());
    }));

    // ---- replication: send streams out and in, branch heads by compare-and-swap
    svr_.Get(R"(/send/([^/]+))", h([this](const Request& req, Response& res) { get_send(req, res); }));
    svr_.Post("/receive", hr([this, &c](const Request& req, Response& res,
                                        const httplib::ContentReader& body) {
      ReceiveOptions o = before_body(req, body, [&] { return receive_options(req); });
      ReceiveResult r = take(with_body<ReceiveResult>(req, res, body, opts_.max_upload,
                                                      [&](Source& src) { return c.receive(src, o); }));
      send_json(res, 200, json(r));
    }));
    post(R"(/branch/([^/]+)/head)", ([&c](const Request& req, Response& res) {
      if (!has(req, "commit"))
        fail(ErrorCode::kInvalidArgument,
             "name the commit: POST /branch/NAME/head?commit=C[&expect=HEAD][&force=true]");
      SetHeadOptions o;
      if (has(req, "expect")) o.expected_head = param(req, "expect");  // "": no commits yet
      o.force = flag(req, "force");
      send_json(res, 200, json(take(c.set_branch_head(req.matches[1].str(), param(req, "commit"), o))));
    }));

    // ---- history and the store
    svr_.Get("/diff", h([&c](const Request& req, Response& res) {
      send_json(res, 200, json(take(c.diff(diff_ref(req, "from"), diff_ref(req, "to")))));
    }));
    post("/revert", ([&c](const Request& req, Response& res) {
      if (!has(req, "commit"))
        fail(ErrorCode::kInvalidArgument, "name the commit to restore: POST /revert?commit=C[&branch=B]");
      RevertOptions o;
      o.force = flag(req, "force");
      o.message = param(req, "message");
      send_json(res, 200, json(take(c.revert(write_branch(req), param(req, "commit"), o))));
    }));
    post("/merge", ([&c](const Request& req, Response& res) {
      if (!has(req, "from"))
        fail(ErrorCode::kInvalidArgument, "name the branch to merge: POST /merge?from=B[&into=master]");
      MergeOptions o;
      std::string how = param(req, "on_conflict", "fail");
      if (how == "ours") o.on_conflict = MergeOptions::Strategy::kOurs;
      else if (how == "theirs") o.on_conflict = MergeOptions::Strategy::kTheirs;
      else if (how != "fail")
        failf(ErrorCode::kInvalidArgument, "on_conflict={}: use fail, ours or theirs", how);
      o.message = param(req, "message");
      MergeResult m = take(c.merge(param(req, "into", "master"), param(req, "from"), o));
      json j = m;
      if (!m.conflicts.empty()) {
        j["error"] = fmt::format("the merge has {} conflict(s); nothing was changed", m.conflicts.size());
        j["code"] = "conflict";
        send_json(res, 409, j);
      } else {
        send_json(res, 200, j);
      }
    }));
    svr_.Get("/fsck", h([&c](const Request&, Response& res) { send_json(res, 200, json(take(c.fsck(false)))); }));
    post("/fsck", ([&c](const Request& req, Response& res) {
      send_json(res, 200, json(take(c.fsck(flag(req, "repair")))));
    }));
    post("/gc", ([&c](const Request&, Response& res) { send_json(res, 200, json(take(c.gc()))); }));
  }

  // A request begins: its time and figures for the log line.
  static void start_request() {
    t_request_start = std::chrono::steady_clock::now();
    t_streamed.reset();
    t_cut_reason.clear();
  }

  // Whether the request carries the token (or needs none); a 401 when not.
  bool authorized(const Request& req, Response& res) const {
    if (opts_.token.empty() || req.path == "/health") return true;
    std::string want = "Bearer " + opts_.token;
    std::string got = req.get_header_value("Authorization");
    // Compared in constant time: the token is a secret.
    unsigned char diff = got.size() != want.size();
    for (std::size_t i = 0; i < want.size(); i++)
      diff |= static_cast<unsigned char>(want[i] ^ (i < got.size() ? got[i] : 0));
    if (diff == 0) return true;
    res.set_header("WWW-Authenticate", "Bearer");
    send_json(res, 401,
              json{{"error", "this server needs a token: send \"Authorization: Bearer TOKEN\" "
                             "(pachctl: --token-file or PFS_TOKEN)"},
                   {"code", "unauthorized"}});
    return false;
  }

  static Ref diff_ref(const Request& req, const char* side) {
    std::string s = side;
    std::string c = s + "_commit", b = s + "_branch";
    int given = has(req, s.c_str()) + has(req, c.c_str()) + has(req, b.c_str());
    if (given != 1) failf(ErrorCode::kInvalidArgument, "give exactly one of {}, {} and {}", s, c, b);
    if (has(req, c.c_str())) return Ref::commit(param(req, c.c_str()));
    if (has(req, b.c_str())) return Ref::branch(param(req, b.c_str()));
    return Ref::any(param(req, s.c_str()));
  }

  // cpp-httplib 0.11 applies a Range header to a content provider without
  // checking it against the length, and answers several ranges with broken
  // parts. So: one range, within the file, or a 416 error; several ranges
  // are ignored (the whole file, 200), as RFC 9110 allows.
  static bool check_ranges(const Request& req, Response& res, std::uint64_t len) {
    auto& ranges = const_cast<Request&>(req).ranges;  // ours to adjust before the response
    if (ranges.empty()) return true;
    if (ranges.size() > 1) {
      ranges.clear();
      return true;
    }
    auto [first, last] = ranges[0];
    std::int64_t n = static_cast<std::int64_t>(len);
    if (first < 0) {  // a suffix: the last `last` bytes
      first = std::max<std::int64_t>(0, n - last);
      last = n - 1;
    } else if (last < 0 || last >= n) {
      last = n - 1;
    }
    if (first >= n || first > last) {
      std::string what = fmt::format("range {}-{} is not within the file ({} bytes)",
                                     ranges[0].first, ranges[0].second, len);
      ranges.clear();
      res.set_header("Content-Range", fmt::format("bytes */{}", len));
      send_json(res, 416, json{{"error", what}, {"code", "invalid_argument"}});
      return false;
    }
    ranges[0] = {first, last};
    return true;
  }

  // Refuses an upload that cannot succeed before its body is read.
  void precheck_put(const std::string& branch, const std::string& path, const PutOptions& o) {
    if (o.append && o.offset)
      fail(ErrorCode::kInvalidArgument, "append and offset exclude each other; pick one");
    take(store_->inspect_branch(branch));
    if (o.offset) {
      FileInfo f = take(store_->stat_file(Ref::branch(branch), path));
      if (*o.offset > f.size)
        failf(ErrorCode::kInvalidArgument, "offset {} is past the end of \"{}\" ({} bytes)", *o.offset,
              path, f.size);
    }
  }

  void get_glob(const Request& req, Response& res, const std::string& pattern);
  void get_archive(const Request& req, Response& res);
  void get_send(const Request& req, Response& res);

  static std::string http_date(std::int64_t ns) {
    std::time_t t = static_cast<std::time_t>(ns / 1000000000);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    return buf;
  }

  // True for a short while after a stop() that came before run(): run()
  // sees stopping_ and returns at once, so the wait must not last.
  bool running_soon() {
    if (!wait_start_) wait_start_ = std::chrono::steady_clock::now();
    return std::chrono::steady_clock::now() - *wait_start_ < std::chrono::seconds(2);
  }

  std::unique_ptr<Client> store_;
  ServerOptions opts_;
  httplib::Server svr_;
  int port_ = -1;
  std::atomic<bool> stopping_{false}, finished_{false};
  std::optional<std::chrono::steady_clock::time_point> wait_start_;
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
bool write_tar(Client& c, const Ref& ref, const std::vector<FileInfo>& entries,
               const std::string& base, httplib::DataSink& sink) noexcept {
  try {
    TarWriter tar([&](const char* p, std::size_t n) { return sink.write(p, n); });
    thread_local std::vector<char> buf(kPiece);
    for (const auto& e : entries) {
      std::string name = base.empty() ? e.path : e.path.substr(base.size() + 1);
      if (e.type == FileInfo::Type::kDirectory) {
        tar.add_dir(name, e.mtime_ns);
        continue;
      }
      auto f = c.open_file(ref, e.path);
      if (!f) return false;  // gone since the listing: cut the response
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
    sink.done();
    return true;
  } catch (...) {
    return false;
  }
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
  res.set_chunked_content_provider("application/x-tar", [c, ref, entries, p](std::size_t, httplib::DataSink& sink) {
    return write_tar(*c, ref, *entries, p, sink);
  });
}

// GET /send/<commit>?parent=P: the commit's tree as a btrfs send stream,
// chunked. Both commits are looked up first (404 as JSON), and sent by id:
// a branch that moves meanwhile does not change what is sent.
void HttpServer::get_send(const Request& req, Response& res) {
  CommitInfo commit = take(store_->inspect_commit(req.matches[1].str()));
  SendOptions o;
  if (std::string parent = param(req, "parent"); !parent.empty())
    o.parent = take(store_->inspect_commit(parent)).id;
  auto job = std::make_shared<SendJob>(*store_, commit.id, o);
  job->start();
  const_cast<Request&>(req).ranges.clear();  // a stream is sent whole (RFC 9110 allows it)
  res.status = 200;
  res.set_header("Accept-Ranges", "none");
  res.set_header("X-Pfs-Commit", commit.id);
  if (!o.parent.empty()) res.set_header("X-Pfs-Parent", o.parent);
  res.set_chunked_content_provider("application/octet-stream",
                                   [job](std::size_t, httplib::DataSink& sink) noexcept {
                                     try {
                                       return job->stream(sink);
                                     } catch (...) {
                                       return false;
                                     }
                                   });
}

// Every file a glob matches, each as a part of a multipart/mixed body (or
// of a tar stream).
void HttpServer::get_glob(const Request& req, Response& res, const std::string& pattern) {
  Ref ref = read_ref(req);
  std::vector<FileInfo> all = take(store_->list_files(ref, pattern, {}));
  auto files = std::make_shared<std::vector<FileInfo>>();
  for (auto& f : all)
    if (f.type == FileInfo::Type::kFile) files->push_back(std::move(f));
  std::string format = param(req, "format");
  if (format.empty() && req.get_header_value("Accept").find("application/x-tar") != std::string::npos)
    format = "tar";
  if (format == "tar") {
    Client* c = store_.get();
    res.set_chunked_content_provider("application/x-tar", [c, ref, files](std::size_t, httplib::DataSink& sink) {
      return write_tar(*c, ref, *files, "", sink);
    });
    return;
  }
  if (!format.empty() && format != "multipart")
    failf(ErrorCode::kInvalidArgument, "format={}: use multipart (the default) or tar", format);
  std::string boundary = "pfs-" + random_hex(24);
  Client* c = store_.get();
  res.set_chunked_content_provider(
      "multipart/mixed; boundary=" + boundary,
      [c, ref, files, boundary](std::size_t, httplib::DataSink& sink) noexcept {
        // noexcept: an exception here would end the process (cpp-httplib
        // calls providers outside its handler's try); it ends the response.
        thread_local std::vector<char> buf(kPiece);
        try {
        for (const auto& info : *files) {
          auto f = c->open_file(ref, info.path);
          if (!f) return false;  // gone since the listing: cut the response
          std::string head = fmt::format(
              "--{}\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\n"
              "Content-Disposition: {}\r\n\r\n",
              boundary, (*f)->info().size, disposition(info.path));
          if (!sink.write(head.data(), head.size())) return false;
          std::uint64_t off = 0, size = (*f)->info().size;
          while (off < size) {
            auto n = (*f)->read_at(off, buf);
            if (!n || *n == 0) return false;
            if (!sink.write(buf.data(), *n)) return false;
            off += *n;
          }
          if (!sink.write("\r\n", 2)) return false;
        }
        std::string tail = "--" + boundary + "--\r\n";
        if (!sink.write(tail.data(), tail.size())) return false;
        sink.done();
        return true;
        } catch (...) {
          return false;
        }
      });
}

}  // namespace
}  // namespace detail

Result<std::unique_ptr<Server>> Server::create(std::unique_ptr<Client> store, ServerOptions options) {
  auto s = std::make_unique<detail::HttpServer>(std::move(store), std::move(options));
  if (auto r = s->bind(); !r) return std::move(r).error();
  return std::unique_ptr<Server>(std::move(s));
}

}  // namespace pfs
