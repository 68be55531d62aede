#include "names.h"

#include <fnmatch.h>

#include <cstdint>

#include "fail.h"

namespace pfs::detail {

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= path.size() && !path.empty()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    out.emplace_back(path.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      i++;
      continue;
    }
    std::size_t n;
    std::uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated
    for (std::size_t k = 1; k <= n; k++) {
      auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3f);
    }
    // Overlong forms (e.g. 0xc0 0xae for '.'), surrogates, beyond Unicode.
    static constexpr std::uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return false;
    i += n + 1;
  }
  return true;
}

std::string normalize_path(std::string_view path, bool allow_root) {
  constexpr std::size_t kMaxPath = 4096, kMaxName = 255;
  if (allow_root && (path.empty() || path == "." || path == "/")) return "";
  if (path.empty())
    fail(ErrorCode::kInvalidArgument, "path is empty (name a file, e.g. data/part-1.csv)");
  if (path.size() > kMaxPath)
    failf(ErrorCode::kInvalidArgument, "path is longer than {} bytes", kMaxPath);
  if (path.front() == '/')
    failf(ErrorCode::kInvalidArgument,
          "path \"{}\" is absolute; paths are relative to the tree's root (drop the leading /)",
          path);
  if (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  for (char c : path) {
    if (c == '\0') fail(ErrorCode::kInvalidArgument, "path contains a NUL byte");
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      failf(ErrorCode::kInvalidArgument,
            "path \"{}\" contains a control character; use printable names", path);
  }
  if (!valid_utf8(path))
    fail(ErrorCode::kInvalidArgument,
         "path is not valid UTF-8 (names are UTF-8: rename the file, or convert its name)");
  auto segs = split_path(path);
  for (std::size_t i = 0; i < segs.size(); ++i) {
    const auto& s = segs[i];
    if (s.empty())
      failf(ErrorCode::kInvalidArgument, "path \"{}\" has an empty segment (\"//\")", path);
    if (s == "..")
      failf(ErrorCode::kInvalidArgument,
            "path \"{}\" contains \"..\"; paths may not leave the tree", path);
    if (s == ".")
      failf(ErrorCode::kInvalidArgument, "path \"{}\" contains \".\"; write it without", path);
    if (s.size() > kMaxName)
      failf(ErrorCode::kInvalidArgument, "path \"{}\" has a name longer than {} bytes", path,
            kMaxName);
    if (i == 0 && std::string_view(s).substr(0, kReservedPrefix.size()) == kReservedPrefix)
      failf(ErrorCode::kInvalidArgument,
            "path \"{}\": names starting with \"{}\" at the root are reserved by pfs", path,
            kReservedPrefix);
  }
  return std::string(path);
}

bool is_glob(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

bool glob_segment_match(std::string_view pattern, std::string_view name) {
  return ::fnmatch(std::string(pattern).c_str(), std::string(name).c_str(), FNM_PERIOD) == 0;
}

void check_name(std::string_view name, std::string_view what) {
  auto bad = [&](std::string_view why) {
    failf(ErrorCode::kInvalidArgument,
          "invalid {} name \"{}\": {} (use letters, digits, '.', '_' and '-')", what, name, why);
  };
  if (name.empty()) bad("it is empty");
  if (name.size() > 100) bad("longer than 100 characters");
  if (name.front() == '.' || name.front() == '-') bad("it starts with '.' or '-'");
  if (name.find("..") != std::string_view::npos) bad("it contains \"..\"");
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) bad("it contains a character other than letters, digits, '.', '_' and '-'");
  }
}

void check_branch_name(std::string_view name) { check_name(name, "branch"); }

bool is_hex(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool is_commit_id(std::string_view s) { return s.size() == kCommitIdLength && is_hex(s); }

}  // namespace pfs::detail
