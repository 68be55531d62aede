// http_client_jobs.cc: pfs::connect_jobs(): the Jobs interface over the
// HTTP API's job routes (docs/http.md, "Jobs"), one request per call; a
// wait longer than the server allows is asked for in slices.
#include <algorithm>

#include <fmt/format.h>

#include <pfs/json.h>
#include <pfs/remote.h>

#include "fail.h"
#include "http_client_pipelines.h"
#include "http_transport.h"

namespace pfs {
namespace detail::remote {
namespace {

constexpr std::int64_t kSliceMs = 25000;  // under the server's cap (600 s) and idle timeouts

std::string job_target(std::string_view job) { return "/job/" + named(job, "job"); }

class RemoteJobs final : public Jobs {
 public:
  RemoteJobs(std::string base, RemoteOptions opts)
      : http_(std::move(base), std::move(opts)), pipelines_(remote_pipelines(http_)) {}
  Transport& transport() { return http_; }

  Result<JobSpec> create_job(std::string_view branch, std::string_view name, std::string_view text) override {
    return guard([&] {
      auto src = Source::from_string(std::string(text));
      Req rq("POST", job_target(name) + Query().add("branch", branch).str());
      rq.upload = src.get();
      rq.upload_size = text.size();
      return as<JobSpec>(http_.parse(http_.request(rq).body));
    });
  }
  Result<JobSpec> inspect_job(const Ref& ref, std::string_view name) override {
    return guard([&] { return as<JobSpec>(http_.get_json(job_target(name) + Query().ref(ref).str())); });
  }
  Result<std::vector<JobSpec>> list_jobs(const Ref& ref) override {
    return guard([&] { return as<std::vector<JobSpec>>(http_.get_json("/job" + Query().ref(ref).str())); });
  }
  Result<void> delete_job(std::string_view branch, std::string_view name) override {
    return guard([&] { http_.request({"DELETE", job_target(name) + Query().add("branch", branch).str()}); });
  }

  Result<CommitInfo> commit_and_run(std::string_view branch, std::string_view message) override {
    return guard([&] {
      Query q;
      q.add("run", "true").add("branch", branch);
      if (!message.empty()) q.add("message", message);
      return as<CommitInfo>(http_.post_json("/commit" + q.str()));
    });
  }
  Result<std::vector<RunInfo>> rerun(std::string_view commit, const RerunOptions& opts) override {
    return guard([&] {
      Query q;
      if (!opts.job.empty()) q.add("job", opts.job);
      return as<std::vector<RunInfo>>(http_.post_json("/runs/" + named(commit, "commit") + "/rerun" + q.str()));
    });
  }
  Result<std::vector<RunInfo>> list_runs(std::string_view commit) override {
    return guard([&] {
      return as<std::vector<RunInfo>>(http_.get_json(commit.empty() ? "/runs" : "/runs/" + named(commit, "commit")));
    });
  }
  Result<RunInfo> inspect_run(std::string_view commit, std::string_view job) override {
    return guard([&] { return as<RunInfo>(http_.get_json(run_target(commit, job))); });
  }
  Result<RunInfo> wait_run(std::string_view commit, std::string_view job, std::chrono::milliseconds wait) override {
    return guard([&] {
      auto deadline = std::chrono::steady_clock::now() + wait;
      for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        std::int64_t slice = std::clamp<std::int64_t>(left.count(), 0, kSliceMs);
        auto r = as<RunInfo>(http_.get_json(run_target(commit, job) + Query().add("wait", std::to_string(slice)).str()));
        bool ended = r.state != RunState::kQueued && r.state != RunState::kRunning;
        if (ended || slice < kSliceMs) return r;
      }
    });
  }
  Result<void> get_logs(std::string_view commit, std::string_view job, Sink& out) override {
    return guard([&] {
      Req rq("GET", run_target(commit, job) + "/log");
      rq.download = &out;
      http_.request(rq);
    });
  }
  Result<FileInfo> get_output(std::string_view commit, std::string_view job, std::string_view path, Sink& out,
                              const OutputOptions& opts) override {
    return guard([&] {
      settle(commit, job, opts);
      Req rq("GET", file_target(job_target(job) + "/file/", path) + output_query(commit).str());
      rq.download = &out;
      Resp r = http_.request(rq);
      FileInfo fi;
      fi.path = std::string(path);
      std::string size = r.header("x-pfs-size");
      if (!size.empty()) fi.size = std::stoull(size);
      return fi;
    });
  }
  Result<std::vector<FileInfo>> list_output(std::string_view commit, std::string_view job,
                                            std::string_view dir_or_glob, const OutputOptions& opts) override {
    return guard([&] {
      settle(commit, job, opts);
      Query q = output_query(commit);
      if (opts.recursive) q.add("recursive", "true");
      std::string target = dir_or_glob.empty() ? job_target(job) + "/list" : file_target(job_target(job) + "/list/", dir_or_glob);
      return as<std::vector<FileInfo>>(http_.get_json(target + q.str()));
    });
  }
  Pipelines& pipelines() override { return *pipelines_; }

 private:
  static std::string run_target(std::string_view commit, std::string_view job) {
    return "/runs/" + named(commit, "commit") + "/" + named(job, "job");
  }
  // A read waits for a run in progress as long-polls of its own (so no
  // request outlives the connection's timeouts), then asks without waiting.
  void settle(std::string_view commit, std::string_view job, const OutputOptions& opts) {
    if (opts.wait.count() > 0) (void)wait_run(commit, job, opts.wait);  // its errors come again below
  }
  static Query output_query(std::string_view commit) {
    Query q;
    q.add("commit", commit);
    q.add("wait", "0");
    return q;
  }
  Transport http_;
  std::unique_ptr<Pipelines> pipelines_;  // over http_
};

}  // namespace
}  // namespace detail::remote

Result<std::unique_ptr<Jobs>> connect_jobs(std::string_view url, const RemoteOptions& options) {
  std::string base(url);
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (base.rfind("http://", 0) != 0 && base.rfind("https://", 0) != 0)
    return Error{ErrorCode::kInvalidArgument,
                 fmt::format("server address \"{}\" is not an http:// or https:// URL (e.g. http://127.0.0.1:8080)", url)};
  return std::unique_ptr<Jobs>(std::make_unique<detail::remote::RemoteJobs>(base, options));
}

}  // namespace pfs
