// http_server.cc: pfs::Server: the HTTP API (docs/http.md) over a Client:
// the checks of its options, its lifecycle, the token check, and the route
// table (kRoutes) that names each route's handler (routes.h).
//
// The engine under it (http_engine.h: Boost.Beast on Boost.Asio) parses and
// checks each request, enforces the limits and runs the routes; a route
// reads its query and body from a Request and fills a Response.
#include <pfs/server.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "fail.h"
#include "http_engine.h"
#include "routes.h"

namespace pfs {
namespace detail {
namespace {

using http::Request;
using http::Response;

// The `quick` test of a route always answered from the network thread.
bool always(const Request&) { return true; }

struct RouteSpec {
  const char* method;
  const char* pattern;
  routes::Handler handler;
  routes::Quick quick = nullptr;  // nullptr: always on a worker
};

// THE route table: method, pattern (see Router), handler, and for a route
// that may be answered on the network thread its `quick` test (http::Route).
// The first route that matches answers, so a pattern that another one also
// matches goes after it. A new route: its handler in the routes_*.cc of its
// resource, declared in routes.h, and a line here in its resource's group.
// (NOTE: a route that waits, such as a long poll, runs on a worker and holds
// it while it waits: ServerOptions::threads bounds how many can.)
const RouteSpec kRoutes[] = {
    // ---- the store (routes_store.cc)
    {"GET", "/health", routes::health, always},
    {"GET", "/info", routes::info},

    // ---- files and directories (routes_files.cc). GET of a file: on the
    // network thread (a small one is answered from there; a large one is
    // then streamed by a worker); a glob, which lists, always on a worker.
    {"GET", "/file/{rest}", routes::get_file, routes::file_is_quick},
    {"POST", "/file/{rest}", routes::put_file},
    {"PUT", "/file/{rest}", routes::put_file},
    {"DELETE", "/file/{rest}", routes::delete_file},
    {"GET", "/stat/{rest}", routes::stat_file, always},
    {"GET", "/stat", routes::stat_file, always},
    {"GET", "/list/{rest}", routes::list_files},
    {"GET", "/list", routes::list_files},
    // A directory as a tar stream, in and out.
    {"POST", "/dir/{rest}", routes::put_dir},
    {"POST", "/dir", routes::put_dir},
    {"GET", "/archive/{rest}", routes::get_archive},
    {"GET", "/archive", routes::get_archive},

    // ---- commits, branches and history (routes_commits.cc)
    {"POST", "/commit", routes::create_commit},
    {"GET", "/commit", routes::list_commits},
    {"GET", "/commit/{seg}", routes::inspect_commit},
    {"DELETE", "/commit/{seg}", routes::delete_commit},
    {"POST", "/branch", routes::create_branch},
    {"GET", "/branch", routes::list_branches},
    {"GET", "/branch/{seg}", routes::inspect_branch},
    {"DELETE", "/branch/{seg}", routes::delete_branch},
    {"GET", "/diff", routes::diff},
    {"POST", "/revert", routes::revert},
    {"POST", "/merge", routes::merge},

    // ---- replication: send streams out and in, branch heads by
    // compare-and-swap (routes_store.cc)
    {"GET", "/send/{seg}", routes::send_commit},
    {"POST", "/receive", routes::receive_commit},
    {"POST", "/branch/{seg}/head", routes::set_branch_head},

    // ---- upkeep (routes_store.cc)
    {"GET", "/fsck", routes::fsck_check},
    {"POST", "/fsck", routes::fsck_run},
    {"POST", "/gc", routes::gc},
};

struct JobRouteSpec {
  const char* method;
  const char* pattern;
  routes::JobHandler handler;
};

// The routes of jobs (routes_jobs.cc), matched before kRoutes: POST
// /commit runs the jobs with ?run, and makes a plain commit otherwise.
const JobRouteSpec kJobRoutes[] = {
    {"POST", "/commit", routes::commit_maybe_run},
    {"GET", "/job", routes::list_jobs},
    {"POST", "/job/{seg}", routes::create_job},
    {"PUT", "/job/{seg}", routes::create_job},
    {"GET", "/job/{seg}", routes::inspect_job},
    {"DELETE", "/job/{seg}", routes::delete_job},
    {"GET", "/job/{seg}/file/{rest}", routes::job_file},
    {"GET", "/job/{seg}/list/{rest}", routes::job_list},
    {"GET", "/job/{seg}/list", routes::job_list},
    {"GET", "/runs", routes::list_runs},
    {"GET", "/runs/{seg}", routes::list_runs},
    {"GET", "/runs/{seg}/{seg}", routes::inspect_run},
    {"GET", "/runs/{seg}/{seg}/log", routes::run_log},
    {"POST", "/runs/{seg}/rerun", routes::rerun},
};

// The routes of pipelines (routes_pipelines.cc; the client:
// http_client_pipelines.cc), with the job routes' engine and wrapper.
const JobRouteSpec kPipelineRoutes[] = {
    {"GET", "/pipelines", routes::list_pipelines},
    {"POST", "/pipelines", routes::create_pipeline},
    {"GET", "/pipelines/{seg}", routes::inspect_pipeline},
    {"PUT", "/pipelines/{seg}", routes::update_pipeline},
    {"DELETE", "/pipelines/{seg}", routes::delete_pipeline},
    {"POST", "/pipelines/{seg}/stop", routes::stop_pipeline},
    {"POST", "/pipelines/{seg}/start", routes::start_pipeline},
    {"POST", "/pipelines/{seg}/datums/{seg}/restart", routes::restart_datum},
    {"GET", "/pipeline-runs", routes::list_pipeline_runs},
    {"GET", "/pipeline-runs/{seg}", routes::inspect_pipeline_run},
    {"GET", "/pipeline-runs/{seg}/datums", routes::list_datums},
    {"GET", "/pipeline-logs", routes::pipeline_logs},
    {"GET", "/flush/{seg}", routes::flush_commit},
    {"POST", "/run-datum", routes::run_datum},
};

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
  HttpServer(std::unique_ptr<Client> store, ServerOptions opts, std::unique_ptr<Jobs> jobs)
      : store_(std::move(store)), jobs_(std::move(jobs)), opts_(std::move(opts)) {
    for (const JobRouteSpec& r : kJobRoutes) add_job_route(r);
    for (const JobRouteSpec& r : kPipelineRoutes) add_job_route(r);
    for (const RouteSpec& r : kRoutes) add_route(r);
    // Commit events: their handler also needs the server's wait gate.
    gate_.max_waiting = std::max<std::size_t>(opts_.threads / 2, 1);
    for (const char* method : {"GET", "POST"})
      router_.add(method, "/commits/wait", [this](Request& req, Response& res) {
        try {
          routes::wait_commits(*store_, req, res, gate_);
        } catch (Fail& f) {
          res.error(f.error);
        }
      });
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
  void stop() override {
    gate_.stopping = true;  // long-polls answer within 100 ms, so the stop is not held up
    engine_->stop();
  }

 private:
  // Every route runs through this: a Fail (bad input, a Client error)
  // becomes its JSON error. (The engine turns anything else into a 500.)
  void add_route(const RouteSpec& r) {
    std::function<bool(const Request&)> quick;
    if (r.quick) quick = r.quick;
    router_.add(r.method, r.pattern,
                [c = store_.get(), fn = r.handler](Request& req, Response& res) {
                  try {
                    fn(*c, req, res);
                  } catch (Fail& f) {
                    res.error(f.error);
                  }
                },
                std::move(quick));
  }

  void add_job_route(const JobRouteSpec& r) {
    router_.add(r.method, r.pattern, [this, fn = r.handler](Request& req, Response& res) {
      try {
        if (!jobs_) {
          // A plain commit needs no engine.
          if (req.method == "POST" && req.path == "/commit" && !req.has("run"))
            return routes::create_commit(*store_, req, res);
          return res.error(501, "unsupported", "this server runs no jobs (it was started without a job engine)");
        }
        fn(*store_, *jobs_, req, res);
      } catch (Fail& f) {
        res.error(f.error);
      }
    });
  }

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

  std::unique_ptr<Client> store_;
  std::unique_ptr<Jobs> jobs_;  // after store_: destroyed first, it uses the store
  ServerOptions opts_;
  routes::WaitGate gate_;
  Router router_;
  std::unique_ptr<http::Engine> engine_;
};

}  // namespace
}  // namespace detail

Result<std::unique_ptr<Server>> Server::create(std::unique_ptr<Client> store, ServerOptions options,
                                              std::unique_ptr<Jobs> jobs) {
  // On a refusal the engine stops first: its threads use the store (the
  // order in which the arguments would otherwise go is the compiler's).
  struct StopFirst {
    std::unique_ptr<Jobs>& jobs;
    ~StopFirst() { jobs.reset(); }
  } stop_first{jobs};
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
  auto s = std::make_unique<detail::HttpServer>(std::move(store), std::move(options), std::move(jobs));
  if (auto r = s->bind(); !r) return std::move(r).error();
  return std::unique_ptr<Server>(std::move(s));
}

}  // namespace pfs
