// pipeline_records.cc: what PipelineEngine keeps on branch _pipelines:
// specs and their meta, run records, datum tables, and the branch itself.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <pfs/json.h>

#include "fail.h"
#include "names.h"
#include "pipeline_engine.h"

namespace pfs::detail::jobs {

using json = nlohmann::json;

std::optional<std::string> PipelineEngine::read_text(const std::string& path) {
  std::string text;
  auto sink = Sink::to_string(&text);
  auto r = store_.get_file(Ref::branch(kPipelinesBranch), path, *sink);
  if (!r) {
    if (r.error().code == ErrorCode::kNotFound) return std::nullopt;
    throw Fail{std::move(r).error()};
  }
  return text;
}

void PipelineEngine::write_text(const std::string& path, const std::string& text) {
  auto src = Source::from_string(text);
  unwrap(store_.put_file(kPipelinesBranch, path, *src));
}

void PipelineEngine::ensure_records_branch() {
  if (store_.inspect_branch(kPipelinesBranch)) return;
  auto b = store_.create_branch(kPipelinesBranch, "");
  if (!b) {
    if (b.error().code == ErrorCode::kAlreadyExists) return;
    throw Fail{std::move(b).error()};
  }
  // A new branch starts from master's head: empty it, so that _pipelines
  // holds only what the engine writes.
  for (const auto& f : unwrap(store_.list_files(Ref::branch(kPipelinesBranch), "")))
    unwrap(store_.delete_file(kPipelinesBranch, f.path));
}

void PipelineEngine::commit_records(const std::string& message) {
  std::lock_guard lk(records_mu_);
  unwrap(store_.commit(kPipelinesBranch, message));
}

std::optional<PipelineMeta> PipelineEngine::load_meta(const std::string& name) {
  auto spec_text = read_text(fmt::format("pipelines/{}/spec.json", name));
  if (!spec_text) return std::nullopt;
  PipelineMeta m;
  auto spec = parse_pipeline(*spec_text);
  if (!spec)
    failf(ErrorCode::kCorruption, "the stored spec of pipeline {} (branch {}, pipelines/{}/spec.json) is damaged: {}",
          name, kPipelinesBranch, name, spec.error().message);
  m.info.spec = std::move(*spec);
  m.info.spec_json = pipeline_json(m.info.spec);
  m.info.version = short_hash(m.info.spec_json);
  if (auto t = read_text(fmt::format("pipelines/{}/meta.json", name))) {
    try {
      json j = json::parse(*t);
      m.info.spec_number = j.value("spec_number", std::uint64_t{1});
      m.info.stopped = j.value("stopped", false);
      m.info.created_ns = j.value("created_ns", std::int64_t{0});
      m.info.updated_ns = j.value("updated_ns", std::int64_t{0});
      m.info.last_run = j.value("last_run", "");
      m.info.last_state = j.value("last_state", "");
      m.next_run = j.value("next_run", std::uint64_t{1});
      m.last_success = j.value("last_success", std::uint64_t{0});
      m.salt = j.value("salt", std::uint64_t{0});
      m.last_success_input = j.value("last_success_input", "");
      for (const auto& f : j.value("forced", std::vector<std::string>{})) m.forced.insert(f);
    } catch (const json::exception& e) {
      failf(ErrorCode::kCorruption, "the record of pipeline {} (branch {}, pipelines/{}/meta.json) is damaged: {}",
            name, kPipelinesBranch, name, e.what());
    }
  }
  return m;
}

void PipelineEngine::save_meta(const PipelineMeta& m) {
  const std::string& name = m.info.spec.name;
  json j = {{"spec_number", m.info.spec_number}, {"stopped", m.info.stopped},
            {"created_ns", m.info.created_ns},   {"updated_ns", m.info.updated_ns},
            {"last_run", m.info.last_run},       {"last_state", m.info.last_state},
            {"next_run", m.next_run},            {"last_success", m.last_success},
            {"salt", m.salt},                    {"forced", m.forced},
            {"last_success_input", m.last_success_input}};
  write_text(fmt::format("pipelines/{}/spec.json", name), m.info.spec_json);
  write_text(fmt::format("pipelines/{}/meta.json", name), j.dump(2) + "\n");
}

std::vector<std::string> PipelineEngine::pipeline_names() {
  std::vector<std::string> out;
  auto l = store_.list_files(Ref::branch(kPipelinesBranch), "pipelines");
  if (!l) {
    if (l.error().code == ErrorCode::kNotFound) return out;
    throw Fail{std::move(l).error()};
  }
  for (const auto& f : *l)
    if (f.type == FileInfo::Type::kDirectory) out.push_back(path_base(f.path));
  return out;
}

std::optional<PipelineRun> PipelineEngine::read_run(const std::string& pipeline, std::uint64_t n) {
  auto t = read_text(fmt::format("runs/{}/{}.json", pipeline, n));
  if (!t) return std::nullopt;
  auto r = parse_json<PipelineRun>(*t);
  if (!r)
    failf(ErrorCode::kCorruption, "the record of run {}@{} (branch {}) is damaged: {}", pipeline, n,
          kPipelinesBranch, r.error().message);
  return std::move(*r);
}

void PipelineEngine::write_run(const PipelineRun& r) {
  json j = r;
  write_text(fmt::format("runs/{}/{}.json", r.pipeline, r.number), j.dump(2) + "\n");
}

std::vector<DatumRecord> PipelineEngine::read_datums(const std::string& pipeline, std::uint64_t n) {
  std::vector<DatumRecord> out;
  auto t = read_text(fmt::format("datums/{}/{}.jsonl", pipeline, n));
  if (!t) return out;
  std::size_t pos = 0;
  while (pos < t->size()) {
    std::size_t nl = t->find('\n', pos);
    if (nl == std::string::npos) nl = t->size();
    std::string_view line(t->data() + pos, nl - pos);
    pos = nl + 1;
    if (line.empty()) continue;
    try {
      json j = json::parse(line);
      DatumRecord d;
      d.info = j.get<DatumInfo>();
      d.key = j.value("key", "");
      if (j.contains("hashed"))
        for (const auto& f : j.at("hashed"))
          d.hashed.push_back({f.at(0).get<std::string>(), f.at(1).get<std::string>(), f.at(2).get<std::string>(),
                              f.at(3).get<std::uint64_t>()});
      out.push_back(std::move(d));
    } catch (const json::exception& e) {
      failf(ErrorCode::kCorruption, "the datums of run {}@{} (branch {}) are damaged: {}", pipeline, n,
            kPipelinesBranch, e.what());
    }
  }
  return out;
}

void PipelineEngine::write_datums(const std::string& pipeline, std::uint64_t n, const std::vector<DatumRecord>& d) {
  std::string text;
  for (const auto& r : d) {
    json j = r.info;
    j["key"] = r.key;
    json h = json::array();
    for (const auto& f : r.hashed) h.push_back(json::array({f.repo, f.path, f.hash, f.size}));
    j["hashed"] = std::move(h);
    text += j.dump();
    text += '\n';
  }
  write_text(fmt::format("datums/{}/{}.jsonl", pipeline, n), text);
}

}  // namespace pfs::detail::jobs
