// routes_commits.cc: the routes of commits, branches and history: /commit
// (make one, the log, inspect, delete), /branch (create, list, inspect,
// delete), /diff, /revert and /merge. (A branch head moved by
// compare-and-swap is replication's: routes_store.cc.)
#include "routes.h"

#include <fmt/format.h>

namespace pfs::detail::routes {
namespace {

// One side of a diff: ?from= (as Ref::any), ?from_commit= or ?from_branch=
// (and the same for "to"), exactly one of them.
Ref diff_ref(const Request& req, const char* side) {
  std::string s = side;
  std::string c = s + "_commit", b = s + "_branch";
  int given = req.has(s) + req.has(c) + req.has(b);
  if (given != 1) failf(ErrorCode::kInvalidArgument, "give exactly one of {}, {} and {}", s, c, b);
  if (req.has(c)) return Ref::commit(req.param(c));
  if (req.has(b)) return Ref::branch(req.param(b));
  return Ref::any(req.param(s));
}

}  // namespace

// ---- commits

void create_commit(Client& c, const Request& req, Response& res) {
  res.json(200, json(take(c.commit(write_branch(req), req.param("message")))));
}

void list_commits(Client& c, const Request& req, Response& res) {
  LogOptions o;
  if (req.has("branch")) o.branch = req.param("branch");
  else o.all = true;  // v0.8: "GET /commit: getting all commits"
  if (req.has("all")) o.all = flag(req, "all");
  if (req.has("limit")) o.limit = number(req, "limit");
  res.json(200, json(take(c.list_commits(o))));
}

void inspect_commit(Client& c, const Request& req, Response& res) {
  res.json(200, json(take(c.inspect_commit(req.matches[1]))));
}

void delete_commit(Client& c, const Request& req, Response& res) {
  take(c.delete_commit(req.matches[1]));
  res.json(200, json::object());
}

// ---- branches

void create_branch(Client& c, const Request& req, Response& res) {
  if (!req.has("branch"))
    fail(ErrorCode::kInvalidArgument, "name the new branch: POST /branch?branch=NAME[&commit=C]");
  res.json(201, json(take(c.create_branch(req.param("branch"), req.param("commit")))));
}

void list_branches(Client& c, const Request&, Response& res) { res.json(200, json(take(c.list_branches()))); }

void inspect_branch(Client& c, const Request& req, Response& res) {
  res.json(200, json(take(c.inspect_branch(req.matches[1]))));
}

void delete_branch(Client& c, const Request& req, Response& res) {
  take(c.delete_branch(req.matches[1]));
  res.json(200, json::object());
}

// ---- history

void diff(Client& c, const Request& req, Response& res) {
  res.json(200, json(take(c.diff(diff_ref(req, "from"), diff_ref(req, "to")))));
}

void revert(Client& c, const Request& req, Response& res) {
  if (!req.has("commit"))
    fail(ErrorCode::kInvalidArgument, "name the commit to restore: POST /revert?commit=C[&branch=B]");
  RevertOptions o;
  o.force = flag(req, "force");
  o.message = req.param("message");
  res.json(200, json(take(c.revert(write_branch(req), req.param("commit"), o))));
}

// POST /merge: a merge with conflicts is a 409 that lists them (and names
// the error, as any other), so that the remote client can return them.
void merge(Client& c, const Request& req, Response& res) {
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
}

}  // namespace pfs::detail::routes
