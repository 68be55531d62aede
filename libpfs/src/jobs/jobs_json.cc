// jobs_json.cc: the JSON forms of the jobs types (pfs/json.h): what
// `pachctl --json` prints, the HTTP API exchanges and branch _jobs keeps.
#include <pfs/json.h>

#include "json_forms.h"

namespace pfs {

using json = nlohmann::json;

void to_json(json& j, const JobSpec& v) { j = json::parse(job_json(v)); }

void from_json(const json& j, JobSpec& v) {
  // The stored and served form is always complete (job_json); a lenient
  // read, so that a newer server's extra fields do not break an older client.
  v.name = j.value("name", "");
  v.type = j.value("type", "map") == "reduce" ? JobType::kReduce : JobType::kMap;
  v.input = j.value("input", "");
  v.image = j.value("image", "");
  v.command = j.value("command", std::vector<std::string>{});
  v.parallel = j.value("parallel", 0u);
  v.timeout = j.value("timeout", 0u);
  v.limit = j.value("limit", std::uint64_t{0});
  v.cpu_shares = j.value("cpu-shares", std::uint64_t{0});
  v.memory = j.value("memory", std::uint64_t{0});
}

namespace {
using detail::jobs::time_or_null;

RunState state_of(const std::string& s) {
  return detail::jobs::state_named(s,
                                   {RunState::kQueued, RunState::kRunning, RunState::kSuccess, RunState::kFailure,
                                    RunState::kSkipped},
                                   run_state_name, RunState::kFailure);
}
}  // namespace

void to_json(json& j, const RunInfo& v) {
  j = json{{"commit", v.commit},
           {"branch", v.branch},
           {"job", v.job},
           {"job_version", v.job_version},
           {"state", run_state_name(v.state)},
           {"reason", v.reason},
           {"attempt", v.attempt},
           {"queued", time_or_null(v.queued_ns)},
           {"started", time_or_null(v.started_ns)},
           {"finished", time_or_null(v.finished_ns)},
           {"queued_ns", v.queued_ns},
           {"started_ns", v.started_ns},
           {"finished_ns", v.finished_ns},
           {"datums", {{"total", v.datums_total}, {"done", v.datums_done}, {"failed", v.datums_failed}}},
           {"output", {{"files", v.output.files}, {"bytes", v.output.bytes}}},
           {"spec", v.spec}};
}

void from_json(const json& j, RunInfo& v) {
  v.commit = j.at("commit").get<std::string>();
  v.branch = j.value("branch", "");
  v.job = j.at("job").get<std::string>();
  v.job_version = j.value("job_version", "");
  v.state = state_of(j.at("state").get<std::string>());
  v.reason = j.value("reason", "");
  v.attempt = j.value("attempt", 1u);
  v.queued_ns = j.value("queued_ns", std::int64_t{0});
  v.started_ns = j.value("started_ns", std::int64_t{0});
  v.finished_ns = j.value("finished_ns", std::int64_t{0});
  if (auto d = j.find("datums"); d != j.end()) {
    v.datums_total = d->value("total", std::uint64_t{0});
    v.datums_done = d->value("done", std::uint64_t{0});
    v.datums_failed = d->value("failed", std::uint64_t{0});
  }
  if (auto o = j.find("output"); o != j.end()) {
    v.output.files = o->value("files", std::uint64_t{0});
    v.output.bytes = o->value("bytes", std::uint64_t{0});
  }
  if (auto s = j.find("spec"); s != j.end()) v.spec = s->get<JobSpec>();
}

}  // namespace pfs
