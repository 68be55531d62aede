// http_client_pipelines.cc: the Pipelines interface over the HTTP API's
// pipeline routes (docs/http.md, "Pipelines"), one request per call; waits
// longer than the server allows are asked for in slices.
#include "http_client_pipelines.h"

#include <algorithm>

#include <fmt/format.h>

#include <pfs/json.h>

#include "fail.h"

namespace pfs::detail::remote {
namespace {

constexpr std::int64_t kSliceMs = 25000;  // under the server's cap (600 s) and idle timeouts

std::string pipeline_target(std::string_view name) { return "/pipelines/" + named(name, "pipeline"); }
std::string run_target(std::string_view id) { return "/pipeline-runs/" + named(id, "run"); }

class RemotePipelines final : public Pipelines {
 public:
  explicit RemotePipelines(Transport& http) : http_(http) {}

  Result<PipelineInfo> create_pipeline(std::string_view text) override {
    return guard([&] { return as<PipelineInfo>(send("POST", "/pipelines", text)); });
  }
  Result<PipelineInfo> update_pipeline(std::string_view text, bool reprocess) override {
    return guard([&] {
      // The name is in the spec; the route names it too, so read it here.
      PipelineSpec spec = unwrap(parse_pipeline(text));
      Query q;
      if (reprocess) q.add("reprocess", "true");
      return as<PipelineInfo>(send("PUT", pipeline_target(spec.name) + q.str(), text));
    });
  }
  Result<PipelineInfo> inspect_pipeline(std::string_view name) override {
    return guard([&] { return as<PipelineInfo>(http_.get_json(pipeline_target(name))); });
  }
  Result<std::vector<PipelineInfo>> list_pipelines() override {
    return guard([&] { return as<std::vector<PipelineInfo>>(http_.get_json("/pipelines")); });
  }
  Result<void> delete_pipeline(std::string_view name) override {
    return guard([&] { http_.request({"DELETE", pipeline_target(name)}); });
  }
  Result<PipelineInfo> stop_pipeline(std::string_view name) override {
    return guard([&] { return as<PipelineInfo>(http_.post_json(pipeline_target(name) + "/stop")); });
  }
  Result<PipelineInfo> start_pipeline(std::string_view name) override {
    return guard([&] { return as<PipelineInfo>(http_.post_json(pipeline_target(name) + "/start")); });
  }
  Result<std::vector<PipelineRun>> list_runs(const RunFilter& f) override {
    return guard([&] {
      Query q;
      if (!f.pipeline.empty()) q.add("pipeline", f.pipeline);
      if (!f.commit.empty()) q.add("commit", f.commit);
      return as<std::vector<PipelineRun>>(http_.get_json("/pipeline-runs" + q.str()));
    });
  }
  Result<PipelineRun> inspect_run(std::string_view id) override {
    return guard([&] { return as<PipelineRun>(http_.get_json(run_target(id))); });
  }
  Result<PipelineRun> wait_run(std::string_view id, std::chrono::milliseconds wait) override {
    return guard([&] {
      auto deadline = std::chrono::steady_clock::now() + wait;
      for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        std::int64_t slice = std::clamp<std::int64_t>(left.count(), 0, kSliceMs);
        auto r = as<PipelineRun>(http_.get_json(run_target(id) + Query().add("wait", std::to_string(slice)).str()));
        bool ended = r.state != PipelineRunState::kQueued && r.state != PipelineRunState::kRunning;
        if (ended || slice < kSliceMs) return r;
      }
    });
  }
  Result<std::vector<DatumInfo>> list_datums(std::string_view id) override {
    return guard([&] { return as<std::vector<DatumInfo>>(http_.get_json(run_target(id) + "/datums")); });
  }
  Result<PipelineRun> restart_datum(std::string_view pipeline, std::string_view datum) override {
    return guard([&] {
      return as<PipelineRun>(
          http_.post_json(pipeline_target(pipeline) + "/datums/" + named(datum, "datum") + "/restart"));
    });
  }
  Result<void> get_logs(const LogFilter& f, Sink& out) override {
    return guard([&] {
      Query q;
      if (!f.pipeline.empty()) q.add("pipeline", f.pipeline);
      if (!f.run.empty()) q.add("run", f.run);
      if (!f.datum.empty()) q.add("datum", f.datum);
      if (f.follow) q.add("follow", "true");
      Req rq("GET", "/pipeline-logs" + q.str());
      rq.download = &out;
      http_.request(rq);
    });
  }
  Result<std::vector<PipelineRun>> flush_commit(std::string_view commit, std::chrono::milliseconds wait) override {
    return guard([&] {
      auto deadline = std::chrono::steady_clock::now() + wait;
      for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        std::int64_t slice = std::clamp<std::int64_t>(left.count(), 0, kSliceMs);
        Req rq("GET", "/flush/" + named(commit, "commit") + Query().add("wait", std::to_string(slice)).str());
        Resp r = http_.request(rq, {503});
        if (r.status != 503) return as<std::vector<PipelineRun>>(http_.parse(r.body));
        if (slice < kSliceMs) throw Fail{http_.error_of(r)};  // the whole wait has passed
      }
    });
  }
  Result<DatumTrial> run_datum(std::string_view text, const DatumTrialOptions& opts) override {
    return guard([&] {
      if (!opts.output_dir.empty())
        fail(ErrorCode::kInvalidArgument,
             "a datum's outputs can be copied to a local folder only with a local store; over --address, the "
             "trial lists them (drop --output)");
      Query q;
      if (!opts.datum.empty()) q.add("datum", opts.datum);
      return as<DatumTrial>(send("POST", "/run-datum" + q.str(), text));
    });
  }

 private:
  json send(const char* method, const std::string& target, std::string_view body) {
    auto src = Source::from_string(std::string(body));
    Req rq(method, target);
    rq.upload = src.get();
    rq.upload_size = body.size();
    return http_.parse(http_.request(rq).body);
  }
  Transport& http_;
};

}  // namespace

std::unique_ptr<Pipelines> remote_pipelines(Transport& http) { return std::make_unique<RemotePipelines>(http); }

}  // namespace pfs::detail::remote
