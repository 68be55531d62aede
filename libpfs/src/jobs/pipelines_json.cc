// pipelines_json.cc: the JSON forms of the pipelines types (pfs/json.h):
// what `pachctl --json` prints, the HTTP API exchanges and branch
// _pipelines keeps. Reads are lenient (a newer server's extra fields are
// ignored); a state this version does not know reads as a failure.
#include <pfs/json.h>

#include "json_forms.h"

namespace pfs {

using json = nlohmann::json;

namespace {

using detail::jobs::state_named;
using detail::jobs::time_or_null;

PipelineRunState run_state_of(const std::string& s) {
  return state_named(s,
                     {PipelineRunState::kQueued, PipelineRunState::kRunning, PipelineRunState::kSuccess,
                      PipelineRunState::kFailure, PipelineRunState::kKilled, PipelineRunState::kUnrunnable},
                     pipeline_run_state_name, PipelineRunState::kFailure);
}

DatumState datum_state_of(const std::string& s) {
  return state_named(s,
                     {DatumState::kPending, DatumState::kRunning, DatumState::kProcessed, DatumState::kSkipped,
                      DatumState::kRecovered, DatumState::kFailed},
                     datum_state_name, DatumState::kFailed);
}

}  // namespace

void to_json(json& j, const PipelineSpec& v) { j = json::parse(pipeline_json(v)); }

void from_json(const json& j, PipelineSpec& v) {
  auto r = parse_pipeline(j.dump());
  if (!r) throw json::other_error::create(501, r.error().message, &j);
  v = std::move(*r);
}

void to_json(json& j, const PipelineInfo& v) {
  j = json{{"name", v.spec.name},
           {"spec", v.spec},
           {"version", v.version},
           {"spec_number", v.spec_number},
           {"stopped", v.stopped},
           {"state", v.stopped ? "stopped" : "running"},
           {"inputs", pipeline_inputs(v.spec)},
           {"created", time_or_null(v.created_ns)},
           {"updated", time_or_null(v.updated_ns)},
           {"created_ns", v.created_ns},
           {"updated_ns", v.updated_ns},
           {"last_run", v.last_run},
           {"last_state", v.last_state}};
}

void from_json(const json& j, PipelineInfo& v) {
  v.spec = j.at("spec").get<PipelineSpec>();
  v.spec_json = pipeline_json(v.spec);
  v.version = j.value("version", "");
  v.spec_number = j.value("spec_number", std::uint64_t{1});
  v.stopped = j.value("stopped", false);
  v.created_ns = j.value("created_ns", std::int64_t{0});
  v.updated_ns = j.value("updated_ns", std::int64_t{0});
  v.last_run = j.value("last_run", "");
  v.last_state = j.value("last_state", "");
}

void to_json(json& j, const PipelineRun& v) {
  json prov = json::array();
  for (const auto& p : v.provenance) prov.push_back({{"branch", p.branch}, {"commit", p.commit}});
  j = json{{"id", v.id},
           {"pipeline", v.pipeline},
           {"number", v.number},
           {"spec_version", v.spec_version},
           {"state", pipeline_run_state_name(v.state)},
           {"reason", v.reason},
           {"trigger", v.trigger},
           {"provenance", prov},
           {"output_commit", v.output_commit},
           {"queued", time_or_null(v.queued_ns)},
           {"started", time_or_null(v.started_ns)},
           {"finished", time_or_null(v.finished_ns)},
           {"queued_ns", v.queued_ns},
           {"started_ns", v.started_ns},
           {"finished_ns", v.finished_ns},
           {"datums",
            {{"total", v.datums.total},
             {"processed", v.datums.processed},
             {"skipped", v.datums.skipped},
             {"recovered", v.datums.recovered},
             {"failed", v.datums.failed}}},
           {"output", {{"files", v.output.files}, {"bytes", v.output.bytes}}}};
}

void from_json(const json& j, PipelineRun& v) {
  v.id = j.at("id").get<std::string>();
  v.pipeline = j.value("pipeline", "");
  v.number = j.value("number", std::uint64_t{0});
  v.spec_version = j.value("spec_version", "");
  v.state = run_state_of(j.value("state", ""));
  v.reason = j.value("reason", "");
  v.trigger = j.value("trigger", "");
  v.provenance.clear();
  if (j.contains("provenance"))
    for (const auto& p : j.at("provenance"))
      v.provenance.push_back({p.value("branch", ""), p.value("commit", "")});
  v.output_commit = j.value("output_commit", "");
  v.queued_ns = j.value("queued_ns", std::int64_t{0});
  v.started_ns = j.value("started_ns", std::int64_t{0});
  v.finished_ns = j.value("finished_ns", std::int64_t{0});
  if (j.contains("datums")) {
    const auto& d = j.at("datums");
    v.datums.total = d.value("total", std::uint64_t{0});
    v.datums.processed = d.value("processed", std::uint64_t{0});
    v.datums.skipped = d.value("skipped", std::uint64_t{0});
    v.datums.recovered = d.value("recovered", std::uint64_t{0});
    v.datums.failed = d.value("failed", std::uint64_t{0});
  }
  if (j.contains("output")) {
    v.output.files = j.at("output").value("files", std::uint64_t{0});
    v.output.bytes = j.at("output").value("bytes", std::uint64_t{0});
  }
}

void to_json(json& j, const DatumInfo& v) {
  json files = json::array();
  for (const auto& f : v.files) files.push_back({{"input", f.input}, {"path", f.path}});
  j = json{{"id", v.id},       {"state", datum_state_name(v.state)}, {"files", files},
           {"tries", v.tries}, {"duration_ns", v.duration_ns},       {"error", v.error},
           {"outputs", v.outputs}};
}

void from_json(const json& j, DatumInfo& v) {
  v.id = j.at("id").get<std::string>();
  v.state = datum_state_of(j.value("state", ""));
  v.files.clear();
  if (j.contains("files"))
    for (const auto& f : j.at("files")) v.files.push_back({f.value("input", ""), f.value("path", "")});
  v.tries = j.value("tries", 0u);
  v.duration_ns = j.value("duration_ns", std::int64_t{0});
  v.error = j.value("error", "");
  v.outputs = j.value("outputs", std::vector<std::string>{});
}

void to_json(json& j, const DatumTrial& v) {
  j = json{{"datum", v.datum}, {"logs", v.logs}, {"outputs", v.outputs}};
}

void from_json(const json& j, DatumTrial& v) {
  v.datum = j.at("datum").get<DatumInfo>();
  v.logs = j.value("logs", "");
  v.outputs = j.value("outputs", std::vector<FileInfo>{});
}

}  // namespace pfs
