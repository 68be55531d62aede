// objects.cc: the object store of the portable backend: SHA-256 names,
// reading objects, and writing new ones under temporary names until they
// are synced and renamed to their hashes.
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "portable.h"

namespace pfs::detail::portable {

// ---- hashing --------------------------------------------------------------

namespace {

const EVP_MD* sha256() {
  // Fetched once: an implicit fetch per digest costs more than hashing 4 KiB.
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (!md) fail(ErrorCode::kIo, "OpenSSL has no SHA-256");
  return md;
}

std::string to_hex(const unsigned char* p, std::size_t n) {
  static const char* hex = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (std::size_t i = 0; i < n; i++) {
    out[2 * i] = hex[p[i] >> 4];
    out[2 * i + 1] = hex[p[i] & 15];
  }
  return out;
}

}  // namespace

std::string hash_bytes(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!EVP_Digest(data.data(), data.size(), md, &len, sha256(), nullptr))
    fail(ErrorCode::kIo, "SHA-256 failed");
  return to_hex(md, len);
}

Hasher::Hasher() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || !EVP_DigestInit_ex(ctx_, sha256(), nullptr)) fail(ErrorCode::kIo, "SHA-256 init");
}

Hasher::~Hasher() { EVP_MD_CTX_free(ctx_); }

void Hasher::update(const char* p, std::size_t n) { EVP_DigestUpdate(ctx_, p, n); }

std::string Hasher::hex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_DigestFinal_ex(ctx_, md, &len);
  return to_hex(md, len);
}

bool is_hash(std::string_view s) {
  return s.size() == 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string object_path(const std::string& hash) { return hash.substr(0, 2) + "/" + hash.substr(2); }

[[noreturn]] void corrupt(const std::string& hash, std::string_view why) {
  failf(ErrorCode::kCorruption, "object {} is corrupt ({}); run pachctl fsck", hash, why);
}

// ---- reading objects ----------------------------------------------------------

bool Objects::exists(const std::string& hash) const {
  struct stat st {};
  return ::fstatat(dir_.get(), object_path(hash).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

UniqueFd Objects::open(const std::string& hash, std::string_view what) const {
  UniqueFd fd(::openat(dir_.get(), object_path(hash).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) {
    if (errno == ENOENT)
      failf(ErrorCode::kCorruption, "object {} ({}) is missing; run pachctl fsck", hash, what);
    fail_errno(errno, fmt::format("open object {}", hash));
  }
  return fd;
}

std::string Objects::read(const std::string& hash, std::string_view what) const {
  UniqueFd fd = open(hash, what);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno(errno, fmt::format("read object {}", hash));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

// ---- writing objects ----------------------------------------------------------

ObjectWriter::~ObjectWriter() {
  for (const auto& p : pending_)
    ::unlinkat(objects_.fd(), (p.hash.substr(0, 2) + "/" + p.tmp).c_str(), 0);
}

std::string ObjectWriter::put(std::string_view data) {
  std::string hash = hash_bytes(data);
  if (seen_.count(hash) || objects_.exists(hash)) return hash;
  std::string shard = hash.substr(0, 2);
  // A random prefix per writer and a counter: unique without a syscall.
  if (tmp_prefix_.empty()) tmp_prefix_ = ".tmp." + random_hex(8) + ".";
  std::string tmp = tmp_prefix_ + std::to_string(tmp_count_++);
  UniqueFd fd(::openat(objects_.fd(), (shard + "/" + tmp).c_str(),
                       O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
  if (!fd) {
    int err = errno;
    fail_errno(err, fmt::format("create portable/objects/{}/{} (new object {})", shard, tmp, hash));
  }
  pending_.push_back({hash, tmp});
  seen_.insert(hash);
  const char* p = data.data();
  std::size_t left = data.size();
  while (left > 0) {
    ssize_t n = ::write(fd.get(), p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      fail_errno(err, fmt::format("write portable/objects/{}/{} (new object {})", shard, tmp, hash));
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
  return hash;
}

void ObjectWriter::commit() {
  if (pending_.empty()) return;
  bool few = pending_.size() <= 16;
  if (few) {
    for (const auto& p : pending_) {
      std::string tmp = p.hash.substr(0, 2) + "/" + p.tmp;
      UniqueFd fd(::openat(objects_.fd(), tmp.c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd || ::fsync(fd.get()) != 0) {
        int err = errno;
        fail_errno(err, fmt::format("sync portable/objects/{} (new object {})", tmp, p.hash));
      }
    }
  } else if (::syncfs(objects_.fd()) != 0) {
    int err = errno;
    fail_errno(err, fmt::format("sync the file system of portable/objects ({} new objects)",
                                pending_.size()));
  }
  crash_point("objects.before-rename");
  std::set<std::string> shards;
  while (!pending_.empty()) {
    const auto& p = pending_.back();
    std::string shard = p.hash.substr(0, 2);
    if (::renameat(objects_.fd(), (shard + "/" + p.tmp).c_str(), objects_.fd(),
                   object_path(p.hash).c_str()) != 0) {
      int err = errno;
      fail_errno(err, fmt::format("rename portable/objects/{}/{} to object {}", shard, p.tmp,
                                  p.hash));
    }
    shards.insert(shard);
    pending_.pop_back();
  }
  if (few) {
    for (const auto& s : shards) fsync_dir(open_dir(objects_.fd(), s).get());
  } else if (::syncfs(objects_.fd()) != 0) {
    int err = errno;
    fail_errno(err, "sync the file system of portable/objects (the new objects' names)");
  }
  seen_.clear();
}

}  // namespace pfs::detail::portable
