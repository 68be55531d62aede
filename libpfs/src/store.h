// store.h: the local store: commit graph, branch heads, locking, recovery.
// Implements pfs::Client over a Backend.
#pragma once

#include <filesystem>
#include <memory>

#include <pfs/client.h>

#include "backend.h"

namespace pfs::detail {

inline constexpr int kFormatVersion = 1;
inline constexpr const char* kStoreFile = "pfs-store.json";

// The bytes a read of `range` in a file of `size` bytes gets; throws
// kInvalidArgument when the range starts past the end.
std::uint64_t check_read_range(std::uint64_t size, const ReadRange& range, const std::string& path);

// Opens the store at dir (the Backend is chosen by its pfs-store.json).
std::unique_ptr<Client> open_local_store(const std::filesystem::path& dir);

}  // namespace pfs::detail
