// file_cache.cc: the cache of small files of commits (file_cache.h).
#include "file_cache.h"

namespace pfs::detail {

std::optional<CommitFileCache::Entry> CommitFileCache::get(const std::string& commit,
                                                           const std::string& path) {
  std::lock_guard lk(mu_);
  auto it = index_.find(key(commit, path));
  if (it == index_.end()) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->second;
}

void CommitFileCache::put(const std::string& commit, const std::string& path, Entry e) {
  std::size_t size = e.bytes ? e.bytes->size() + path.size() + 64 : 0;
  if (size == 0 || size > max_bytes_) return;
  std::lock_guard lk(mu_);
  std::string k = key(commit, path);
  if (index_.count(k)) return;
  lru_.emplace_front(k, std::move(e));
  index_.emplace(std::move(k), lru_.begin());
  bytes_ += size;
  while (bytes_ > max_bytes_ && !lru_.empty()) {
    auto& [old_key, old] = lru_.back();
    bytes_ -= old.bytes->size() + (old_key.size() - old_key.find('\0') - 1) + 64;
    index_.erase(old_key);
    lru_.pop_back();
  }
}

void CommitFileCache::forget_commit(const std::string& commit) {
  std::lock_guard lk(mu_);
  std::string prefix = commit + '\0';
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (it->first.compare(0, prefix.size(), prefix) == 0) {
      bytes_ -= it->second.bytes->size() + (it->first.size() - prefix.size()) + 64;
      index_.erase(it->first);
      it = lru_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace pfs::detail
