// pipeline_records.cc: what PipelineEngine keeps on branch _pipelines:
// specs and their meta, run records, datum tables, and the branch itself.
#include <map>
#include <stdexcept>

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

namespace {

// The datum table: one line per datum, fields separated by tabs, every
// text field escaped (\\, \t, \n, \r), after a first line naming the
// format:
//   id key state tries duration_ns error
//   n-files (input repo path hash size) x n   n-outputs output x n
// A 100,000-datum table is ~20 MB and reads in ~0.2 s, where JSON lines
// were 31 MB and 1.4 s: an incremental run reads the last one whole.
constexpr std::string_view kDatumsHeader = "pfs-datums 1\n";

void put_field(std::string& out, std::string_view s) {
  for (char c : s) switch (c) {
      case '\\': out += "\\\\"; break;
      case '\t': out += "\\t"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      default: out += c;
    }
  out += '\t';
}
void put_number(std::string& out, std::uint64_t n) {
  out += std::to_string(n);
  out += '\t';
}

// The fields of one line, unescaped.
class Fields {
 public:
  explicit Fields(std::string_view line) : line_(line) {}
  std::string text() {
    std::string_view f = raw();
    if (f.find('\\') == std::string_view::npos) return std::string(f);
    std::string out;
    for (std::size_t i = 0; i < f.size(); i++) {
      if (f[i] != '\\' || i + 1 == f.size()) {
        out += f[i];
        continue;
      }
      char c = f[++i];
      out += c == 't' ? '\t' : c == 'n' ? '\n' : c == 'r' ? '\r' : c;
    }
    return out;
  }
  std::uint64_t number() {
    std::string_view f = raw();
    std::uint64_t n = 0;
    if (f.empty() || f.size() > 19) throw std::invalid_argument("a number was expected");
    for (char c : f) {
      if (c < '0' || c > '9') throw std::invalid_argument("a number was expected");
      n = n * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return n;
  }

  // Every field read (the line's last field ends it).
  bool done() const { return pos_ > line_.size(); }

 private:
  std::string_view raw() {
    if (pos_ > line_.size()) throw std::invalid_argument("the line ends early");
    std::size_t tab = line_.find('\t', pos_);
    if (tab == std::string_view::npos) tab = line_.size();
    std::string_view f = line_.substr(pos_, tab - pos_);
    pos_ = tab + 1;
    return f;
  }
  std::string_view line_;
  std::size_t pos_ = 0;
};

DatumState state_from(const std::string& s) {
  json j = {{"id", ""}, {"state", s}};
  return j.get<DatumInfo>().state;  // (the lenient reader: an unknown state reads as failed)
}

}  // namespace

std::string datums_text(const std::vector<DatumRecord>& d) {
  std::string text(kDatumsHeader);
  for (const auto& r : d) {
    put_field(text, r.info.id);
    put_field(text, r.key);
    put_field(text, datum_state_name(r.info.state));
    put_number(text, r.info.tries);
    put_number(text, static_cast<std::uint64_t>(std::max<std::int64_t>(r.info.duration_ns, 0)));
    put_field(text, r.info.error);
    // (hashed has one entry per file, in the same order: pipeline_run.cc)
    put_number(text, r.info.files.size());
    for (std::size_t k = 0; k < r.info.files.size(); k++) {
      static const DatumRecord::File kNone;
      const auto& h = k < r.hashed.size() ? r.hashed[k] : kNone;
      put_field(text, r.info.files[k].input);
      put_field(text, h.repo);
      put_field(text, r.info.files[k].path);
      put_field(text, h.hash);
      put_number(text, h.size);
    }
    put_number(text, r.info.outputs.size());
    for (const auto& o : r.info.outputs) put_field(text, o);
    text.back() = '\n';
  }
  return text;
}

std::vector<DatumRecord> parse_datums_text(std::string_view t, bool json_lines, const std::string& what) {
  std::vector<DatumRecord> out;
  std::size_t pos = 0, line_no = 0;
  if (!json_lines) {
    if (t.substr(0, kDatumsHeader.size()) != kDatumsHeader)
      failf(ErrorCode::kCorruption, "{} are damaged: no \"pfs-datums 1\" line", what);
    pos = kDatumsHeader.size();
    line_no = 1;
  }
  std::map<std::string, DatumState> states;  // (a handful of names)
  while (pos < t.size()) {
    std::size_t nl = t.find('\n', pos);
    if (nl == std::string_view::npos) nl = t.size();
    std::string_view line = t.substr(pos, nl - pos);
    pos = nl + 1;
    line_no++;
    if (line.empty()) continue;
    DatumRecord d;
    try {
      if (json_lines) {
        json j = json::parse(line);
        d.info = j.get<DatumInfo>();
        d.key = j.value("key", "");
        if (j.contains("hashed"))
          for (const auto& f : j.at("hashed"))
            d.hashed.push_back({f.at(0).get<std::string>(), f.at(1).get<std::string>(), f.at(2).get<std::string>(),
                                f.at(3).get<std::uint64_t>()});
      } else {
        Fields f(line);
        d.info.id = f.text();
        d.key = f.text();
        std::string st = f.text();
        auto known = states.find(st);
        if (known == states.end()) known = states.emplace(st, state_from(st)).first;
        d.info.state = known->second;
        d.info.tries = static_cast<std::uint32_t>(f.number());
        d.info.duration_ns = static_cast<std::int64_t>(f.number());
        d.info.error = f.text();
        for (std::uint64_t k = 0, files = f.number(); k < files; k++) {
          std::string input = f.text(), repo = f.text(), path = f.text(), hash = f.text();
          std::uint64_t size = f.number();
          d.info.files.push_back({std::move(input), path});
          if (!hash.empty()) d.hashed.push_back({std::move(repo), std::move(path), std::move(hash), size});
        }
        for (std::uint64_t k = 0, outputs = f.number(); k < outputs; k++) d.info.outputs.push_back(f.text());
        if (!f.done()) throw std::invalid_argument("more fields than its counts say");
      }
    } catch (const std::exception& e) {
      failf(ErrorCode::kCorruption, "{} are damaged at line {}: {}", what, line_no, e.what());
    }
    out.push_back(std::move(d));
  }
  return out;
}

std::vector<DatumRecord> PipelineEngine::read_datums(const std::string& pipeline, std::uint64_t n) {
  std::string what = fmt::format("the datums of run {}@{} (branch {})", pipeline, n, kPipelinesBranch);
  if (auto t = read_text(fmt::format("datums/{}/{}.tsv", pipeline, n))) return parse_datums_text(*t, false, what);
  // Written by pfs before the .tsv.
  if (auto t = read_text(fmt::format("datums/{}/{}.jsonl", pipeline, n))) return parse_datums_text(*t, true, what);
  return {};
}

void PipelineEngine::write_datums(const std::string& pipeline, std::uint64_t n, const std::vector<DatumRecord>& d) {
  write_text(fmt::format("datums/{}/{}.tsv", pipeline, n), datums_text(d));
}

}  // namespace pfs::detail::jobs
