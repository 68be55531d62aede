// store.h: the local store: commit graph, branch heads, locking, recovery.
// Implements pfs::Client over a Backend.
#pragma once

#include <filesystem>
#include <memory>

#include <pfs/client.h>

#include "backend.h"
#include "fsutil.h"

namespace pfs::detail {

inline constexpr int kFormatVersion = 1;
inline constexpr const char* kStoreFile = "pfs-store.json";

// Opens the store at dir (the Backend is chosen by its pfs-store.json).
std::unique_ptr<Client> open_local_store(const std::filesystem::path& dir, const OpenOptions& opts = {});

}  // namespace pfs::detail
