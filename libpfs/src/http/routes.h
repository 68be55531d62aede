// routes.h: the handlers of the HTTP API's routes (docs/http.md), one per
// method and resource, and what they share. http_server.cc holds the route
// table that names them; each handler reads its query and body from a
// Request, calls the Client, and fills the Response. A Fail it throws (bad
// input, a Client error) becomes its JSON error (http_server.cc, add_route).
//
// A new route: its handler in the routes_*.cc of its resource, declared
// here with the others of that file, and one line in kRoutes
// (http_server.cc).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include <pfs/client.h>
#include <pfs/jobs.h>
#include <pfs/json.h>
#include <pfs/result.h>

#include "fail.h"
#include "http_message.h"

namespace pfs::detail::routes {

using json = nlohmann::json;
using http::Request;
using http::Response;

// What a route runs: `c` is the store the server serves.
using Handler = void (*)(Client& c, const Request& req, Response& res);
// A route's `quick` test (http::Route): true runs it on the network thread.
using Quick = bool (*)(const Request& req);

constexpr std::size_t kPiece = 256 * 1024;  // read and write granularity

// A Result's value, or throws its error (caught by the route wrapper).
template <class T>
T take(Result<T>&& r) {
  if (!r) throw Fail{std::move(r).error()};
  return std::move(r).value();
}
inline void take(Result<void>&& r) {
  if (!r) throw Fail{std::move(r).error()};
}

// ---- query parameters

inline bool flag(const Request& req, const char* key) {
  const std::string* v = req.find(key);
  if (!v) return false;
  if (v->empty() || *v == "true" || *v == "1" || *v == "yes") return true;
  if (*v == "false" || *v == "0" || *v == "no") return false;
  failf(ErrorCode::kInvalidArgument, "query parameter {}={}: use true or false", key, *v);
}

inline std::uint64_t number(const Request& req, const char* key) {
  std::string v = req.param(key);
  if (v.empty() || v.size() > 19 || v.find_first_not_of("0123456789") != std::string::npos)
    failf(ErrorCode::kInvalidArgument, "query parameter {}={}: not a non-negative integer", key, v);
  return std::stoull(v);
}

// Where a read looks: ?branch= (working state), ?commit= (a commit, or a
// branch's head), ?ref= (either, as Ref::any); master's working state when
// none is given. (routes_files.cc)
Ref read_ref(const Request& req);

// The branch a write goes to: ?branch=, master when none is given.
inline std::string write_branch(const Request& req) { return req.param("branch", "master"); }

// ---- files and directories (routes_files.cc)

bool file_is_quick(const Request& req);  // GET /file/<path>: not for a glob
void get_file(Client& c, const Request& req, Response& res);
void put_file(Client& c, const Request& req, Response& res);
void delete_file(Client& c, const Request& req, Response& res);
void stat_file(Client& c, const Request& req, Response& res);
void list_files(Client& c, const Request& req, Response& res);
void put_dir(Client& c, const Request& req, Response& res);
void get_archive(Client& c, const Request& req, Response& res);

// ---- commits, branches and history (routes_commits.cc)

void create_commit(Client& c, const Request& req, Response& res);
void list_commits(Client& c, const Request& req, Response& res);
void inspect_commit(Client& c, const Request& req, Response& res);
void delete_commit(Client& c, const Request& req, Response& res);
void create_branch(Client& c, const Request& req, Response& res);
void list_branches(Client& c, const Request& req, Response& res);
void inspect_branch(Client& c, const Request& req, Response& res);
void delete_branch(Client& c, const Request& req, Response& res);
void diff(Client& c, const Request& req, Response& res);
void revert(Client& c, const Request& req, Response& res);
void merge(Client& c, const Request& req, Response& res);

// ---- the store: health, replication, upkeep (routes_store.cc)

void health(Client& c, const Request& req, Response& res);
void info(Client& c, const Request& req, Response& res);
void send_commit(Client& c, const Request& req, Response& res);
void receive_commit(Client& c, const Request& req, Response& res);
void set_branch_head(Client& c, const Request& req, Response& res);
void fsck_check(Client& c, const Request& req, Response& res);
void fsck_run(Client& c, const Request& req, Response& res);
void gc(Client& c, const Request& req, Response& res);

// ---- jobs (routes_jobs.cc): their handlers also get the server's engine.

using JobHandler = void (*)(Client& c, Jobs& j, const Request& req, Response& res);
void commit_maybe_run(Client& c, Jobs& j, const Request& req, Response& res);  // POST /commit[?run]
void create_job(Client& c, Jobs& j, const Request& req, Response& res);
void inspect_job(Client& c, Jobs& j, const Request& req, Response& res);
void list_jobs(Client& c, Jobs& j, const Request& req, Response& res);
void delete_job(Client& c, Jobs& j, const Request& req, Response& res);
void job_file(Client& c, Jobs& j, const Request& req, Response& res);
void job_list(Client& c, Jobs& j, const Request& req, Response& res);
void list_runs(Client& c, Jobs& j, const Request& req, Response& res);
void inspect_run(Client& c, Jobs& j, const Request& req, Response& res);
void run_log(Client& c, Jobs& j, const Request& req, Response& res);
void rerun(Client& c, Jobs& j, const Request& req, Response& res);

// ---- pipelines (routes_pipelines.cc): job handlers too, over j.pipelines().

void list_pipelines(Client& c, Jobs& j, const Request& req, Response& res);
void create_pipeline(Client& c, Jobs& j, const Request& req, Response& res);
void inspect_pipeline(Client& c, Jobs& j, const Request& req, Response& res);
void update_pipeline(Client& c, Jobs& j, const Request& req, Response& res);
void delete_pipeline(Client& c, Jobs& j, const Request& req, Response& res);
void stop_pipeline(Client& c, Jobs& j, const Request& req, Response& res);
void start_pipeline(Client& c, Jobs& j, const Request& req, Response& res);
void restart_datum(Client& c, Jobs& j, const Request& req, Response& res);
void list_pipeline_runs(Client& c, Jobs& j, const Request& req, Response& res);
void inspect_pipeline_run(Client& c, Jobs& j, const Request& req, Response& res);
void list_datums(Client& c, Jobs& j, const Request& req, Response& res);
void pipeline_logs(Client& c, Jobs& j, const Request& req, Response& res);
void flush_commit(Client& c, Jobs& j, const Request& req, Response& res);
void run_datum(Client& c, Jobs& j, const Request& req, Response& res);

// ---- commit events (routes_events.cc)

// What the server's long-polls share: how many wait, how many may, and
// whether the server is stopping (which ends them within 100 ms).
struct WaitGate {
  std::atomic<std::size_t> waiting{0};
  std::size_t max_waiting = 1;
  std::atomic<bool> stopping{false};
};
void wait_commits(Client& c, const Request& req, Response& res, WaitGate& gate);

}  // namespace pfs::detail::routes
