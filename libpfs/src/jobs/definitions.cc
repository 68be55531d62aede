// definitions.cc: jobs as files job/<name> of a branch: create (checked,
// no cycle), inspect, list, delete; finding a commit's jobs and cycles.
#include <algorithm>

#include <fmt/format.h>

#include "engine.h"
#include "fail.h"
#include "names.h"

namespace pfs::detail::jobs {

namespace {

constexpr std::uint64_t kMaxJobFile = 64 * 1024;

std::string job_path(std::string_view name) { return std::string(kJobDir) + "/" + std::string(name); }

std::string read_small(Client& store, const Ref& ref, const std::string& path) {
  auto st = store.stat_file(ref, path);
  if (!st) throw Fail{std::move(st).error()};
  if (st->type != FileInfo::Type::kFile)
    failf(ErrorCode::kInvalidArgument, "{} is a directory, not a job descriptor", path);
  if (st->size > kMaxJobFile)
    failf(ErrorCode::kInvalidArgument, "{} is {} bytes: too large for a job descriptor (at most {})", path,
          st->size, kMaxJobFile);
  std::string text;
  auto sink = Sink::to_string(&text);
  unwrap(store.get_file(ref, path, *sink));
  return text;
}

// The job `j` reads, when it reads one.
std::optional<std::string> reads_job(const FoundJob& j) {
  if (!j.spec) return std::nullopt;
  Input in = parse_input(j.spec->input);
  if (in.kind != Input::Kind::kJob) return std::nullopt;
  return in.path;
}

}  // namespace

std::vector<FoundJob> find_jobs(Client& store, const Ref& ref) {
  std::vector<FoundJob> out;
  auto list = store.list_files(ref, kJobDir);
  if (!list) {
    if (list.error().code == ErrorCode::kNotFound && store.stat_file(ref, "").ok()) return out;
    throw Fail{std::move(list).error()};
  }
  for (const auto& f : *list) {
    if (f.type != FileInfo::Type::kFile) continue;
    FoundJob j;
    j.name = path_base(f.path);
    try {
      j.text = read_small(store, ref, f.path);
      auto spec = parse_job(j.name, j.text);
      if (spec) j.spec = std::move(*spec);
      else j.error = spec.error().message;
    } catch (Fail& e) {
      j.error = e.error.message;
    }
    out.push_back(std::move(j));
  }
  std::sort(out.begin(), out.end(), [](const FoundJob& a, const FoundJob& b) { return a.name < b.name; });
  return out;
}

std::map<std::string, std::string> find_cycles(const std::vector<FoundJob>& jobs) {
  // Each job reads at most one other: following "reads" from any job either
  // ends or comes back to a job already on the way, closing a cycle.
  std::map<std::string, std::string> next;
  for (const auto& j : jobs)
    if (auto r = reads_job(j)) next[j.name] = *r;
  std::map<std::string, std::string> on_cycle;
  for (const auto& j : jobs) {
    std::vector<std::string> path{j.name};
    for (auto it = next.find(j.name); it != next.end(); it = next.find(path.back())) {
      auto seen = std::find(path.begin(), path.end(), it->second);
      if (seen != path.end()) {
        std::string text;
        for (auto p = seen; p != path.end(); ++p) text += *p + " -> ";
        text += it->second;
        for (auto p = seen; p != path.end(); ++p) on_cycle.emplace(*p, text);
        break;
      }
      path.push_back(it->second);
    }
  }
  return on_cycle;
}

Result<JobSpec> LocalJobs::create_job(std::string_view branch, std::string_view name,
                                      std::string_view json_text) {
  return guard([&] {
    check_branch_name(branch);
    if (branch == kJobsBranch)
      failf(ErrorCode::kInvalidArgument, "branch {} keeps the runs of jobs; post jobs to a data branch",
            kJobsBranch);
    JobSpec spec = unwrap(parse_job(name, json_text));
    unwrap(store_.inspect_branch(branch));
    auto jobs = find_jobs(store_, Ref::branch(std::string(branch)));
    std::erase_if(jobs, [&](const FoundJob& j) { return j.name == name; });
    FoundJob self;
    self.name = spec.name;
    self.spec = spec;
    jobs.push_back(self);
    auto cycles = find_cycles(jobs);
    if (auto c = cycles.find(spec.name); c != cycles.end())
      failf(ErrorCode::kInvalidArgument, "input: \"{}\" would close a cycle of jobs: {}", spec.input, c->second);
    auto src = Source::from_string(job_json(spec));
    unwrap(store_.put_file(branch, job_path(spec.name), *src));
    return spec;
  });
}

Result<JobSpec> LocalJobs::inspect_job(const Ref& ref, std::string_view name) {
  return guard([&] {
    check_name(name, "job");
    std::string text;
    try {
      text = read_small(store_, ref, job_path(name));
    } catch (Fail& f) {
      if (f.error.code == ErrorCode::kNotFound && store_.stat_file(ref, "").ok())
        failf(ErrorCode::kNotFound, "job \"{}\" not found in {} (list jobs with: pachctl list-job)", name,
              ref.name);
      throw;
    }
    return unwrap(parse_job(name, text));
  });
}

Result<std::vector<JobSpec>> LocalJobs::list_jobs(const Ref& ref) {
  return guard([&] {
    std::vector<JobSpec> out;
    for (auto& j : find_jobs(store_, ref))
      if (j.spec) out.push_back(std::move(*j.spec));
    return out;
  });
}

Result<void> LocalJobs::delete_job(std::string_view branch, std::string_view name) {
  return guard([&] {
    check_branch_name(branch);
    check_name(name, "job");
    auto r = store_.delete_file(branch, job_path(name));
    if (!r && r.error().code == ErrorCode::kNotFound && store_.inspect_branch(branch).ok())
      failf(ErrorCode::kNotFound, "job \"{}\" not found on branch \"{}\" (list jobs with: pachctl list-job)",
            name, branch);
    unwrap(std::move(r));
  });
}

}  // namespace pfs::detail::jobs
