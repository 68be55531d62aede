#include <pfs/json.h>

#include <ctime>

#include <fmt/format.h>

namespace pfs {

using nlohmann::json;

std::string format_time_utc(std::int64_t ns) {
  std::time_t secs = static_cast<std::time_t>(ns / 1000000000);
  std::int64_t frac = ns % 1000000000;
  if (frac < 0) {
    frac += 1000000000;
    secs -= 1;
  }
  std::tm tm{};
  ::gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

std::string_view change_name(DiffEntry::Change c) {
  switch (c) {
    case DiffEntry::Change::kAdded:
      return "added";
    case DiffEntry::Change::kModified:
      return "modified";
    case DiffEntry::Change::kDeleted:
      return "deleted";
  }
  return "?";
}

void to_json(json& j, const TreeStats& v) { j = json{{"files", v.files}, {"bytes", v.bytes}}; }

void to_json(json& j, const CommitInfo& v) {
  j = json{{"id", v.id},
           {"parent", v.parent.empty() ? json(nullptr) : json(v.parent)},
           {"merge_parent", v.merge_parent.empty() ? json(nullptr) : json(v.merge_parent)},
           {"branch", v.branch},
           {"time", format_time_utc(v.time_ns)},
           {"time_ns", v.time_ns},
           {"message", v.message},
           {"files", v.stats.files},
           {"bytes", v.stats.bytes}};
}

static std::string opt_string(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return {};
  return it->get<std::string>();
}

void from_json(const json& j, CommitInfo& v) {
  v.id = j.at("id").get<std::string>();
  v.parent = opt_string(j, "parent");
  v.merge_parent = opt_string(j, "merge_parent");
  v.branch = j.at("branch").get<std::string>();
  v.time_ns = j.at("time_ns").get<std::int64_t>();
  v.message = j.value("message", "");
  v.stats.files = j.at("files").get<std::uint64_t>();
  v.stats.bytes = j.at("bytes").get<std::uint64_t>();
}

void to_json(json& j, const BranchInfo& v) {
  j = json{{"name", v.name},
           {"head", v.head.empty() ? json(nullptr) : json(v.head)},
           {"dirty", v.dirty},
           {"files", v.stats.files},
           {"bytes", v.stats.bytes},
           {"created", format_time_utc(v.created_ns)},
           {"created_ns", v.created_ns}};
}

void from_json(const json& j, BranchInfo& v) {
  v.name = j.at("name").get<std::string>();
  v.head = opt_string(j, "head");
  v.dirty = j.at("dirty").get<bool>();
  v.stats.files = j.at("files").get<std::uint64_t>();
  v.stats.bytes = j.at("bytes").get<std::uint64_t>();
  v.created_ns = j.at("created_ns").get<std::int64_t>();
}

void to_json(json& j, const FileInfo& v) {
  j = json{{"path", v.path},
           {"type", v.type == FileInfo::Type::kDirectory ? "dir" : "file"},
           {"size", v.size},
           {"mtime", format_time_utc(v.mtime_ns)},
           {"mtime_ns", v.mtime_ns}};
}

void from_json(const json& j, FileInfo& v) {
  v.path = j.at("path").get<std::string>();
  v.type =
      j.at("type").get<std::string>() == "dir" ? FileInfo::Type::kDirectory : FileInfo::Type::kFile;
  v.size = j.at("size").get<std::uint64_t>();
  v.mtime_ns = j.value("mtime_ns", std::int64_t{0});
}

void to_json(json& j, const DiffEntry& v) {
  j = json{{"change", change_name(v.change)},
           {"path", v.path},
           {"old_size", v.old_size},
           {"new_size", v.new_size}};
}

void from_json(const json& j, DiffEntry& v) {
  auto c = j.at("change").get<std::string>();
  v.change = c == "added"     ? DiffEntry::Change::kAdded
             : c == "deleted" ? DiffEntry::Change::kDeleted
                              : DiffEntry::Change::kModified;
  v.path = j.at("path").get<std::string>();
  v.old_size = j.at("old_size").get<std::uint64_t>();
  v.new_size = j.at("new_size").get<std::uint64_t>();
}

void to_json(json& j, const MergeResult& v) {
  j = json{{"up_to_date", v.up_to_date},
           {"commit", v.commit ? json(*v.commit) : json(nullptr)},
           {"base", v.base.empty() ? json(nullptr) : json(v.base)},
           {"applied", v.applied},
           {"conflicts", v.conflicts}};
}

void to_json(json& j, const FsckReport& v) {
  j = json{{"ok", v.problems.empty()},
           {"commits_checked", v.commits_checked},
           {"branches_checked", v.branches_checked},
           {"problems", v.problems},
           {"leftovers", v.leftovers},
           {"repaired", v.repaired}};
}

void to_json(json& j, const GcReport& v) {
  j = json{{"objects_removed", v.objects_removed},
           {"bytes_removed", v.bytes_removed},
           {"objects_kept", v.objects_kept},
           {"bytes_kept", v.bytes_kept}};
}

void to_json(json& j, const StoreInfo& v) {
  j = json{{"path", v.path},
           {"backend", v.backend},
           {"format", v.format},
           {"commits", v.commits},
           {"branches", v.branches}};
}

void to_json(json& j, const PutDirResult& v) {
  j = json{{"files", v.files}, {"bytes", v.bytes}, {"skipped", v.skipped}};
}

void to_json(json& j, const ReceiveResult& v) {
  j = json{{"commit", v.commit}, {"stream_bytes", v.stream_bytes}, {"skipped", v.skipped}};
}

void to_json(json& j, const Error& v) {
  j = json{{"error", v.message}, {"code", code_name(v.code)}};
}

// ---- the reverse forms, for the HTTP client (pfs/remote.h)

void from_json(const json& j, TreeStats& v) {
  v.files = j.at("files").get<std::uint64_t>();
  v.bytes = j.at("bytes").get<std::uint64_t>();
}

void from_json(const json& j, MergeResult& v) {
  v.up_to_date = j.at("up_to_date").get<bool>();
  if (j.contains("commit") && !j.at("commit").is_null()) v.commit = j.at("commit").get<CommitInfo>();
  v.base = opt_string(j, "base");
  v.applied = j.at("applied").get<std::vector<DiffEntry>>();
  v.conflicts = j.at("conflicts").get<std::vector<std::string>>();
}

void from_json(const json& j, FsckReport& v) {
  v.commits_checked = j.at("commits_checked").get<std::uint64_t>();
  v.branches_checked = j.at("branches_checked").get<std::uint64_t>();
  v.problems = j.at("problems").get<std::vector<std::string>>();
  v.leftovers = j.at("leftovers").get<std::vector<std::string>>();
  v.repaired = j.at("repaired").get<std::vector<std::string>>();
}

void from_json(const json& j, GcReport& v) {
  v.objects_removed = j.at("objects_removed").get<std::uint64_t>();
  v.bytes_removed = j.at("bytes_removed").get<std::uint64_t>();
  v.objects_kept = j.at("objects_kept").get<std::uint64_t>();
  v.bytes_kept = j.at("bytes_kept").get<std::uint64_t>();
}

void from_json(const json& j, StoreInfo& v) {
  v.path = j.at("path").get<std::string>();
  v.backend = j.at("backend").get<std::string>();
  v.format = j.at("format").get<int>();
  v.commits = j.at("commits").get<std::uint64_t>();
  v.branches = j.at("branches").get<std::uint64_t>();
}

void from_json(const json& j, PutDirResult& v) {
  v.files = j.at("files").get<std::uint64_t>();
  v.bytes = j.at("bytes").get<std::uint64_t>();
  v.skipped = j.value("skipped", std::vector<std::string>{});
}

void from_json(const json& j, ReceiveResult& v) {
  v.commit = j.at("commit").get<CommitInfo>();
  v.stream_bytes = j.at("stream_bytes").get<std::uint64_t>();
  v.skipped = j.value("skipped", std::vector<std::string>{});
}

void to_json(json& j, const CommitEvent& v) { j = json{{"branch", v.branch}, {"commit", v.commit}}; }

void to_json(json& j, const CommitEvents& v) { j = json{{"events", v.events}, {"cursor", v.cursor}}; }

void from_json(const json& j, CommitEvent& v) {
  v.branch = j.at("branch").get<std::string>();
  v.commit = j.at("commit").get<CommitInfo>();
}

void from_json(const json& j, CommitEvents& v) {
  v.events = j.at("events").get<std::vector<CommitEvent>>();
  v.cursor = j.at("cursor").get<std::string>();
}

void from_json(const json& j, Error& v) {
  v.message = j.at("error").get<std::string>();
  v.code = code_from_name(j.at("code").get<std::string>()).value_or(ErrorCode::kInternal);
}

}  // namespace pfs
