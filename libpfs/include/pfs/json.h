// pfs/json.h: JSON forms of the pfs value types, for nlohmann::json (ADL):
//   nlohmann::json j = commit_info;  auto c = j.get<pfs::CommitInfo>();
// These are the forms `pachctl --json` prints and the HTTP API exchanges.
//
// Errors: to_json never throws. from_json is nlohmann's hook and follows
// nlohmann's contract, not pfs's: on a value of the wrong shape it throws
// nlohmann::json::exception (so do j.get<T>() and nlohmann's parse). This
// is the one place where an exception can reach a caller of libpfs, and
// only through nlohmann's own API; parse_json<T>() below does not throw.
#pragma once

#include <pfs/export.h>

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include <pfs/jobs.h>
#include <pfs/pipelines.h>
#include <pfs/result.h>
#include <pfs/types.h>

namespace pfs {

PFS_EXPORT void to_json(nlohmann::json& j, const TreeStats& v);
PFS_EXPORT void to_json(nlohmann::json& j, const CommitInfo& v);
PFS_EXPORT void from_json(const nlohmann::json& j, CommitInfo& v);
PFS_EXPORT void to_json(nlohmann::json& j, const BranchInfo& v);
PFS_EXPORT void from_json(const nlohmann::json& j, BranchInfo& v);
PFS_EXPORT void to_json(nlohmann::json& j, const FileInfo& v);
PFS_EXPORT void from_json(const nlohmann::json& j, FileInfo& v);
PFS_EXPORT void to_json(nlohmann::json& j, const DiffEntry& v);
PFS_EXPORT void from_json(const nlohmann::json& j, DiffEntry& v);
PFS_EXPORT void to_json(nlohmann::json& j, const MergeResult& v);
PFS_EXPORT void to_json(nlohmann::json& j, const FsckReport& v);
PFS_EXPORT void to_json(nlohmann::json& j, const StoreInfo& v);
PFS_EXPORT void to_json(nlohmann::json& j, const GcReport& v);
PFS_EXPORT void to_json(nlohmann::json& j, const PutDirResult& v);
PFS_EXPORT void to_json(nlohmann::json& j, const ReceiveResult& v);
PFS_EXPORT void to_json(nlohmann::json& j, const Error& v);
PFS_EXPORT void to_json(nlohmann::json& j, const CommitEvent& v);
PFS_EXPORT void to_json(nlohmann::json& j, const CommitEvents& v);
PFS_EXPORT void from_json(const nlohmann::json& j, TreeStats& v);
PFS_EXPORT void from_json(const nlohmann::json& j, MergeResult& v);
PFS_EXPORT void from_json(const nlohmann::json& j, FsckReport& v);
PFS_EXPORT void from_json(const nlohmann::json& j, GcReport& v);
PFS_EXPORT void from_json(const nlohmann::json& j, StoreInfo& v);
PFS_EXPORT void from_json(const nlohmann::json& j, PutDirResult& v);
PFS_EXPORT void from_json(const nlohmann::json& j, ReceiveResult& v);
PFS_EXPORT void from_json(const nlohmann::json& j, Error& v);
PFS_EXPORT void from_json(const nlohmann::json& j, CommitEvent& v);
PFS_EXPORT void from_json(const nlohmann::json& j, CommitEvents& v);
// Jobs (pfs/jobs.h). A JobSpec's form is its descriptor (job_json()).
PFS_EXPORT void to_json(nlohmann::json& j, const JobSpec& v);
PFS_EXPORT void from_json(const nlohmann::json& j, JobSpec& v);
PFS_EXPORT void to_json(nlohmann::json& j, const RunInfo& v);
PFS_EXPORT void from_json(const nlohmann::json& j, RunInfo& v);
// Pipelines (pfs/pipelines.h). A PipelineSpec's form is Pachyderm's (pipeline_json()).
PFS_EXPORT void to_json(nlohmann::json& j, const PipelineSpec& v);
PFS_EXPORT void from_json(const nlohmann::json& j, PipelineSpec& v);
PFS_EXPORT void to_json(nlohmann::json& j, const PipelineInfo& v);
PFS_EXPORT void from_json(const nlohmann::json& j, PipelineInfo& v);
PFS_EXPORT void to_json(nlohmann::json& j, const PipelineRun& v);
PFS_EXPORT void from_json(const nlohmann::json& j, PipelineRun& v);
PFS_EXPORT void to_json(nlohmann::json& j, const DatumInfo& v);
PFS_EXPORT void from_json(const nlohmann::json& j, DatumInfo& v);
PFS_EXPORT void to_json(nlohmann::json& j, const DatumTrial& v);
PFS_EXPORT void from_json(const nlohmann::json& j, DatumTrial& v);

// "2026-11-24T19:02:28.123456789Z" for nanoseconds since the epoch.
PFS_EXPORT std::string format_time_utc(std::int64_t ns);

PFS_EXPORT std::string_view change_name(DiffEntry::Change c);  // "added", "modified", "deleted"

// Parses `text` as the JSON form of T without throwing: kInvalidArgument,
// saying what was wrong, for text that is not JSON or not T's form.
template <class T>
Result<T> parse_json(std::string_view text) noexcept {
  try {
    return nlohmann::json::parse(text).get<T>();
  } catch (const nlohmann::json::exception& e) {
    return Error{ErrorCode::kInvalidArgument, std::string("malformed JSON: ") + e.what()};
  } catch (...) {
    return Error{ErrorCode::kInternal, "out of memory while parsing JSON"};
  }
}

}  // namespace pfs
