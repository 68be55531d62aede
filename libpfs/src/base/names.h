// names.h: validation of everything a user names: file paths inside a tree,
// glob patterns, branch names and commit ids.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace pfs::detail {

// Names at the root of a working tree that pfs keeps for itself.
inline constexpr std::string_view kReservedPrefix = ".pfs";
inline constexpr std::string_view kStagingDir = ".pfs-staging";

// Checks and normalises a file path: relative, '/'-separated, no empty, "."
// or ".." segment, no NUL or control character, no reserved root name; one
// trailing '/' is dropped. With allow_root, "" and "." mean the root and
// return "". Throws kInvalidArgument with a message naming the problem.
std::string normalize_path(std::string_view path, bool allow_root = false);

// True when `s` is well-formed UTF-8: no overlong forms, surrogates or code
// points beyond U+10FFFF.
bool valid_utf8(std::string_view s);

// True when `s` contains glob metacharacters (*, ?, [).
bool is_glob(std::string_view s);

// Matches one path segment against one glob segment (fnmatch rules, no
// special meaning for '/').
bool glob_segment_match(std::string_view pattern, std::string_view name);

std::vector<std::string> split_path(std::string_view path);

// Pieces of a normalised path: "a/b/c" -> parent "a/b", base "c"; a path
// without '/' has parent "". join("", x) is x.
inline std::string path_parent(const std::string& p) {
  auto pos = p.rfind('/');
  return pos == std::string::npos ? std::string() : p.substr(0, pos);
}
inline std::string path_base(const std::string& p) {
  auto pos = p.rfind('/');
  return pos == std::string::npos ? p : p.substr(pos + 1);
}
inline std::string path_join(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

// Checks a name (of a branch, a job, ...): 1-100 of [A-Za-z0-9._-], not
// starting with '.' or '-', not containing "..". Throws kInvalidArgument
// saying "invalid <what> name ...".
void check_name(std::string_view name, std::string_view what);
void check_branch_name(std::string_view name);

inline constexpr std::size_t kCommitIdLength = 32;
inline constexpr std::size_t kMinCommitPrefix = 4;

bool is_hex(std::string_view s);
bool is_commit_id(std::string_view s);

}  // namespace pfs::detail
