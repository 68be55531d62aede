// local_dir.h: the local side of put-file -r and get-file -r, and the
// bounds of a ranged read (shared by the local store and the HTTP layer).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <pfs/client.h>

#include "fsutil.h"

namespace pfs::detail {

// The bytes a read of `range` in a file of `size` bytes gets; throws
// kInvalidArgument when the range starts past the end.
std::uint64_t check_read_range(std::uint64_t size, const ReadRange& range, const std::string& path);

// The local directory of a put_dir, opened (kInvalidArgument when a file).
UniqueFd open_input_dir(const std::filesystem::path& local_dir);
// The local directory of a get_dir: made (with its parents) or opened;
// kInvalidArgument when it is a file or not empty.
UniqueFd open_output_dir(const std::filesystem::path& local_dir);
// The regular files below a local directory (dirfd is `rel` in it), as
// paths relative to it, checked as paths below `dest` in a tree; entries
// that are neither files nor directories go to `skipped`.
void walk_local_dir(int dirfd, const std::string& rel, const std::string& dest,
                    std::vector<std::string>& files, std::vector<std::string>& skipped);

}  // namespace pfs::detail
