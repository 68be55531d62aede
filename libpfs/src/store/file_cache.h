// file_cache.h: a bounded, least-recently-used cache of small files of
// commits. A commit never changes, so the bytes of (commit id, path) read
// once are those bytes forever: a long-running reader (pachctl serve)
// answers repeated reads of the same files from memory, without a system
// call. A branch's working state is never cached.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace pfs::detail {

class CommitFileCache {
 public:
  // Files up to this size are kept.
  static constexpr std::uint64_t kMaxFile = 64 * 1024;

  struct Entry {
    std::shared_ptr<const std::string> bytes;
    std::int64_t mtime_ns = 0;
  };

  explicit CommitFileCache(std::size_t max_bytes) : max_bytes_(max_bytes) {}

  // Thread-safe.
  std::optional<Entry> get(const std::string& commit, const std::string& path);
  void put(const std::string& commit, const std::string& path, Entry e);
  // Forgets every file of a commit (it was deleted: its id may come back
  // with a received tree).
  void forget_commit(const std::string& commit);

 private:
  using Lru = std::list<std::pair<std::string, Entry>>;
  static std::string key(const std::string& commit, const std::string& path) {
    return commit + '\0' + path;
  }
  std::mutex mu_;
  std::size_t max_bytes_;
  std::size_t bytes_ = 0;
  Lru lru_;  // most recent first
  std::unordered_map<std::string, Lru::iterator> index_;
};

}  // namespace pfs::detail
