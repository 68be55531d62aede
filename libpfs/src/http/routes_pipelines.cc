// routes_pipelines.cc: the routes of pipelines (docs/http.md, "Pipelines"),
// over the public pfs::Pipelines API of the server's job engine: specs
// (/pipelines), runs and their datums (/pipeline-runs), logs streamed as
// they are written (/pipeline-logs), flush (/flush/<commit>) and the
// one-datum trial (/run-datum). The remote client is
// http_client_pipelines.cc: the two name the same routes.
#include "routes.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <initializer_list>
#include <mutex>
#include <thread>

#include <fmt/format.h>

namespace pfs::detail::routes {

namespace {

constexpr std::size_t kMaxSpec = 1 << 20;
constexpr std::uint64_t kMaxWaitMs = 600000;  // as the job routes cap theirs
constexpr std::uint64_t kDefaultFlushWaitMs = 60000;

// A route's query may hold only these keys: a misspelt one (?wiat=) would
// otherwise be ignored and the answer look right.
void only(const Request& req, std::initializer_list<std::string_view> known) {
  for (const auto& [key, value] : req.query)
    if (std::find(known.begin(), known.end(), key) == known.end())
      failf(ErrorCode::kInvalidArgument, "unknown query parameter \"{}\" (known here: {})", key,
            known.size() ? fmt::format("{}", fmt::join(known, ", ")) : std::string("none"));
}

std::chrono::milliseconds wait_of(const Request& req, std::uint64_t def) {
  std::uint64_t ms = req.has("wait") ? number(req, "wait") : def;
  return std::chrono::milliseconds(std::min(ms, kMaxWaitMs));
}

std::string spec_body(const Request& req) {
  std::string text;
  if (req.body) {
    char buf[16384];
    for (;;) {
      std::size_t n = take(req.body->read(std::span<char>(buf, sizeof buf)));
      if (n == 0) break;
      text.append(buf, n);
      if (text.size() > kMaxSpec)
        failf(ErrorCode::kInvalidArgument, "the pipeline spec is larger than {} bytes", kMaxSpec);
    }
  }
  if (text.empty())
    fail(ErrorCode::kInvalidArgument,
         "send the pipeline spec (JSON) as the body: curl -XPOST HOST/pipelines -T edges.json");
  return text;
}

// What get_logs writes, passed from the thread that runs it to the worker
// that sends it. Bounded, so that a slow client slows the writer down.
class LogPipe final : public Sink {
 public:
  // The writer's side. kIo once the reader has gone.
  Result<void> write(std::span<const char> d) override {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return gone_ || buffered_ < kMaxBuffered; });
    if (gone_) return Error{ErrorCode::kIo, "the client went away"};
    pieces_.emplace_back(d.data(), d.size());
    buffered_ += d.size();
    cv_.notify_all();
    return {};
  }
  void finish(Result<void> r) {
    std::lock_guard lk(mu_);
    result_ = std::move(r);
    done_ = true;
    cv_.notify_all();
  }

  // The reader's side: waits until something was written (true) or the
  // writer finished without writing anything (false).
  bool wait_started() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return done_ || !pieces_.empty(); });
    return !pieces_.empty();
  }
  // The next piece, once there is one; false at the end (then result()).
  bool next(std::string& piece) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return done_ || !pieces_.empty(); });
    if (pieces_.empty()) return false;
    piece = std::move(pieces_.front());
    pieces_.pop_front();
    buffered_ -= piece.size();
    cv_.notify_all();
    return true;
  }
  void abandon() {
    std::lock_guard lk(mu_);
    gone_ = true;
    cv_.notify_all();
  }
  Result<void> result() {
    std::lock_guard lk(mu_);
    return result_;
  }

 private:
  static constexpr std::size_t kMaxBuffered = 1 << 20;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> pieces_;
  std::size_t buffered_ = 0;
  bool done_ = false, gone_ = false;
  Result<void> result_;
};

// get_logs on a thread of its own, so that the route can wait for its first
// bytes: an error before them is answered with its status, and only then
// does the (chunked, 200) body begin.
struct LogStream {
  LogPipe pipe;
  std::thread thread;
  void stop() {
    pipe.abandon();
    if (thread.joinable()) thread.join();
  }
  // NOTE: stopped by the route on its worker; this is the fallback, and
  // may wait for get_logs's next write.
  ~LogStream() { stop(); }
};

}  // namespace

// ---- specs

void list_pipelines(Client&, Jobs& j, const Request& req, Response& res) {
  only(req, {});
  res.json(200, json(take(j.pipelines().list_pipelines())));
}

void create_pipeline(Client&, Jobs& j, const Request& req, Response& res) {
  only(req, {});
  res.json(201, json(take(j.pipelines().create_pipeline(spec_body(req)))));
}

void inspect_pipeline(Client&, Jobs& j, const Request& req, Response& res) {
  only(req, {});
  res.json(200, json(take(j.pipelines().inspect_pipeline(req.matches[1]))));
}

// PUT /pipelines/<name>[?reprocess=true]: the spec names the pipeline too;
// the two must agree, or the route would update another than it names.
void update_pipeline(Client&, Jobs& j, const Request& req, Response& res) {
  only(req, {"reprocess"});
  bool reprocess = flag(req, "reprocess");
  std::string text = spec_body(req);
  PipelineSpec spec = take(parse_pipeline(text));
  if (spec.name != req.matches[1])
    failf(ErrorCode::kInvalidArgument,
          "the route names pipeline \"{}\" but the spec's pipeline.name is \"{}\": PUT /pipelines/{}", req.matches[1],
          spec.name, spec.name);
  res.json(200, json(take(j.pipelines().update_pipeline(text, reprocess))));
}

void delete_pipeline(Client&, Jobs& j, const Request& req, Response& res) {
  only(req, {});
  take(j.pipelines().delete_pipeline(req.matches[1]));
  res.json(200, json::object());
}

void stop_pipeline(Client&, Jobs& j, const Request& req, Response& res) {
  only(req, {});
  res.json(200, json(take(j.pipelines().stop_pipeline(req.matches[1]))));
}

void start_pipeline(Client&, Jobs& j, const Request& req, Response& res) {
  only(req, {});
  res.json(200, json(take(j.pipelines().start_pipeline(req.matches[1]))));
}

void restart_datum(Client&, Jobs& j, const Request& req, Response& res) {
  only(req, {});
  res.json(200, json(take(j.pipelines().restart_datum(req.matches[1], req.matches[2]))));
}

// ---- runs and datums

void list_pipeline_runs(Client&, Jobs& j, const Request& req, Response& res) {
  only(req, {"pipeline", "commit"});
  RunFilter f;
  f.pipeline = req.param("pipeline");
  f.commit = req.param("commit");
  res.json(200, json(take(j.pipelines().list_runs(f))));
}

// GET /pipeline-runs/<id>[?wait=ms]: with wait, once it has ended (or the
// wait is over).
void inspect_pipeline_run(Client&, Jobs& j, const Request& req, Response& res) {
  only(req, {"wait"});
  if (req.has("wait")) {
    res.json(200, json(take(j.pipelines().wait_run(req.matches[1], wait_of(req, 0)))));
    return;
  }
  res.json(200, json(take(j.pipelines().inspect_run(req.matches[1]))));
}

void list_datums(Client&, Jobs& j, const Request& req, Response& res) {
  only(req, {});
  res.json(200, json(take(j.pipelines().list_datums(req.matches[1]))));
}

// GET /pipeline-logs?pipeline=&run=&datum=&follow=: text, chunked, each
// piece sent as get_logs writes it (with follow, until the run ends).
void pipeline_logs(Client&, Jobs& j, const Request& req, Response& res) {
  only(req, {"pipeline", "run", "datum", "follow"});
  LogFilter f;
  f.pipeline = req.param("pipeline");
  f.run = req.param("run");
  f.datum = req.param("datum");
  f.follow = flag(req, "follow");
  Pipelines& p = j.pipelines();
  if (req.method == "HEAD") {
    // Checked as get_logs checks it, without reading (or following) a log.
    if (!f.run.empty()) take(p.inspect_run(f.run));
    else if (!f.pipeline.empty()) take(p.inspect_pipeline(f.pipeline));
    else fail(ErrorCode::kInvalidArgument, "say whose logs: ?pipeline=NAME or ?run=NAME@N");
    res.content_type = "text/plain; charset=utf-8";
    return;
  }
  auto s = std::make_shared<LogStream>();
  LogPipe* pipe = &s->pipe;
  s->thread = std::thread([&p, f, pipe] {
    Result<void> r;
    try {
      r = p.get_logs(f, *pipe);
    } catch (const std::exception& e) {  // (get_logs returns its errors; this is a fallback)
      r = Error{ErrorCode::kInternal, e.what()};
    }
    pipe->finish(std::move(r));
  });
  bool started = s->pipe.wait_started();
  if (!started) {
    s->stop();
    take(s->pipe.result());
    res.content_type = "text/plain; charset=utf-8";
    return;  // no log yet: an empty body
  }
  res.content_type = "text/plain; charset=utf-8";
  // After its first bytes, an error cuts the body short (no last chunk):
  // the client sees it was cut, as with a job's output (routes_jobs.cc).
  res.stream = [s, &res](http::BodyWriter& out) {
    std::string piece;
    bool ok = true;
    while (ok && s->pipe.next(piece)) ok = out.write(piece.data(), piece.size());
    s->stop();
    if (!ok) return false;
    if (auto r = s->pipe.result(); !r) {
      res.cut_reason = r.error().message;
      return false;
    }
    return true;
  };
}

// GET /flush/<commit>[?wait=ms]: the runs that read the commit, once all
// have ended; 503 (kBusy) while some still go after the wait, which the
// client asks again.
void flush_commit(Client&, Jobs& j, const Request& req, Response& res) {
  only(req, {"wait"});
  res.json(200, json(take(j.pipelines().flush_commit(req.matches[1], wait_of(req, kDefaultFlushWaitMs)))));
}

// POST /run-datum[?datum=X], body: a spec (created or not).
void run_datum(Client&, Jobs& j, const Request& req, Response& res) {
  only(req, {"datum"});
  DatumTrialOptions o;
  o.datum = req.param("datum");
  std::string text = spec_body(req);
  res.json(200, json(take(j.pipelines().run_datum(text, o))));
}

}  // namespace pfs::detail::routes
