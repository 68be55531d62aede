// pfs/json.h: JSON forms of the pfs value types, for nlohmann::json (ADL):
//   nlohmann::json j = commit_info;  auto c = j.get<pfs::CommitInfo>();
// These are the forms `pachctl --json` prints and the HTTP API exchanges.
// from_json throws nlohmann::json::exception on malformed input.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include <pfs/result.h>
#include <pfs/types.h>

namespace pfs {

void to_json(nlohmann::json& j, const TreeStats& v);
void to_json(nlohmann::json& j, const CommitInfo& v);
void from_json(const nlohmann::json& j, CommitInfo& v);
void to_json(nlohmann::json& j, const BranchInfo& v);
void from_json(const nlohmann::json& j, BranchInfo& v);
void to_json(nlohmann::json& j, const FileInfo& v);
void from_json(const nlohmann::json& j, FileInfo& v);
void to_json(nlohmann::json& j, const DiffEntry& v);
void from_json(const nlohmann::json& j, DiffEntry& v);
void to_json(nlohmann::json& j, const MergeResult& v);
void to_json(nlohmann::json& j, const FsckReport& v);
void to_json(nlohmann::json& j, const StoreInfo& v);
void to_json(nlohmann::json& j, const GcReport& v);
void to_json(nlohmann::json& j, const PutDirResult& v);
void to_json(nlohmann::json& j, const ReceiveResult& v);
void to_json(nlohmann::json& j, const Error& v);
void from_json(const nlohmann::json& j, TreeStats& v);
void from_json(const nlohmann::json& j, MergeResult& v);
void from_json(const nlohmann::json& j, FsckReport& v);
void from_json(const nlohmann::json& j, GcReport& v);
void from_json(const nlohmann::json& j, StoreInfo& v);
void from_json(const nlohmann::json& j, PutDirResult& v);
void from_json(const nlohmann::json& j, ReceiveResult& v);
void from_json(const nlohmann::json& j, Error& v);

// "2026-11-24T19:02:28.123456789Z" for nanoseconds since the epoch.
std::string format_time_utc(std::int64_t ns);

std::string_view change_name(DiffEntry::Change c);  // "added", "modified", "deleted"

}  // namespace pfs
