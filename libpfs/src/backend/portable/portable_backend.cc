// portable_backend.cc: trees as content-addressed objects in plain files, on
// any file system, without root.
//
//   portable/objects/<2 hex>/<62 hex>   an object, named by the SHA-256 of its
//                                       bytes: a file's content (or one chunk
//                                       of it), a chunk list, or a directory
//                                       manifest; never changed once there
//   portable/objects/<2 hex>/.tmp.*     objects being written
//   portable/branches/<name>            a branch's working tree: a ref file,
//                                       "pfs-ref 1 <root manifest hash>\n"
//   portable/commits/<id>               a commit's tree: a ref file
//   portable/gc.lock                    flock: shared by every writer of
//                                       objects until it has referenced them,
//                                       exclusive by gc
//
// A tree is a manifest per directory; unchanged files and directories keep
// their hashes, so a commit shares them with its parent and costs what
// changed. Commit, branch and revert write one ref file: O(1). Files larger
// than kMinChunk are cut into content-defined chunks (a gear rolling hash, as
// in FastCDC), so a change inside a big file stores only the chunks around it.
// See docs/format.md for the formats.
#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <unordered_set>

#include "backend.h"
#include "names.h"

namespace pfs::detail {
namespace {

// Chunks of 64 KiB to 2 MiB, 320 KiB on average. A write of L bytes inside
// a big file stores about L + 0.5 MiB (the chunks it touches, re-cut): small
// enough that ten 1%-changes of a file cost ~1.15x its size; large enough
// that a terabyte is 3.3 million objects, not tens of millions.
constexpr std::size_t kMinChunk = 64 * 1024;
constexpr std::size_t kMaxChunk = 2 * 1024 * 1024;
// After kMinChunk, a cut where the top 18 bits of the rolling hash are 0:
// on average 256 KiB later.
constexpr std::uint64_t kCutMask = 0xffffc00000000000ULL;
constexpr const char* kTreeMagic = "pfs-tree 1\n";
constexpr const char* kDirMagic = "pfs-dir 2\n";
// A directory of more than kLeafMax entries is stored as pages: a change to
// a few of its entries then stores a few pages, not the whole listing (a
// directory of 1000 files changed in 10 places stores ~10 small pages and
// the page index). A page ends after an entry whose name hashes to 0 mod
// kPageSpread (16 entries on average), so an insertion moves no other
// page's boundaries; or at kLeafMax entries at the latest. The index names
// each page's first entry and totals, so a change reads only the pages it
// touches.
constexpr std::size_t kLeafMax = 64;
constexpr std::uint64_t kPageSpread = 16;
constexpr const char* kChunksMagic = "pfs-chunks 1\n";
constexpr const char* kRefMagic = "pfs-ref 1 ";

// ---- hashing --------------------------------------------------------------

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

std::string hash_bytes(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!EVP_Digest(data.data(), data.size(), md, &len, sha256(), nullptr))
    fail(ErrorCode::kIo, "SHA-256 failed");
  return to_hex(md, len);
}

// Incremental SHA-256 (fsck re-hashes objects of any size).
class Hasher {
 public:
  Hasher() : ctx_(EVP_MD_CTX_new()) {
    if (!ctx_ || !EVP_DigestInit_ex(ctx_, sha256(), nullptr)) fail(ErrorCode::kIo, "SHA-256 init");
  }
  ~Hasher() { EVP_MD_CTX_free(ctx_); }
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  void update(const char* p, std::size_t n) { EVP_DigestUpdate(ctx_, p, n); }
  std::string hex() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_, md, &len);
    return to_hex(md, len);
  }

 private:
  EVP_MD_CTX* ctx_;
};

bool is_hash(std::string_view s) {
  return s.size() == 64 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::string object_path(const std::string& hash) { return hash.substr(0, 2) + "/" + hash.substr(2); }

// ---- content-defined chunking ---------------------------------------------

// 256 fixed pseudo-random 64-bit values (splitmix64 from a fixed seed). They
// are part of the format: other values would cut files elsewhere and share
// no chunks with existing stores.
const std::array<std::uint64_t, 256>& gear() {
  static const std::array<std::uint64_t, 256> table = [] {
    std::array<std::uint64_t, 256> t{};
    std::uint64_t x = 0x7066732d67656172ULL;  // "pfs-gear"
    for (auto& v : t) {
      std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      v = z ^ (z >> 31);
    }
    return t;
  }();
  return table;
}

// Where the chunk starting at p ends, among n available bytes: a length, or
// 0 when more bytes are needed to know (only when !eof).
std::size_t cut_point(const unsigned char* p, std::size_t n, bool eof) {
  if (n <= kMinChunk) return eof ? n : 0;
  const auto& g = gear();
  std::size_t limit = std::min(n, kMaxChunk);
  std::uint64_t h = 0;
  for (std::size_t i = kMinChunk; i < limit; i++) {
    h = (h << 1) + g[p[i]];
    if ((h & kCutMask) == 0) return i + 1;
  }
  if (limit == kMaxChunk) return kMaxChunk;
  return eof ? n : 0;
}

// ---- manifests --------------------------------------------------------------

// One entry of a directory manifest.
struct PEntry {
  char type = 0;             // 'f': one object; 'c': a chunk list; 'd': a directory
  std::string hash;          // the object, the chunk list or the manifest
  std::uint64_t size = 0;    // a file's bytes; a directory's bytes below it
  std::uint64_t files = 0;   // 1 for a file; a directory's files below it
  std::int64_t mtime_ns = 0;
  bool is_dir() const { return type == 'd'; }
};
using Manifest = std::map<std::string, PEntry>;

std::string serialize(const Manifest& m) {
  std::string out = kTreeMagic;
  for (const auto& [name, e] : m)
    out += fmt::format("{} {} {} {} {} {}:{}\n", e.type, e.hash, e.size, e.files, e.mtime_ns,
                       name.size(), name);
  return out;
}

// FNV-1a, 64 bits: where pages end (part of the format).
std::uint64_t name_hash(std::string_view name) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

[[noreturn]] void corrupt(const std::string& hash, std::string_view why) {
  failf(ErrorCode::kCorruption, "object {} is corrupt ({}); run pachctl fsck", hash, why);
}

// Reads the fields of a manifest's or an index's lines, from `pos` on; any
// malformation is corruption of object `hash`, told by the two messages.
struct Fields {
  const std::string& hash;
  std::string_view text;
  std::size_t pos;
  std::string_view truncated, bad_number;

  // The text up to the next `end`, which is passed.
  std::string_view field(char end) {
    std::size_t e = text.find(end, pos);
    if (e == std::string_view::npos) corrupt(hash, truncated);
    std::string_view f = text.substr(pos, e - pos);
    pos = e + 1;
    return f;
  }
  // A decimal number of at most 20 digits.
  std::uint64_t number(std::string_view f) const {
    if (f.empty() || f.size() > 20) corrupt(hash, bad_number);
    std::uint64_t v = 0;
    for (char c : f) {
      if (c < '0' || c > '9') corrupt(hash, bad_number);
      v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return v;
  }
};

// Parses a manifest; rejects anything a correct pfs would not have written.
Manifest parse_manifest(const std::string& hash, std::string_view text) {
  std::string_view magic = kTreeMagic;
  if (text.substr(0, magic.size()) != magic) corrupt(hash, "not a directory manifest");
  Fields in{hash, text, magic.size(), "truncated entry", "bad number"};
  std::size_t& pos = in.pos;
  Manifest m;
  const std::string* prev = nullptr;
  auto field = [&](char end) { return in.field(end); };
  auto number = [&](std::string_view f) { return in.number(f); };
  while (pos < text.size()) {
    PEntry e;
    std::string_view type = field(' ');
    if (type != "f" && type != "c" && type != "d") corrupt(hash, "bad entry type");
    e.type = type[0];
    e.hash = std::string(field(' '));
    if (!is_hash(e.hash)) corrupt(hash, "bad hash in entry");
    e.size = number(field(' '));
    e.files = number(field(' '));
    e.mtime_ns = static_cast<std::int64_t>(number(field(' ')));
    std::uint64_t len = number(field(':'));
    if (len == 0 || len > 255 || pos + len >= text.size() || text[pos + len] != '\n')
      corrupt(hash, "bad name");
    std::string name(text.substr(pos, len));
    pos += len + 1;
    if (name == "." || name == ".." || name.find('/') != std::string::npos ||
        name.find('\0') != std::string::npos)
      corrupt(hash, "bad name");
    if (prev && !(*prev < name)) corrupt(hash, "entries out of order");
    auto it = m.emplace_hint(m.end(), std::move(name), std::move(e));
    prev = &it->first;
  }
  return m;
}

// One page of a paged directory, as its index describes it.
struct PageRef {
  std::string hash;
  std::string first;          // the page's first name
  std::uint64_t count = 0;    // entries
  std::uint64_t files = 0;    // the sums of the entries' figures
  std::uint64_t bytes = 0;
};

PageRef page_ref(std::string hash, const Manifest& m) {
  PageRef r;
  r.hash = std::move(hash);
  r.first = m.begin()->first;
  r.count = m.size();
  for (const auto& [name, e] : m) {
    r.files += e.files;
    r.bytes += e.size;
  }
  return r;
}

std::string index_line(const PageRef& r) {
  return fmt::format("{} {} {} {} {}:{}\n", r.hash, r.count, r.files, r.bytes, r.first.size(),
                     r.first);
}

// Where a page ends (part of the format).
bool ends_page(const std::string& name, std::size_t entries) {
  return name_hash(name) % kPageSpread == 0 || entries == kLeafMax;
}

// Parses a directory index (the text after its magic line).
std::vector<PageRef> parse_index(const std::string& hash, std::string_view text) {
  std::vector<PageRef> out;
  Fields in{hash, text, 0, "truncated page entry", "bad number in page entry"};
  std::size_t& pos = in.pos;
  auto field = [&](char end) { return in.field(end); };
  auto number = [&](std::string_view f) { return in.number(f); };
  while (pos < text.size()) {
    PageRef r;
    r.hash = std::string(field(' '));
    if (!is_hash(r.hash)) corrupt(hash, "bad page hash");
    r.count = number(field(' '));
    if (r.count == 0 || r.count > kLeafMax) corrupt(hash, "bad page size");
    r.files = number(field(' '));
    r.bytes = number(field(' '));
    std::uint64_t len = number(field(':'));
    if (len == 0 || len > 255 || pos + len >= text.size() || text[pos + len] != '\n')
      corrupt(hash, "bad page name");
    r.first = std::string(text.substr(pos, len));
    pos += len + 1;
    if (!out.empty() && !(out.back().first < r.first)) corrupt(hash, "pages out of order");
    out.push_back(std::move(r));
  }
  if (out.size() < 2) corrupt(hash, "an index of fewer than two pages");
  return out;
}

struct Chunk {
  std::string hash;
  std::uint64_t size = 0;
};

std::string serialize_chunks(const std::vector<Chunk>& chunks) {
  std::string out = kChunksMagic;
  for (const auto& c : chunks) out += fmt::format("{} {}\n", c.hash, c.size);
  return out;
}

std::vector<Chunk> parse_chunks(const std::string& hash, std::string_view text) {
  std::string_view magic = kChunksMagic;
  if (text.substr(0, magic.size()) != magic) corrupt(hash, "not a chunk list");
  std::vector<Chunk> out;
  std::size_t pos = magic.size();
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos || nl - pos < 66 || text[pos + 64] != ' ')
      corrupt(hash, "bad chunk entry");
    Chunk c;
    c.hash = std::string(text.substr(pos, 64));
    if (!is_hash(c.hash)) corrupt(hash, "bad chunk hash");
    std::string_view num = text.substr(pos + 65, nl - pos - 65);
    if (num.size() > 20) corrupt(hash, "bad chunk size");
    for (char ch : num) {
      if (ch < '0' || ch > '9') corrupt(hash, "bad chunk size");
      c.size = c.size * 10 + static_cast<std::uint64_t>(ch - '0');
    }
    out.push_back(std::move(c));
    pos = nl + 1;
  }
  if (out.empty()) corrupt(hash, "empty chunk list");
  return out;
}


// ---- objects ----------------------------------------------------------------

class Objects {
 public:
  explicit Objects(UniqueFd dir) : dir_(std::move(dir)) {}
  int fd() const { return dir_.get(); }

  bool exists(const std::string& hash) const {
    struct stat st {};
    return ::fstatat(dir_.get(), object_path(hash).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
  }

  UniqueFd open(const std::string& hash, std::string_view what) const {
    UniqueFd fd(::openat(dir_.get(), object_path(hash).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) {
      if (errno == ENOENT)
        failf(ErrorCode::kCorruption, "object {} ({}) is missing; run pachctl fsck", hash, what);
      fail_errno(errno, fmt::format("open object {}", hash));
    }
    return fd;
  }

  std::string read(const std::string& hash, std::string_view what) const {
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

  // A directory object: a manifest (its entries) or an index (its pages).
  struct Dir {
    Manifest entries;
    std::vector<PageRef> pages;  // empty for a manifest
  };
  Dir dir(const std::string& hash, std::string_view what) const {
    std::string text = read(hash, what);
    std::string_view magic = kDirMagic;
    Dir d;
    if (std::string_view(text).substr(0, magic.size()) != magic)
      d.entries = parse_manifest(hash, text);
    else
      d.pages = parse_index(hash, std::string_view(text).substr(magic.size()));
    return d;
  }

  // Page i of index `index`, checked against what the index says of it.
  Manifest page(const std::string& index, const std::vector<PageRef>& pages, std::size_t i,
                std::string_view what) const {
    const PageRef& r = pages[i];
    Manifest m = parse_manifest(r.hash, read(r.hash, what));
    if (m.empty()) corrupt(index, "an empty page");
    PageRef got = page_ref(r.hash, m);
    if (got.first != r.first || got.count != r.count || got.files != r.files || got.bytes != r.bytes)
      corrupt(index, "a page does not match its index");
    if (i + 1 < pages.size() && !(m.rbegin()->first < pages[i + 1].first))
      corrupt(index, "pages overlap");
    return m;
  }

  // A directory's entries, from its manifest or from all its pages (then
  // listed in *pages, when given).
  Manifest manifest(const std::string& hash, std::string_view what,
                    std::vector<std::string>* pages = nullptr) const {
    Dir d = dir(hash, what);
    if (d.pages.empty()) return std::move(d.entries);
    prefetch(d.pages, {});
    Manifest all;
    for (std::size_t i = 0; i < d.pages.size(); i++) {
      Manifest m = page(hash, d.pages, i, what);
      all.insert(std::make_move_iterator(m.begin()), std::make_move_iterator(m.end()));
      if (pages) pages->push_back(d.pages[i].hash);
    }
    return all;
  }

  // Asks the kernel to start reading the pages (those not `skip`ped), so
  // that on a cold cache they arrive in parallel rather than one seek at a
  // time.
  void prefetch(const std::vector<PageRef>& pages, const std::vector<bool>& skip) const {
    for (std::size_t i = 0; i < pages.size(); i++) {
      if (i < skip.size() && skip[i]) continue;
      UniqueFd fd(::openat(dir_.get(), object_path(pages[i].hash).c_str(),
                           O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
      if (fd) ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_WILLNEED);
    }
  }

  std::vector<Chunk> chunks(const std::string& hash, std::string_view what) const {
    return parse_chunks(hash, read(hash, what));
  }

 private:
  UniqueFd dir_;
};

// Writes new objects: each to a temporary name in its shard; commit() makes
// them durable and renames them to their hashes. Until then nobody can see
// them, and a crash leaves only temporary files (gc removes them).
class ObjectWriter {
 public:
  explicit ObjectWriter(const Objects& objects) : objects_(objects) {}
  ObjectWriter(const ObjectWriter&) = delete;
  ObjectWriter& operator=(const ObjectWriter&) = delete;
  ~ObjectWriter() {
    for (const auto& p : pending_)
      ::unlinkat(objects_.fd(), (p.hash.substr(0, 2) + "/" + p.tmp).c_str(), 0);
  }

  // Stores `data`; returns its hash.
  std::string put(std::string_view data) {
    std::string hash = hash_bytes(data);
    if (seen_.count(hash) || objects_.exists(hash)) return hash;
    std::string shard = hash.substr(0, 2);
    // A random prefix per writer and a counter: unique without a syscall.
    if (tmp_prefix_.empty()) tmp_prefix_ = ".tmp." + random_hex(8) + ".";
    std::string tmp = tmp_prefix_ + std::to_string(tmp_count_++);
    UniqueFd fd(::openat(objects_.fd(), (shard + "/" + tmp).c_str(),
                         O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
    if (!fd) fail_errno(errno, "create object in " + shard);
    pending_.push_back({hash, tmp});
    seen_.insert(hash);
    const char* p = data.data();
    std::size_t left = data.size();
    while (left > 0) {
      ssize_t n = ::write(fd.get(), p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        fail_errno(errno, "write object");
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    return hash;
  }

  // Makes every object put so far durable under its name. A few objects are
  // fsync'ed one by one; many, with two syncs of the file system (cheaper
  // than thousands of fsyncs).
  void commit() {
    if (pending_.empty()) return;
    bool few = pending_.size() <= 16;
    if (few) {
      for (const auto& p : pending_) {
        UniqueFd fd(::openat(objects_.fd(), (p.hash.substr(0, 2) + "/" + p.tmp).c_str(),
                             O_RDONLY | O_CLOEXEC));
        if (!fd || ::fsync(fd.get()) != 0) fail_errno(errno, "sync object");
      }
    } else if (::syncfs(objects_.fd()) != 0) {
      fail_errno(errno, "sync objects");
    }
    crash_point("objects.before-rename");
    std::set<std::string> shards;
    while (!pending_.empty()) {
      const auto& p = pending_.back();
      std::string shard = p.hash.substr(0, 2);
      if (::renameat(objects_.fd(), (shard + "/" + p.tmp).c_str(), objects_.fd(),
                     object_path(p.hash).c_str()) != 0)
        fail_errno(errno, "store object " + p.hash);
      shards.insert(shard);
      pending_.pop_back();
    }
    if (few) {
      for (const auto& s : shards) fsync_dir(open_dir(objects_.fd(), s).get());
    } else if (::syncfs(objects_.fd()) != 0) {
      fail_errno(errno, "sync objects");
    }
    seen_.clear();
  }

 private:
  struct Pending {
    std::string hash, tmp;
  };
  const Objects& objects_;
  std::vector<Pending> pending_;
  std::unordered_set<std::string> seen_;
  std::string tmp_prefix_;
  std::uint64_t tmp_count_ = 0;
};

// Cuts all of a directory's entries into pages; put(text) stores one and
// returns its hash.
template <class Put>
std::vector<PageRef> paginate(const Manifest& m, Put put) {
  std::vector<PageRef> out;
  Manifest page;
  for (const auto& [name, e] : m) {
    page.emplace_hint(page.end(), name, e);
    if (ends_page(name, page.size())) {
      out.push_back(page_ref(put(serialize(page)), page));
      page.clear();
    }
  }
  if (!page.empty()) out.push_back(page_ref(put(serialize(page)), page));
  return out;
}

std::string index_text(const std::vector<PageRef>& pages) {
  std::string text = kDirMagic;
  for (const auto& r : pages) text += index_line(r);
  return text;
}

// Stores a directory: one manifest, or pages and their index. Unchanged
// pages have unchanged hashes, so only changed ones are new objects.
std::string write_dir(const Manifest& m, ObjectWriter& w) {
  if (m.size() <= kLeafMax) return w.put(serialize(m));
  return w.put(index_text(paginate(m, [&](const std::string& text) { return w.put(text); })));
}

// Cuts a byte stream into chunks and stores them. One per writer: it owns a
// large read buffer that is reused from file to file.
class ContentWriter {
 public:
  using ReadFn = std::function<std::size_t(char*, std::size_t)>;

  // Stores everything `read` yields; returns the file's entry ('f' or 'c').
  // Its chunks are in chunks() until the next call (they may not be on disk
  // yet: the writer renames them at commit()).
  // With `stop`, called with the stream position after each cut: when it
  // returns true, cutting stops there and the rest of the stream is not
  // stored (the caller has it already).
  PEntry store(ObjectWriter& w, const ReadFn& read,
               const std::function<bool(std::uint64_t)>& stop = {}) {
    if (!buf_) buf_.reset(new char[kBuf]);  // not zeroed: only written bytes are read
    std::vector<Chunk>& chunks = chunks_;
    chunks.clear();
    std::uint64_t pos = 0;
    std::size_t start = 0, end = 0;
    bool eof = false;
    for (;;) {
      if (!eof && end - start < kMaxChunk) {
        if (start > 0 && kBuf - end < kMaxChunk) {
          std::memmove(buf_.get(), buf_.get() + start, end - start);
          end -= start;
          start = 0;
        }
        std::size_t n = read(buf_.get() + end, kBuf - end);
        if (n == 0) eof = true;
        end += n;
        continue;
      }
      std::size_t avail = end - start;
      if (avail == 0) break;
      std::size_t cut =
          cut_point(reinterpret_cast<const unsigned char*>(buf_.get() + start), avail, eof);
      if (cut == 0) continue;  // unreachable: we only cut with kMaxChunk bytes or at eof
      chunks.push_back({w.put(std::string_view(buf_.get() + start, cut)), cut});
      start += cut;
      pos += cut;
      if (stop && stop(pos)) return {};  // the caller assembles the file from chunks()
    }
    PEntry e;
    e.files = 1;
    e.mtime_ns = now_ns();
    if (chunks.empty()) chunks.push_back({w.put({}), 0});  // the empty file
    if (chunks.size() == 1) {
      e.type = 'f';
      e.hash = chunks[0].hash;
      e.size = chunks[0].size;
      return e;
    }
    e.type = 'c';
    for (const auto& c : chunks) e.size += c.size;
    e.hash = w.put(serialize_chunks(chunks));
    return e;
  }

  const std::vector<Chunk>& chunks() const { return chunks_; }

 private:
  static constexpr std::size_t kBuf = 4 * kMaxChunk;
  std::unique_ptr<char[]> buf_;
  std::vector<Chunk> chunks_;
};

ContentWriter::ReadFn reader_of(Source& src) {
  return [&src](char* p, std::size_t n) -> std::size_t {
    if (src.fd() >= 0) {
      for (;;) {
        ssize_t r = ::read(src.fd(), p, n);
        if (r >= 0) return static_cast<std::size_t>(r);
        if (errno != EINTR) fail_errno(errno, "read the data to store");
      }
    }
    return unwrap(src.read(std::span<char>(p, n)));
  };
}

// ---- reading files ----------------------------------------------------------

class ChunkedReader final : public FileReader {
 public:
  ChunkedReader(const Objects& objects, std::vector<Chunk> chunks, std::string what)
      : objects_(objects), chunks_(std::move(chunks)), what_(std::move(what)) {
    for (const auto& c : chunks_) {
      starts_.push_back(size_);
      size_ += c.size;
    }
  }
  std::uint64_t size() const override { return size_; }
  int fd() const override { return -1; }
  std::size_t pread(std::span<char> buf, std::uint64_t offset) override {
    if (offset >= size_ || buf.empty()) return 0;
    std::size_t i = static_cast<std::size_t>(
        std::upper_bound(starts_.begin(), starts_.end(), offset) - starts_.begin() - 1);
    if (i != current_) {
      fd_ = objects_.open(chunks_[i].hash, what_);
      // The whole chunk is read in order: read ahead generously.
      ::posix_fadvise(fd_.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
      current_ = i;
    }
    std::uint64_t in_chunk = offset - starts_[i];
    std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), chunks_[i].size - in_chunk));
    for (;;) {
      ssize_t n = ::pread(fd_.get(), buf.data(), want, static_cast<off_t>(in_chunk));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail_errno(errno, "read " + what_);
      if (n == 0) failf(ErrorCode::kCorruption, "a chunk of {} is short; run pachctl fsck", what_);
      return static_cast<std::size_t>(n);
    }
  }

 private:
  const Objects& objects_;
  std::vector<Chunk> chunks_;
  std::vector<std::uint64_t> starts_;
  std::uint64_t size_ = 0;
  std::string what_;
  std::size_t current_ = static_cast<std::size_t>(-1);
  UniqueFd fd_;
};

// ---- trees ------------------------------------------------------------------

// A tree: read lazily from its manifests; changed in memory; written back by
// write(), which stores only the manifests of directories that changed.
class PTree final : public TreeReader {
 public:
  PTree(const Objects& objects, std::string root, std::string what)
      : objects_(objects), what_(std::move(what)) {
    root_.hash = std::move(root);
  }

  // ---- TreeReader
  std::optional<Entry> stat(const std::string& path) override {
    if (path.empty()) {
      Entry e;
      e.info.type = FileInfo::Type::kDirectory;
      e.info.mtime_ns = root_mtime_;
      if (!root_.dirty) e.identity = "d:" + root_.hash;
      return e;
    }
    Node* dir = find_dir(path_parent(path));
    if (!dir) return std::nullopt;
    std::string name = path_base(path);
    const PEntry* e = lookup(*dir, name);
    if (!e) return std::nullopt;
    return to_entry(*dir, path, name, *e);
  }

  std::vector<Entry> list(const std::string& dir) override {
    Node* n = find_dir(dir);
    if (!n) {
      if (!dir.empty() && is_file(dir))
        failf(ErrorCode::kInvalidArgument, "\"{}\" in {} is a file, not a directory", dir, what_);
      failf(ErrorCode::kNotFound, "\"{}\" not found in {}", dir, what_);
    }
    load_all(*n);
    std::vector<Entry> out;
    out.reserve(n->entries.size());
    for (const auto& [name, e] : n->entries) out.push_back(to_entry(*n, path_join(dir, name), name, e));
    return out;
  }

  std::unique_ptr<FileReader> open_file(const std::string& path) override {
    auto e = get(path);
    if (!e) failf(ErrorCode::kNotFound, "file \"{}\" not found in {}", path, what_);
    if (e->is_dir())
      failf(ErrorCode::kInvalidArgument, "\"{}\" in {} is a directory (list it with list-file)",
            path, what_);
    std::string what = fmt::format("\"{}\" in {}", path, what_);
    std::unique_ptr<FileReader> r;
    if (e->type == 'f')
      r = file_reader(objects_.open(e->hash, what));
    else
      r = std::make_unique<ChunkedReader>(objects_, objects_.chunks(e->hash, what), what);
    r->mtime_ns = e->mtime_ns;
    return r;
  }

  // ---- entries
  std::optional<PEntry> get(const std::string& path) {
    if (path.empty()) return std::nullopt;
    Node* dir = find_dir(path_parent(path));
    if (!dir) return std::nullopt;
    const PEntry* e = lookup(*dir, path_base(path));
    if (!e) return std::nullopt;
    return *e;
  }

  // Sets the file at `path`, creating its parent directories. Throws
  // kInvalidArgument when a parent is a file or path is a directory.
  void set_file(const std::string& path, const PEntry& e) {
    Node* dir = make_dirs(path_parent(path));
    std::string name = path_base(path);
    touch(*dir, name);
    auto it = dir->entries.find(name);
    if (it != dir->entries.end() && it->second.is_dir())
      failf(ErrorCode::kInvalidArgument, "\"{}\" is a directory; a file cannot replace it", path);
    dir->entries[name] = e;
    dir->kids.erase(name);
  }

  // Makes directory `path` and its parents. Throws kInvalidArgument when a
  // file is in the way.
  void make_dir(const std::string& path) { make_dirs(path); }

  // Removes a file or directory; returns what it held (0 when absent).
  TreeStats remove(const std::string& path) {
    Node* dir = find_dir(path_parent(path), true);
    if (!dir) return {};
    std::string name = path_base(path);
    touch(*dir, name);
    auto it = dir->entries.find(name);
    if (it == dir->entries.end()) return {};
    TreeStats removed;
    auto kid = dir->kids.find(name);
    if (kid != dir->kids.end() && kid->second->dirty) {
      removed = count_tree(*this, path);
    } else {
      removed = {it->second.files, it->second.size};
    }
    dir->entries.erase(it);
    dir->kids.erase(name);
    return removed;
  }

  // Stores the changed manifests; returns the root's hash.
  std::string write(ObjectWriter& w) {
    std::int64_t now = now_ns();
    write_node(root_, w, now);
    return root_.hash;
  }

  void set_root_mtime(std::int64_t t) { root_mtime_ = t; }

 private:
  // A page of a paged directory: its entries are read when first needed.
  struct Page {
    PageRef ref;
    bool loaded = false;
    bool dirty = false;  // an entry in its range changed
  };
  struct Node {
    std::string hash;
    bool loaded = false;  // its object is read
    bool dirty = false;
    // The entries read so far: all of them for a manifest, those of the
    // loaded pages for a paged directory. Page i holds the names from
    // pages[i].ref.first (from the start, for page 0) to pages[i+1].ref.first.
    Manifest entries;
    std::vector<Page> pages;
    std::map<std::string, std::unique_ptr<Node>> kids;
  };

  void load(Node& n) {
    if (n.loaded) return;
    auto d = objects_.dir(n.hash, what_);
    n.entries = std::move(d.entries);
    n.pages.clear();
    for (auto& r : d.pages) n.pages.push_back({std::move(r), false, false});
    n.loaded = true;
  }

  // The page whose range holds `name`.
  static std::size_t page_of(const Node& n, const std::string& name) {
    auto it = std::upper_bound(n.pages.begin(), n.pages.end(), name,
                               [](const std::string& a, const Page& p) { return a < p.ref.first; });
    return it == n.pages.begin() ? 0 : static_cast<std::size_t>(it - n.pages.begin()) - 1;
  }

  void load_page(Node& n, std::size_t i) {
    if (n.pages[i].loaded) return;
    std::vector<PageRef> refs;
    refs.reserve(n.pages.size());
    for (const auto& p : n.pages) refs.push_back(p.ref);  // for the checks
    Manifest m = objects_.page(n.hash, refs, i, what_);
    n.entries.insert(std::make_move_iterator(m.begin()), std::make_move_iterator(m.end()));
    n.pages[i].loaded = true;
  }

  void load_all(Node& n) {
    std::vector<bool> skip;
    bool any = false;
    for (const auto& p : n.pages) {
      skip.push_back(p.loaded);
      any = any || !p.loaded;
    }
    if (!any) return;
    std::vector<PageRef> refs;
    for (const auto& p : n.pages) refs.push_back(p.ref);
    objects_.prefetch(refs, skip);
    for (std::size_t i = 0; i < n.pages.size(); i++) load_page(n, i);
  }

  // The entry `name` of directory n, or nullptr; reads its page if needed.
  const PEntry* lookup(Node& n, const std::string& name) {
    if (!n.pages.empty()) load_page(n, page_of(n, name));
    auto it = n.entries.find(name);
    return it == n.entries.end() ? nullptr : &it->second;
  }

  // Makes n.entries hold what there is of `name`, to be changed.
  void touch(Node& n, const std::string& name) {
    if (n.pages.empty()) return;
    std::size_t i = page_of(n, name);
    load_page(n, i);
    n.pages[i].dirty = true;
  }

  Entry to_entry(Node& parent, const std::string& path, const std::string& name, const PEntry& e) {
    Entry out;
    out.info.path = path;
    out.info.mtime_ns = e.mtime_ns;
    if (e.is_dir()) {
      out.info.type = FileInfo::Type::kDirectory;
      auto kid = parent.kids.find(name);
      if (kid == parent.kids.end() || !kid->second->dirty) out.identity = "d:" + e.hash;
    } else {
      out.info.type = FileInfo::Type::kFile;
      out.info.size = e.size;
      out.identity = std::string(1, e.type) + ":" + e.hash;
      // The same bytes are always stored the same way (chunking depends
      // only on the content), so different hashes mean different bytes.
      out.identity_is_content = true;
    }
    return out;
  }

  // The directory node at `dir`, or nullptr when it is absent or a file.
  // With `for_change`, every node on the way is marked dirty.
  Node* find_dir(const std::string& dir, bool for_change = false) {
    Node* cur = &root_;
    load(*cur);
    std::vector<Node*> chain{cur};
    for (const auto& comp : split_path(dir)) {
      auto kid = cur->kids.find(comp);
      if (kid == cur->kids.end()) {
        const PEntry* e = lookup(*cur, comp);
        if (!e || !e->is_dir()) return nullptr;
        auto n = std::make_unique<Node>();
        n->hash = e->hash;
        kid = cur->kids.emplace(comp, std::move(n)).first;
      }
      cur = kid->second.get();
      load(*cur);
      chain.push_back(cur);
    }
    if (for_change)
      for (Node* n : chain) n->dirty = true;
    return cur;
  }

  bool is_file(const std::string& path) {
    auto e = get(path);
    return e && !e->is_dir();
  }

  // Like mkdir -p; marks the way dirty.
  Node* make_dirs(const std::string& dir) {
    Node* cur = &root_;
    load(*cur);
    cur->dirty = true;
    std::string sofar;
    for (const auto& comp : split_path(dir)) {
      sofar = path_join(sofar, comp);
      auto kid = cur->kids.find(comp);
      if (kid == cur->kids.end()) {
        touch(*cur, comp);
        auto it = cur->entries.find(comp);
        auto n = std::make_unique<Node>();
        if (it == cur->entries.end()) {
          n->loaded = true;  // a new, empty directory
          PEntry d;
          d.type = 'd';
          cur->entries.emplace(comp, d);
        } else if (!it->second.is_dir()) {
          failf(ErrorCode::kInvalidArgument, "\"{}\" is a file, not a directory", sofar);
        } else {
          n->hash = it->second.hash;
        }
        kid = cur->kids.emplace(comp, std::move(n)).first;
      }
      cur = kid->second.get();
      load(*cur);
      cur->dirty = true;
    }
    return cur;
  }

  // Returns the node's figures; stores its manifest if it changed.
  TreeStats write_node(Node& n, ObjectWriter& w, std::int64_t now) {
    if (!n.dirty) return {};  // unchanged: the parent's entry still holds its figures
    for (auto& [name, kid] : n.kids) {
      if (!kid->dirty) continue;
      TreeStats s = write_node(*kid, w, now);
      touch(n, name);
      PEntry& e = n.entries[name];
      e.type = 'd';
      e.hash = kid->hash;
      e.files = s.files;
      e.size = s.bytes;
      e.mtime_ns = now;
    }
    TreeStats total;
    std::size_t count = n.entries.size();
    for (const auto& [name, e] : n.entries) {
      total.files += e.files;
      total.bytes += e.size;
    }
    for (const auto& p : n.pages) {
      if (p.loaded) continue;
      total.files += p.ref.files;
      total.bytes += p.ref.bytes;
      count += p.ref.count;
    }
    if (n.pages.empty() || count <= kLeafMax) {
      load_all(n);
      n.pages.clear();
      n.hash = write_dir(n.entries, w);
    } else {
      n.hash = write_pages(n, w);
    }
    n.dirty = false;
    if (&n == &root_) root_mtime_ = now;
    return total;
  }

  // Stores a paged directory whose changes are confined to its dirty pages,
  // and its new index; reads and rewrites only those pages (and a following
  // one where an edit moved a page's end). The result is the same as
  // paginating the whole directory: boundaries depend only on the entries
  // since the last boundary, so re-cutting starts at a dirty page's start
  // and stops at the first new boundary that is also an old one.
  std::string write_pages(Node& n, ObjectWriter& w) {
    std::vector<Page> out;
    Manifest cur;
    auto flush = [&] {
      out.push_back({page_ref(w.put(serialize(cur)), cur), true, false});
      cur.clear();
    };
    const std::size_t k = n.pages.size();
    std::size_t i = 0;
    while (i < k) {
      if (!n.pages[i].dirty) {
        out.push_back(n.pages[i]);
        i++;
        continue;
      }
      std::size_t j = i;  // the old page whose range `it` is in
      auto it = i == 0 ? n.entries.begin() : n.entries.lower_bound(n.pages[i].ref.first);
      for (;;) {
        const std::string* end = j + 1 < k ? &n.pages[j + 1].ref.first : nullptr;
        if (it != n.entries.end() && (!end || it->first < *end)) {
          cur.emplace_hint(cur.end(), it->first, it->second);
          if (ends_page(it->first, cur.size())) flush();
          ++it;
          continue;
        }
        // The end of old page j's range.
        if (cur.empty()) {  // a boundary, old and new: the rest is as it was
          i = j + 1;
          break;
        }
        if (!end) {  // the end of the directory
          flush();
          i = k;
          break;
        }
        j++;  // the page runs on into the next old page's range
        load_page(n, j);
        it = n.entries.lower_bound(n.pages[j].ref.first);
      }
    }
    n.pages = std::move(out);
    std::vector<PageRef> refs;
    for (const auto& p : n.pages) refs.push_back(p.ref);
    return w.put(index_text(refs));
  }

  const Objects& objects_;
  std::string what_;
  Node root_;
  std::int64_t root_mtime_ = 0;
};

// ---- refs -------------------------------------------------------------------

std::string ref_text(const std::string& root, std::int64_t mtime) {
  return fmt::format("{}{} {}\n", kRefMagic, root, mtime);
}

struct TreeRef {
  std::string root;
  std::int64_t mtime_ns = 0;
};

std::optional<TreeRef> read_ref(int dirfd, const std::string& name, std::string_view what) {
  auto text = read_small_file(dirfd, name);
  if (!text) return std::nullopt;
  std::string_view t = *text, magic = kRefMagic;
  TreeRef r;
  bool ok = t.substr(0, magic.size()) == magic && t.size() > magic.size() + 66 &&
            t[magic.size() + 64] == ' ' && t.back() == '\n';
  if (ok) {
    r.root = std::string(t.substr(magic.size(), 64));
    std::string_view num = t.substr(magic.size() + 65, t.size() - magic.size() - 66);
    ok = is_hash(r.root) && !num.empty() && num.size() <= 19;
    for (char c : num) {
      if (c < '0' || c > '9') ok = false;
      else r.mtime_ns = r.mtime_ns * 10 + (c - '0');
    }
  }
  if (!ok) failf(ErrorCode::kCorruption, "the tree reference of {} is unreadable; run pachctl fsck", what);
  return r;
}

// A shared (writer) or exclusive (gc) hold on portable/gc.lock.
UniqueFd gc_lock(int top, bool exclusive) {
  UniqueFd fd(::openat(top, "gc.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd) fail_errno(errno, "open portable/gc.lock");
  flock_fd(fd.get(), exclusive);
  return fd;
}

class PortableStaging final : public Staging {
 public:
  PortableStaging(const Objects& objects, UniqueFd lock, Backend::StageKind kind, int tmp_dir)
      : lock_(std::move(lock)), kind_(kind), writer_(objects) {
    if (kind_ == Backend::StageKind::kPart) {
      // Bytes to be merged into a file: kept in an unnamed file, not stored
      // as objects (which the merged file would not use: garbage).
      part_.reset(::openat(tmp_dir, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
      if (!part_) {  // a file system without O_TMPFILE: a named file, unlinked at once
        std::string name = ".part." + random_hex(8);
        part_.reset(::openat(tmp_dir, name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
        if (!part_) fail_errno(errno, "create a temporary file in the store");
        ::unlinkat(tmp_dir, name.c_str(), 0);
      }
    }
  }

  std::uint64_t add(const std::string& rel, Source& src) override {
    if (part_) {
      std::uint64_t n = 0;
      auto read = reader_of(src);
      std::vector<char> buf(1 << 20);
      for (;;) {
        std::size_t got = read(buf.data(), buf.size());
        if (got == 0) break;
        write_all(part_.get(), buf.data(), got, "write staged data");
        n += got;
      }
      PEntry e;
      e.size = n;
      items_.emplace_back(rel, e);
      return n;
    }
    PEntry e = content_.store(writer_, reader_of(src));
    items_.emplace_back(rel, e);
    return e.size;
  }
  // The part's bytes become objects at publish, and are synced then.
  void sync() override { writer_.commit(); }

  // Stores the part's bytes as a file of their own (an append that creates).
  PEntry store_part() {
    std::uint64_t off = 0;
    return content_.store(writer_, [&](char* p, std::size_t n) -> std::size_t {
      for (;;) {
        ssize_t r = ::pread(part_.get(), p, n, static_cast<off_t>(off));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) fail_errno(errno, "read staged data");
        off += static_cast<std::uint64_t>(r);
        return static_cast<std::size_t>(r);
      }
    });
  }

  UniqueFd lock_;  // held until published or dropped: gc must not take our objects
  Backend::StageKind kind_;
  ObjectWriter writer_;
  ContentWriter content_;
  std::vector<std::pair<std::string, PEntry>> items_;
  UniqueFd part_;  // kPart: the bytes
};

// A tree being built (merge, revert, receive): changes stay in memory until
// freeze stores the changed manifests. Receive's scratch files are plain
// files in portable/tmp/<commit id>/, removed with the work tree.
class PortableWorkTree final : public WorkTree {
 public:
  PortableWorkTree(const Objects& objects, UniqueFd lock, std::string root, int top,
                   std::string id)
      : lock_(std::move(lock)), tree_(objects, std::move(root), "the new tree"), writer_(objects),
        top_(top), id_(std::move(id)) {}
  ~PortableWorkTree() override {
    if (scratch_) {
      scratch_.reset();
      try {
        UniqueFd tmp = open_dir(top_, "tmp");
        remove_tree(tmp.get(), id_);
      } catch (...) {  // discard_work removes it later
      }
    }
  }
  TreeReader& reader() override { return tree_; }

  using WorkTree::copy_file_from;
  void copy_file_from(TreeReader& from, const std::string& from_path,
                      const std::string& path) override {
    if (auto* tree = dynamic_cast<PTree*>(&from)) {  // a tree of this store: by reference
      auto e = tree->get(from_path);
      if (!e || e->is_dir()) failf(ErrorCode::kNotFound, "file \"{}\" not found", from_path);
      tree_.remove(path);  // a directory in the way goes, as on btrfs
      tree_.set_file(path, *e);
      return;
    }
    auto in = from.open_file(from_path);
    std::uint64_t off = 0;
    PEntry e = content_.store(writer_, [&](char* p, std::size_t n) {
      std::size_t got = in->pread(std::span<char>(p, n), off);
      off += got;
      return got;
    });
    tree_.remove(path);
    tree_.set_file(path, e);
  }

  void make_dir(const std::string& path) override {
    auto e = tree_.get(path);
    if (e && e->is_dir()) return;
    if (e) tree_.remove(path);
    tree_.make_dir(path);
  }

  void remove(const std::string& path) override { tree_.remove(path); }

  UniqueFd open_scratch(std::uint64_t n, bool create) override {
    if (!scratch_) {
      if (::mkdirat(top_, "tmp", 0700) != 0 && errno != EEXIST)
        fail_errno(errno, "make portable/tmp");
      UniqueFd tmp = open_dir(top_, "tmp");
      if (::mkdirat(tmp.get(), id_.c_str(), 0700) != 0 && errno != EEXIST)
        fail_errno(errno, "make the scratch directory of the new tree");
      scratch_ = open_dir(tmp.get(), id_);
    }
    std::string name = std::to_string(n);
    UniqueFd fd(::openat(scratch_.get(), name.c_str(),
                         O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT | O_EXCL : 0), 0600));
    if (!fd) fail_errno(errno, "open scratch file " + name);
    return fd;
  }

  // Stores the scratch file's content as objects (deduplicated) and sets
  // the entry; the same file placed again is stored once.
  void place_scratch(std::uint64_t n, const std::string& path) override {
    auto it = placed_.find(n);
    if (it == placed_.end()) {
      UniqueFd fd = open_scratch(n, false);
      std::uint64_t off = 0;
      PEntry e = content_.store(writer_, [&](char* p, std::size_t len) -> std::size_t {
        for (;;) {
          ssize_t r = ::pread(fd.get(), p, len, static_cast<off_t>(off));
          if (r < 0 && errno == EINTR) continue;
          if (r < 0) fail_errno(errno, "read scratch file");
          off += static_cast<std::uint64_t>(r);
          return static_cast<std::size_t>(r);
        }
      });
      it = placed_.emplace(n, e).first;
    }
    tree_.remove(path);
    tree_.set_file(path, it->second);
  }

  UniqueFd lock_;
  PTree tree_;
  ObjectWriter writer_;  // the objects of files put in by content
  ContentWriter content_;
  int top_;
  std::string id_;
  UniqueFd scratch_;
  std::map<std::uint64_t, PEntry> placed_;
};

class PortableBackend final : public Backend {
 public:
  explicit PortableBackend(int store_fd)
      : top_(open_dir(store_fd, "portable")),
        objects_(open_dir(top_.get(), "objects")),
        branches_(open_dir(top_.get(), "branches")),
        commits_(open_dir(top_.get(), "commits")) {}

  std::string_view name() const override { return "portable"; }

  std::unique_ptr<TreeReader> open_commit(const std::string& id) override {
    std::string what = "commit " + id.substr(0, 12);
    auto r = read_ref(commits_.get(), id, what);
    if (!r) failf(ErrorCode::kNotFound, "the tree of commit {} is missing (run pachctl fsck)", id);
    return tree(*r, what);
  }

  std::unique_ptr<TreeReader> open_branch(const std::string& branch) override {
    std::string what = fmt::format("branch \"{}\"", branch);
    auto r = read_ref(branches_.get(), branch, what);
    if (!r)
      failf(ErrorCode::kNotFound,
            "branch \"{}\" not found (list branches with: pachctl list-branch)", branch);
    return tree(*r, what);
  }

  bool has_commit_tree(const std::string& id) override {
    return stat_at(commits_.get(), id).has_value();
  }
  bool has_branch_tree(const std::string& b) override {
    return stat_at(branches_.get(), b).has_value();
  }
  std::vector<std::string> list_commit_trees() override { return ref_names(commits_.get()); }
  std::vector<std::string> list_branch_trees() override { return ref_names(branches_.get()); }

  void create_branch_tree(const std::string& branch, const std::string& from) override {
    UniqueFd lock = gc_lock(top_.get(), false);
    TreeRef r = from.empty() ? empty_tree() : must_ref(commits_.get(), from, "commit " + from);
    write_file_atomic(branches_.get(), branch, ref_text(r.root, now_ns()));
  }

  void delete_branch_tree(const std::string& branch) override {
    if (unlink_if_exists(branches_.get(), branch)) fsync_dir(branches_.get());
  }

  void reset_branch_tree(const std::string& branch, const std::string& id) override {
    UniqueFd lock = gc_lock(top_.get(), false);
    TreeRef r = must_ref(commits_.get(), id, "commit " + id);
    crash_point("reset.before-exchange");
    write_file_atomic(branches_.get(), branch, ref_text(r.root, now_ns()));  // atomic
    crash_point("reset.after-exchange");
  }

  std::unique_ptr<Staging> stage(const std::string& branch, StageKind kind) override {
    if (!has_branch_tree(branch))
      failf(ErrorCode::kNotFound,
            "branch \"{}\" not found (list branches with: pachctl list-branch)", branch);
    return std::make_unique<PortableStaging>(objects_, gc_lock(top_.get(), false), kind,
                                             top_.get());
  }

  StatsDelta publish(const std::string& branch, Staging& staging, const std::string& path,
                     const Placement& where) override {
    auto& s = static_cast<PortableStaging&>(staging);
    auto r = read_ref(branches_.get(), branch, "branch " + branch);
    if (!r) failf(ErrorCode::kNotFound, "branch \"{}\" was deleted during the upload", branch);
    PTree t(objects_, r->root, fmt::format("branch \"{}\"", branch));
    ObjectWriter w(objects_);
    StatsDelta d;
    if (s.kind_ != StageKind::kDir) {
      PEntry e = s.items_.at(0).second;
      auto old = t.get(path);
      if (old && old->is_dir())
        failf(ErrorCode::kInvalidArgument, "\"{}\" is a directory; a file cannot replace it",
              path);
      if (where.mode == Placement::Mode::kAt && (!old || where.offset > old->size))
        failf(ErrorCode::kInvalidArgument, "cannot write \"{}\" at offset {}: it has {} bytes",
              path, where.offset, old ? old->size : 0);
      if ((where.mode != Placement::Mode::kReplace) != (s.kind_ == StageKind::kPart))
        fail(ErrorCode::kInternal, "append and write-at need bytes staged as kPart");
      if (where.mode != Placement::Mode::kReplace && old) {
        std::uint64_t at = where.mode == Placement::Mode::kAt ? where.offset : old->size;
        e = spliced(*old, at, s.part_.get(), e.size, w, s.content_, path);
      } else if (s.part_) {
        e = s.store_part();  // an append that creates the file
        s.writer_.commit();
      }
      t.set_file(path, e);
      d.files = old ? 0 : 1;
      d.bytes = static_cast<std::int64_t>(e.size) - static_cast<std::int64_t>(old ? old->size : 0);
    } else {
      if (!path.empty()) {
        auto old = t.get(path);
        if (old && !old->is_dir())
          failf(ErrorCode::kInvalidArgument,
                "\"{}\" is a file in the branch; a directory cannot replace it", path);
      }
      // Check everything first: a refused upload changes nothing.
      for (const auto& [rel, e] : s.items_) {
        std::string full = path_join(path, rel);
        std::string sofar = path;
        for (const auto& comp : split_path(path_parent(rel))) {
          sofar = path_join(sofar, comp);
          auto have = t.get(sofar);
          if (have && !have->is_dir())
            failf(ErrorCode::kInvalidArgument,
                  "\"{}\" is a file in the branch but a directory in the upload; delete it first",
                  sofar);
        }
        auto have = t.get(full);
        if (have && have->is_dir())
          failf(ErrorCode::kInvalidArgument,
                "\"{}\" is a directory in the branch but a file in the upload; delete it first",
                full);
      }
      for (const auto& [rel, e] : s.items_) {
        std::string full = path_join(path, rel);
        auto old = t.get(full);
        d.files += old ? 0 : 1;
        d.bytes += static_cast<std::int64_t>(e.size) - static_cast<std::int64_t>(old ? old->size : 0);
        t.set_file(full, e);
      }
    }
    save_branch(branch, t, w);
    s.lock_.reset();
    return d;
  }

  TreeStats remove(const std::string& branch, const std::string& path) override {
    UniqueFd lock = gc_lock(top_.get(), false);
    auto r = read_ref(branches_.get(), branch, "branch " + branch);
    if (!r) failf(ErrorCode::kNotFound, "branch \"{}\" not found", branch);
    PTree t(objects_, r->root, fmt::format("branch \"{}\"", branch));
    if (!t.get(path)) failf(ErrorCode::kNotFound, "\"{}\" not found in branch \"{}\"", path, branch);
    TreeStats removed = t.remove(path);
    ObjectWriter w(objects_);
    save_branch(branch, t, w);
    return removed;
  }

  // Uploads leave nothing in the branch: temporary objects are gc's.
  void sweep_staging(const std::string&) override {}

  void snapshot(const std::string& branch, const std::string& id) override {
    UniqueFd lock = gc_lock(top_.get(), false);
    auto r = read_ref(branches_.get(), branch, "branch " + branch);
    if (!r) failf(ErrorCode::kNotFound, "branch \"{}\" not found", branch);
    write_file_atomic(commits_.get(), id, ref_text(r->root, r->mtime_ns));
    crash_point("snapshot.after-create");
  }

  std::unique_ptr<WorkTree> work_tree(const std::string& base, const std::string& id) override {
    discard_work(id);
    UniqueFd lock = gc_lock(top_.get(), false);
    TreeRef r = base.empty() ? empty_tree() : must_ref(commits_.get(), base, "commit " + base);
    return std::make_unique<PortableWorkTree>(objects_, std::move(lock), r.root, top_.get(), id);
  }

  void freeze(WorkTree& tree, const std::string& id) override {
    auto& t = static_cast<PortableWorkTree&>(tree);
    t.writer_.commit();
    ObjectWriter w(objects_);
    std::string root = t.tree_.write(w);
    w.commit();
    write_file_atomic(commits_.get(), id, ref_text(root, now_ns()));
  }

  void delete_commit_tree(const std::string& id) override {
    if (unlink_if_exists(commits_.get(), id)) fsync_dir(commits_.get());
  }

  // Nothing of a work tree is on disk until freeze but receive's scratch
  // files (and objects, which gc removes when nothing references them).
  void discard_work(const std::string& id) override {
    UniqueFd tmp = open_dir_if_exists(top_.get(), "tmp");
    if (tmp) remove_tree(tmp.get(), id);
  }

  GcReport gc() override {
    UniqueFd lock = gc_lock(top_.get(), true);  // waits for writers to reference their objects
    std::unordered_set<std::string> live;
    // A reference that cannot be followed stops gc: what it would reach is
    // unknown, so nothing may be removed.
    for (int dir : {commits_.get(), branches_.get()})
      for (const auto& name : ref_names(dir)) {
        auto r = read_ref(dir, name, name);
        if (r) mark(r->root, live, name);
      }
    GcReport rep;
    for_each_object([&](int shard, const std::string& name, const std::string& hash) {
      auto st = stat_at(shard, name);
      std::uint64_t size = st ? static_cast<std::uint64_t>(st->st_size) : 0;
      if (!hash.empty() && live.count(hash)) {
        rep.objects_kept++;
        rep.bytes_kept += size;
        return;
      }
      if (unlink_if_exists(shard, name) && !hash.empty()) {  // temporary files are not counted
        rep.objects_removed++;
        rep.bytes_removed += size;
      }
    });
    return rep;
  }

  void check(FsckReport& report, bool repair) override {
    std::unordered_set<std::string> bad;
    std::uint64_t temps = 0;
    std::vector<char> buf(1 << 20);
    for_each_object([&](int shard, const std::string& name, const std::string& hash) {
      if (hash.empty()) {
        temps++;
        return;
      }
      UniqueFd fd(::openat(shard, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
      if (!fd) fail_errno(errno, "open object " + hash);
      Hasher h;
      for (;;) {
        ssize_t n = ::read(fd.get(), buf.data(), buf.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) fail_errno(errno, "read object " + hash);
        if (n == 0) break;
        h.update(buf.data(), static_cast<std::size_t>(n));
      }
      if (h.hex() == hash) return;
      if (repair) {  // from now on it is simply missing
        unlink_if_exists(shard, name);
        report.repaired.push_back(fmt::format(
            "removed corrupt object {}: uploading the same content again restores it", hash));
      } else {
        bad.insert(hash);
        report.problems.push_back(fmt::format(
            "object {} is corrupt: its bytes do not match its hash (fsck --repair removes it)",
            hash));
      }
    });
    if (temps > 0) {
      // Temporary files of live writers must stay: only when no writer holds
      // the gc lock are they all leftovers. (Never wait for it here: a
      // writer may be waiting for the graph lock that fsck --repair holds.)
      UniqueFd lock(::openat(top_.get(), "gc.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644));
      if (repair && lock && flock_fd(lock.get(), true, false)) {
        for_each_object([&](int shard, const std::string& name, const std::string& hash) {
          if (hash.empty()) unlink_if_exists(shard, name);
        });
        report.repaired.push_back(
            fmt::format("removed {} temporary object file(s) of interrupted uploads", temps));
      } else {
        report.leftovers.push_back(fmt::format(
            "{} temporary object file(s) of uploads in progress or interrupted (pachctl gc "
            "removes those of interrupted ones)",
            temps));
      }
    }
    // Every object a tree names must be there and intact.
    std::unordered_set<std::string> seen;
    for (auto [dir, kind] : {std::pair{commits_.get(), "commit"}, std::pair{branches_.get(), "branch"}}) {
      for (const auto& name : ref_names(dir)) {
        std::string what = fmt::format("{} {}", kind, name);
        try {
          auto r = read_ref(dir, name, what);
          if (r) check_tree(r->root, "", what, seen, bad, report);
        } catch (const Fail& f) {
          report.problems.push_back(f.error.message);
        }
      }
    }
  }

 private:
  std::unique_ptr<TreeReader> tree(const TreeRef& r, const std::string& what) {
    auto t = std::make_unique<PTree>(objects_, r.root, what);
    t->set_root_mtime(r.mtime_ns);
    return t;
  }

  TreeRef must_ref(int dir, const std::string& name, const std::string& what) {
    auto r = read_ref(dir, name, what);
    if (!r) failf(ErrorCode::kNotFound, "the tree of {} is missing (run pachctl fsck)", what);
    return *r;
  }

  TreeRef empty_tree() {
    ObjectWriter w(objects_);
    TreeRef r{w.put(serialize({})), now_ns()};
    w.commit();
    return r;
  }

  std::vector<std::string> ref_names(int dir) {
    std::vector<std::string> out;
    for (auto& n : list_dir_names(dir))
      if (n[0] != '.') out.push_back(std::move(n));  // .tmp.* are refs being written
    return out;
  }

  void save_branch(const std::string& branch, PTree& t, ObjectWriter& w) {
    std::string root = t.write(w);
    w.commit();
    crash_point("portable.before-ref");
    write_file_atomic(branches_.get(), branch, ref_text(root, now_ns()));
  }

  // The entry of `old` with the bytes of `add` written at `offset` (<= its
  // size; at the size: appended). Re-chunks from the start of the old chunk
  // that holds `offset` until a cut falls on an old chunk boundary behind
  // the written bytes, and keeps the old chunks around that: the result is
  // chunked exactly as a fresh upload of the whole new file would be (so it
  // has the same hash and shares its chunks), at the cost of what changed.
  PEntry spliced(const PEntry& old, std::uint64_t offset, int add_fd, std::uint64_t add_size,
                 ObjectWriter& w, ContentWriter& content, const std::string& path) {
    std::string what = fmt::format("\"{}\"", path);
    auto chunks_of = [&](const PEntry& e) {
      return e.type == 'c' ? objects_.chunks(e.hash, what) : std::vector<Chunk>{{e.hash, e.size}};
    };
    std::vector<Chunk> oc = chunks_of(old);
    std::vector<std::uint64_t> starts;
    std::uint64_t pos = 0;
    for (const auto& c : oc) {
      starts.push_back(pos);
      pos += c.size;
    }
    // The old chunk holding `offset` (the last one when appending).
    std::size_t first = static_cast<std::size_t>(
        std::upper_bound(starts.begin(), starts.end(), offset) - starts.begin() - 1);
    std::uint64_t from = starts[first];
    std::uint64_t end = offset + add_size;  // behind the written bytes, old bytes again
    // The byte stream to re-chunk: old [from, offset), add, old [end, size).
    struct Segment {
      std::string hash;  // an object, or (empty) add_fd
      std::uint64_t off, len;
    };
    std::vector<Segment> segs;
    if (offset > from) segs.push_back({oc[first].hash, 0, offset - from});
    segs.push_back({"", 0, add_size});
    for (std::size_t k = first; k < oc.size(); k++) {
      std::uint64_t s0 = starts[k], s1 = starts[k] + oc[k].size;
      if (s1 <= end) continue;
      std::uint64_t skip = end > s0 ? end - s0 : 0;
      segs.push_back({oc[k].hash, skip, oc[k].size - skip});
    }
    std::size_t si = 0;
    std::uint64_t in_seg = 0;
    UniqueFd fd;
    auto read = [&](char* p, std::size_t n) -> std::size_t {
      while (si < segs.size()) {
        const Segment& g = segs[si];
        if (in_seg == g.len) {
          si++;
          in_seg = 0;
          fd.reset();
          continue;
        }
        if (!fd && !g.hash.empty()) fd = objects_.open(g.hash, what);
        int from_fd = g.hash.empty() ? add_fd : fd.get();
        std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(n, g.len - in_seg));
        ssize_t r = ::pread(from_fd, p, want, static_cast<off_t>(g.off + in_seg));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) fail_errno(errno, "read " + what);
        if (r == 0) failf(ErrorCode::kCorruption, "an object of {} is short; run pachctl fsck", what);
        in_seg += static_cast<std::uint64_t>(r);
        return static_cast<std::size_t>(r);
      }
      return 0;
    };
    // Old boundaries behind the written bytes: a cut there realigns.
    std::size_t resume = oc.size();
    auto stop = [&](std::uint64_t cut) {
      std::uint64_t at = from + cut;
      if (at < end) return false;
      auto it = std::lower_bound(starts.begin(), starts.end(), at);
      if (it == starts.end() || *it != at) return false;
      resume = static_cast<std::size_t>(it - starts.begin());
      return true;
    };
    content.store(w, read, stop);
    std::vector<Chunk> all(oc.begin(), oc.begin() + static_cast<std::ptrdiff_t>(first));
    all.insert(all.end(), content.chunks().begin(), content.chunks().end());
    all.insert(all.end(), oc.begin() + static_cast<std::ptrdiff_t>(resume), oc.end());
    // A re-chunked empty stream yields one empty chunk; drop it when others exist.
    if (all.size() > 1)
      all.erase(std::remove_if(all.begin(), all.end(), [](const Chunk& c) { return c.size == 0; }),
                all.end());
    PEntry e;
    e.files = 1;
    e.mtime_ns = now_ns();
    for (const auto& c : all) e.size += c.size;
    if (all.size() == 1) {
      e.type = 'f';
      e.hash = all[0].hash;
    } else {
      e.type = 'c';
      e.hash = w.put(serialize_chunks(all));
    }
    return e;
  }

  // Adds every object reachable from tree `hash` to `live`.
  void mark(const std::string& hash, std::unordered_set<std::string>& live,
            const std::string& what) {
    if (!live.insert(hash).second) return;
    std::vector<std::string> pages;
    Manifest m = objects_.manifest(hash, what, &pages);
    live.insert(pages.begin(), pages.end());
    for (const auto& [name, e] : m) {
      if (e.is_dir()) {
        mark(e.hash, live, what);
      } else if (live.insert(e.hash).second && e.type == 'c') {
        for (const auto& c : objects_.chunks(e.hash, what)) live.insert(c.hash);
      }
    }
  }

  void check_tree(const std::string& hash, const std::string& dir, const std::string& what,
                  std::unordered_set<std::string>& seen, const std::unordered_set<std::string>& bad,
                  FsckReport& report) {
    if (!seen.insert(hash).second) return;
    auto missing = [&](const std::string& h, const std::string& path) {
      if (bad.count(h) || !objects_.exists(h)) {
        report.problems.push_back(fmt::format("{}: object {} of \"{}\" is {}", what, h,
                                              path.empty() ? "/" : path,
                                              bad.count(h) ? "corrupt" : "missing"));
        return true;
      }
      return false;
    };
    if (missing(hash, dir)) return;
    Manifest m;
    std::vector<std::string> pages;
    try {
      m = objects_.manifest(hash, what, &pages);
    } catch (const Fail& f) {
      report.problems.push_back(fmt::format("{}: {}", what, f.error.message));
      return;
    }
    // Equal directories must have equal hashes (diff and dedup rely on it):
    // a directory is paged exactly when it is large, at the canonical ends.
    std::vector<std::string> canonical;
    if (m.size() > kLeafMax)
      for (const auto& r : paginate(m, [](const std::string& text) { return hash_bytes(text); }))
        canonical.push_back(r.hash);
    if (pages != canonical)
      report.problems.push_back(fmt::format("{}: directory \"{}\" (object {}) is not stored in its "
                                            "canonical form", what, dir.empty() ? "/" : dir, hash));
    for (const auto& [name, e] : m) {
      std::string path = path_join(dir, name);
      if (e.is_dir()) {
        check_tree(e.hash, path, what, seen, bad, report);
      } else if (seen.insert(e.hash).second && !missing(e.hash, path) && e.type == 'c') {
        try {
          std::uint64_t total = 0;
          for (const auto& c : objects_.chunks(e.hash, what)) {
            total += c.size;
            if (seen.insert(c.hash).second) missing(c.hash, path);
          }
          if (total != e.size)
            report.problems.push_back(fmt::format(
                "{}: \"{}\" records {} bytes but its chunks hold {}", what, path, e.size, total));
        } catch (const Fail& f) {
          report.problems.push_back(fmt::format("{}: {}", what, f.error.message));
        }
      }
    }
  }

  // Calls fn(shard fd, file name, hash) for every file in objects/; hash is
  // empty for temporary files.
  template <typename Fn>
  void for_each_object(Fn fn) {
    for (const auto& shard : list_dir_names(objects_.fd())) {
      if (shard.size() != 2) continue;
      UniqueFd sfd = open_dir(objects_.fd(), shard);
      for (const auto& name : list_dir_names(sfd.get())) {
        std::string hash = shard + name;
        fn(sfd.get(), name, is_hash(hash) ? hash : std::string());
      }
    }
  }

  UniqueFd top_;
  Objects objects_;
  UniqueFd branches_, commits_;
};

}  // namespace

void init_portable_backend(int store_fd) {
  if (::mkdirat(store_fd, "portable", 0755) != 0) fail_errno(errno, "create portable/");
  UniqueFd top = open_dir(store_fd, "portable");
  for (const char* d : {"objects", "branches", "commits"})
    if (::mkdirat(top.get(), d, 0755) != 0) fail_errno(errno, std::string("create portable/") + d);
  UniqueFd objects = open_dir(top.get(), "objects");
  for (int i = 0; i < 256; i++) {
    std::string shard = fmt::format("{:02x}", i);
    if (::mkdirat(objects.get(), shard.c_str(), 0755) != 0)
      fail_errno(errno, "create portable/objects/" + shard);
  }
  UniqueFd lock(::openat(top.get(), "gc.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!lock) fail_errno(errno, "create portable/gc.lock");
  if (::syncfs(top.get()) != 0) fail_errno_at(errno, "sync", top.get());
}

std::unique_ptr<Backend> open_portable_backend(int store_fd) {
  return std::make_unique<PortableBackend>(store_fd);
}

}  // namespace pfs::detail
