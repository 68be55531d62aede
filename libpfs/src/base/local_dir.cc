// local_dir.cc: the local side of put-file -r and get-file -r, and the
// bounds of a ranged read (shared by the local store and the HTTP layer).
#include "local_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "names.h"

namespace pfs::detail {

std::uint64_t check_read_range(std::uint64_t size, const ReadRange& range, const std::string& path) {
  if (range.offset > size || (range.offset == size && size > 0 && range.length.value_or(1) > 0))
    failf(ErrorCode::kInvalidArgument, "range starts at byte {} but \"{}\" has {} bytes",
          range.offset, path, size);
  std::uint64_t left = size - range.offset;
  return range.length ? std::min(*range.length, left) : left;
}

UniqueFd open_input_dir(const std::filesystem::path& local_dir) {
  UniqueFd dir(::open(local_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) {
    if (errno == ENOTDIR)
      failf(ErrorCode::kInvalidArgument, "{} is not a directory (drop -r to put one file)",
            local_dir.string());
    fail_errno(errno, "open " + local_dir.string());
  }
  return dir;
}

UniqueFd open_output_dir(const std::filesystem::path& local_dir) {
  if (local_dir.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(local_dir.parent_path(), ec);
    if (ec) fail_errno(ec.value(), "create " + local_dir.parent_path().string());
  }
  if (::mkdir(local_dir.c_str(), 0777) != 0 && errno != EEXIST)
    fail_errno(errno, "create " + local_dir.string());
  UniqueFd out(::open(local_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!out) {
    if (errno == ENOTDIR)
      failf(ErrorCode::kInvalidArgument, "{} is a file, not a directory", local_dir.string());
    fail_errno(errno, "open " + local_dir.string());
  }
  // Never mix a copy with local files, nor overwrite any.
  if (!list_dir_names(out.get()).empty())
    failf(ErrorCode::kInvalidArgument, "{} is not empty; copy into a new or empty directory",
          local_dir.string());
  return out;
}

void walk_local_dir(int dirfd, const std::string& rel, const std::string& dest,
                    std::vector<std::string>& files, std::vector<std::string>& skipped) {
  std::vector<std::string> dirs;
  for (auto& name : list_dir_names(dirfd)) {
    std::string r = rel.empty() ? name : rel + "/" + name;
    auto st = stat_at(dirfd, name);
    if (!st) continue;
    if (S_ISDIR(st->st_mode) || S_ISREG(st->st_mode)) {
      normalize_path(dest.empty() ? r : dest + "/" + r);  // refuse before anything is sent
      (S_ISDIR(st->st_mode) ? dirs : files).push_back(r);
    } else {
      skipped.push_back(r);
    }
  }
  for (const auto& d : dirs) {
    UniqueFd sub = open_dir(dirfd, path_base(d));
    walk_local_dir(sub.get(), d, dest, files, skipped);
  }
}

}  // namespace pfs::detail
