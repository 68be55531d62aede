// http_client.cc: pfs::connect(): the Client interface over the HTTP API
// (docs/http.md), on libcurl (http_transport.h). Every call is one request;
// errors come back as the server's {"error", "code"} and become the same
// pfs::Error a local store returns, so pachctl prints the same message and
// exits the same way. Here: connect(), commits and branches, replication and
// the store's upkeep; files and directories are in http_client_files.cc.
#include "http_client.h"

#include <algorithm>
#include <chrono>
#include <span>
#include <string>

#include <fmt/format.h>

#include <pfs/json.h>
#include <pfs/remote.h>

#include "fail.h"

namespace pfs {
namespace detail::remote {
namespace {

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

}  // namespace

// ---- the store

Result<StoreInfo> RemoteClient::info() {
  return guard([&] { return as<StoreInfo>(http_.get_json("/info")); });
}

// ---- commits and branches

Result<CommitInfo> RemoteClient::commit(std::string_view branch, std::string_view message) {
  return guard([&] {
    Query q;
    q.add("branch", branch);
    if (!message.empty()) q.add("message", message);
    return as<CommitInfo>(http_.post_json("/commit" + q.str()));
  });
}

Result<std::vector<CommitInfo>> RemoteClient::list_commits(const LogOptions& opts) {
  return guard([&] {
    Query q;
    if (opts.all) q.add("all", "true");
    else q.add("branch", opts.branch);
    if (opts.limit) q.add("limit", std::to_string(*opts.limit));
    return as<std::vector<CommitInfo>>(http_.get_json("/commit" + q.str()));
  });
}

Result<CommitInfo> RemoteClient::inspect_commit(std::string_view commit) {
  return guard([&] { return as<CommitInfo>(http_.get_json("/commit/" + named(commit, "commit"))); });
}

Result<void> RemoteClient::delete_commit(std::string_view commit) {
  return guard([&] { http_.request({"DELETE", "/commit/" + named(commit, "commit")}); });
}

Result<BranchInfo> RemoteClient::create_branch(std::string_view name, std::string_view from_commit) {
  return guard([&] {
    Query q;
    q.add("branch", name);
    if (!from_commit.empty()) q.add("commit", from_commit);
    return as<BranchInfo>(http_.post_json("/branch" + q.str()));
  });
}

Result<std::vector<BranchInfo>> RemoteClient::list_branches() {
  return guard([&] { return as<std::vector<BranchInfo>>(http_.get_json("/branch")); });
}

Result<BranchInfo> RemoteClient::inspect_branch(std::string_view name) {
  return guard([&] { return as<BranchInfo>(http_.get_json("/branch/" + named(name, "branch"))); });
}

Result<void> RemoteClient::delete_branch(std::string_view name) {
  return guard([&] { http_.request({"DELETE", "/branch/" + named(name, "branch")}); });
}

Result<std::vector<DiffEntry>> RemoteClient::diff(const Ref& from, const Ref& to) {
  return guard([&] {
    Query q;
    q.ref(from, "from_").ref(to, "to_");
    return as<std::vector<DiffEntry>>(http_.get_json("/diff" + q.str()));
  });
}

Result<CommitInfo> RemoteClient::revert(std::string_view branch, std::string_view commit,
                                        const RevertOptions& opts) {
  return guard([&] {
    Query q;
    q.add("branch", branch).add("commit", commit);
    if (opts.force) q.add("force", "true");
    if (!opts.message.empty()) q.add("message", opts.message);
    return as<CommitInfo>(http_.post_json("/revert" + q.str()));
  });
}

Result<MergeResult> RemoteClient::merge(std::string_view into, std::string_view from,
                                        const MergeOptions& opts) {
  return guard([&] {
    Query q;
    q.add("into", into).add("from", from);
    switch (opts.on_conflict) {
      case MergeOptions::Strategy::kFail: break;
      case MergeOptions::Strategy::kOurs: q.add("on_conflict", "ours"); break;
      case MergeOptions::Strategy::kTheirs: q.add("on_conflict", "theirs"); break;
    }
    if (!opts.message.empty()) q.add("message", opts.message);
    // A 409 with the conflicts is a result (MergeResult::conflicts), not an error.
    Resp r = http_.request({"POST", "/merge" + q.str()}, {409});
    json j = http_.parse(r.body);
    if (r.status == 409 && !j.contains("conflicts")) throw Fail{http_.error_of(r)};
    return as<MergeResult>(j);
  });
}

// ---- replication

Result<CommitInfo> RemoteClient::send(std::string_view commit, Sink& out, const SendOptions& opts) {
  return guard([&] {
    // The commit first: what send returns, and the same error as a local
    // store for a name that is no commit, before any byte has moved.
    CommitInfo info = as<CommitInfo>(http_.get_json("/commit/" + named(commit, "commit")));
    Query q;
    if (!opts.parent.empty()) q.add("parent", opts.parent);
    CountingSink counted(out);
    Req rq{"GET", "/send/" + encode(info.id, false) + q.str()};
    rq.download = &counted;
    rq.progress = true;
    try {
      http_.request(rq);
    } catch (Fail& f) {
      // NOTE: the server can only report an error found after the stream
      // began by cutting the connection: that is this kIo.
      if (f.error.code == ErrorCode::kIo && !counted.failed && counted.bytes > 0)
        f.error.message = fmt::format("the stream of commit {} from {} broke off after {} bytes ({}); "
                                      "nothing of it may be used",
                                      info.id, http_.base(), counted.bytes, f.error.message);
      throw;
    }
    return info;
  });
}

Result<ReceiveResult> RemoteClient::receive(Source& in, const ReceiveOptions& opts) {
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
    return as<ReceiveResult>(http_.parse(http_.request(rq).body));
  });
}

Result<BranchInfo> RemoteClient::set_branch_head(std::string_view name, std::string_view commit,
                                                 const SetHeadOptions& opts) {
  return guard([&] {
    Query q;
    q.add("commit", commit);
    if (opts.expected_head) q.add("expect", *opts.expected_head);
    if (opts.force) q.add("force", "true");
    return as<BranchInfo>(http_.post_json("/branch/" + named(name, "branch") + "/head" + q.str()));
  });
}

// ---- the store's upkeep

Result<FsckReport> RemoteClient::fsck(bool repair) {
  return guard([&] {
    return as<FsckReport>(repair ? http_.post_json("/fsck?repair=true") : http_.get_json("/fsck"));
  });
}

Result<GcReport> RemoteClient::gc() {
  return guard([&] { return as<GcReport>(http_.post_json("/gc")); });
}

// ---- commit events

Result<CommitEvents> RemoteClient::wait_commits(const WaitOptions& opts) {
  return guard([&] {
    using clock = std::chrono::steady_clock;
    if (opts.timeout_ms < 0)
      failf(ErrorCode::kInvalidArgument, "timeout {} ms is negative (0 does not wait)", opts.timeout_ms);
    // A server answers one wait within 60 s at most; a longer wait is a
    // series of them, each going on from the cursor the last one returned.
    constexpr std::int64_t kSliceMs = 25000, kYearMs = 365LL * 24 * 3600 * 1000;
    auto deadline = clock::now() + std::chrono::milliseconds(std::min(opts.timeout_ms, kYearMs));
    std::string since = opts.since;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
      nlohmann::json q{{"branch", opts.branch},
                       {"since", since},
                       {"timeout_ms", std::clamp<std::int64_t>(left, 0, kSliceMs)}};
      // The body, not the URL: the cursor of a store of many branches is long.
      auto body = Source::from_string(q.dump());
      Req rq{"POST", "/commits/wait"};
      rq.upload = body.get();
      rq.upload_size = q.dump().size();
      auto events = as<CommitEvents>(http_.parse(http_.request(rq).body));
      if (!events.events.empty() || clock::now() >= deadline || (opts.cancelled && opts.cancelled()))
        return events;
      since = events.cursor;
    }
  });
}

}  // namespace detail::remote

Result<std::unique_ptr<Client>> connect(std::string_view url, const RemoteOptions& options) {
  std::string base(url);
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (base.rfind("http://", 0) != 0 && base.rfind("https://", 0) != 0)
    return Error{ErrorCode::kInvalidArgument,
                 fmt::format("server address \"{}\" is not an http:// or https:// URL "
                             "(e.g. http://127.0.0.1:8080)",
                             url)};
  auto c = std::make_unique<detail::remote::RemoteClient>(base, options);
  auto ok = detail::guard([&] { c->transport().request({"GET", "/health"}); });
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
