// portable.h: what the files of the portable backend share: the format's
// constants, manifests and chunk lists, the object store, trees, and the
// backend class whose members they define. The layout on disk is described
// in portable_backend.cc; the formats in docs/format.md.
#pragma once

#include <openssl/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "backend.h"

namespace pfs::detail::portable {

// Chunks of 64 KiB to 2 MiB, 320 KiB on average. A write of L bytes inside
// a big file stores about L + 0.5 MiB (the chunks it touches, re-cut): small
// enough that ten 1%-changes of a file cost ~1.15x its size; large enough
// that a terabyte is 3.3 million objects, not tens of millions.
inline constexpr std::size_t kMinChunk = 64 * 1024;
inline constexpr std::size_t kMaxChunk = 2 * 1024 * 1024;
// After kMinChunk, a cut where the top 18 bits of the rolling hash are 0:
// on average 256 KiB later.
inline constexpr std::uint64_t kCutMask = 0xffffc00000000000ULL;
inline constexpr const char* kTreeMagic = "pfs-tree 1\n";
inline constexpr const char* kDirMagic = "pfs-dir 2\n";
// A directory of more than kLeafMax entries is stored as pages: a change to
// a few of its entries then stores a few pages, not the whole listing (a
// directory of 1000 files changed in 10 places stores ~10 small pages and
// the page index). A page ends after an entry whose name hashes to 0 mod
// kPageSpread (16 entries on average), so an insertion moves no other
// page's boundaries; or at kLeafMax entries at the latest. The index names
// each page's first entry and totals, so a change reads only the pages it
// touches.
inline constexpr std::size_t kLeafMax = 64;
inline constexpr std::uint64_t kPageSpread = 16;
inline constexpr const char* kChunksMagic = "pfs-chunks 1\n";
inline constexpr const char* kRefMagic = "pfs-ref 1 ";

// ---- hashing (objects.cc) ---------------------------------------------------

std::string hash_bytes(std::string_view data);

// Incremental SHA-256 (fsck re-hashes objects of any size).
class Hasher {
 public:
  Hasher();
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;
  void update(const char* p, std::size_t n);
  std::string hex();

 private:
  EVP_MD_CTX* ctx_;
};

bool is_hash(std::string_view s);

std::string object_path(const std::string& hash);

// Throws kCorruption: object `hash` is damaged, as `why` says.
[[noreturn]] void corrupt(const std::string& hash, std::string_view why);

// ---- manifests and chunk lists ----------------------------------------------

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

// One page of a paged directory, as its index describes it.
struct PageRef {
  std::string hash;
  std::string first;          // the page's first name
  std::uint64_t count = 0;    // entries
  std::uint64_t files = 0;    // the sums of the entries' figures
  std::uint64_t bytes = 0;
};

struct Chunk {
  std::string hash;
  std::uint64_t size = 0;
};

// (manifest.cc)
std::string serialize(const Manifest& m);
PageRef page_ref(std::string hash, const Manifest& m);
// Where a page ends (part of the format).
bool ends_page(const std::string& name, std::size_t entries);
std::string index_text(const std::vector<PageRef>& pages);

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

// ---- objects ----------------------------------------------------------------

// The objects of portable/objects/: reads them and tells which exist. The
// members that read directories are in manifest.cc; chunks() in chunking.cc.
class Objects {
 public:
  explicit Objects(UniqueFd dir) : dir_(std::move(dir)) {}
  int fd() const { return dir_.get(); }

  bool exists(const std::string& hash) const;
  // Throws kCorruption when the object is missing; `what` names the tree
  // or file it was needed for.
  UniqueFd open(const std::string& hash, std::string_view what) const;
  std::string read(const std::string& hash, std::string_view what) const;

  // A directory object: a manifest (its entries) or an index (its pages).
  struct Dir {
    Manifest entries;
    std::vector<PageRef> pages;  // empty for a manifest
  };
  Dir dir(const std::string& hash, std::string_view what) const;

  // Page i of index `index`, checked against what the index says of it.
  Manifest page(const std::string& index, const std::vector<PageRef>& pages, std::size_t i,
                std::string_view what) const;

  // A directory's entries, from its manifest or from all its pages (then
  // listed in *pages, when given).
  Manifest manifest(const std::string& hash, std::string_view what,
                    std::vector<std::string>* pages = nullptr) const;

  // Asks the kernel to start reading the pages (those not `skip`ped), so
  // that on a cold cache they arrive in parallel rather than one seek at a
  // time.
  void prefetch(const std::vector<PageRef>& pages, const std::vector<bool>& skip) const;

  std::vector<Chunk> chunks(const std::string& hash, std::string_view what) const;

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
  ~ObjectWriter();

  // Stores `data`; returns its hash.
  std::string put(std::string_view data);

  // Makes every object put so far durable under its name. A few objects are
  // fsync'ed one by one; many, with two syncs of the file system (cheaper
  // than thousands of fsyncs).
  void commit();

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

// Stores a directory: one manifest, or pages and their index. Unchanged
// pages have unchanged hashes, so only changed ones are new objects.
// (manifest.cc)
std::string write_dir(const Manifest& m, ObjectWriter& w);

// ---- content (chunking.cc) --------------------------------------------------

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
               const std::function<bool(std::uint64_t)>& stop = {});

  const std::vector<Chunk>& chunks() const { return chunks_; }

 private:
  static constexpr std::size_t kBuf = 4 * kMaxChunk;
  std::unique_ptr<char[]> buf_;
  std::vector<Chunk> chunks_;
};

ContentWriter::ReadFn reader_of(Source& src);

// The entry of `old` with the bytes of `add` written at `offset` (<= its
// size; at the size: appended). Re-chunks from the start of the old chunk
// that holds `offset` until a cut falls on an old chunk boundary behind
// the written bytes, and keeps the old chunks around that: the result is
// chunked exactly as a fresh upload of the whole new file would be (so it
// has the same hash and shares its chunks), at the cost of what changed.
PEntry spliced(const Objects& objects, const PEntry& old, std::uint64_t offset, int add_fd,
               std::uint64_t add_size, ObjectWriter& w, ContentWriter& content,
               const std::string& path);

// ---- trees (portable_tree.cc) -----------------------------------------------

// A tree: read lazily from its manifests; changed in memory; written back by
// write(), which stores only the manifests of directories that changed.
class PTree final : public TreeReader {
 public:
  PTree(const Objects& objects, std::string root, std::string what);

  // ---- TreeReader
  std::optional<Entry> stat(const std::string& path) override;
  std::vector<Entry> list(const std::string& dir) override;
  std::unique_ptr<FileReader> open_file(const std::string& path) override;

  // ---- entries
  std::optional<PEntry> get(const std::string& path);

  // Sets the file at `path`, creating its parent directories. Throws
  // kInvalidArgument when a parent is a file or path is a directory.
  void set_file(const std::string& path, const PEntry& e);

  // Makes directory `path` and its parents. Throws kInvalidArgument when a
  // file is in the way.
  void make_dir(const std::string& path) { make_dirs(path); }

  // Removes a file or directory; returns what it held (0 when absent).
  TreeStats remove(const std::string& path);

  // Stores the changed manifests; returns the root's hash.
  std::string write(ObjectWriter& w);

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

  void load(Node& n);
  static std::size_t page_of(const Node& n, const std::string& name);
  void load_page(Node& n, std::size_t i);
  void load_all(Node& n);
  const PEntry* lookup(Node& n, const std::string& name);
  void touch(Node& n, const std::string& name);
  Entry to_entry(Node& parent, const std::string& path, const std::string& name, const PEntry& e);
  Node* find_dir(const std::string& dir, bool for_change = false);
  bool is_file(const std::string& path);
  Node* make_dirs(const std::string& dir);
  TreeStats write_node(Node& n, ObjectWriter& w, std::int64_t now);
  std::string write_pages(Node& n, ObjectWriter& w);

  const Objects& objects_;
  std::string what_;
  Node root_;
  std::int64_t root_mtime_ = 0;
};

// ---- refs (portable_backend.cc) ---------------------------------------------

std::string ref_text(const std::string& root, std::int64_t mtime);

struct TreeRef {
  std::string root;
  std::int64_t mtime_ns = 0;
};

// The ref file `name` in dirfd, or nullopt when there is none. Throws
// kCorruption when it is unreadable; `what` names the branch or commit.
std::optional<TreeRef> read_ref(int dirfd, const std::string& name, std::string_view what);

// A shared (writer) or exclusive (gc) hold on portable/gc.lock.
UniqueFd gc_lock(int top, bool exclusive);

// ---- the backend ------------------------------------------------------------

// Its members are defined by concern: trees, branches and commits in
// portable_backend.cc; staging, publish and work trees in staging.cc; gc
// and fsck in gc_check.cc.
class PortableBackend final : public Backend {
 public:
  explicit PortableBackend(int store_fd);

  std::string_view name() const override;

  std::unique_ptr<TreeReader> open_commit(const std::string& id) override;
  std::unique_ptr<TreeReader> open_branch(const std::string& branch) override;
  bool has_commit_tree(const std::string& id) override;
  bool has_branch_tree(const std::string& b) override;
  std::vector<std::string> list_commit_trees() override;
  std::vector<std::string> list_branch_trees() override;

  void create_branch_tree(const std::string& branch, const std::string& from) override;
  void delete_branch_tree(const std::string& branch) override;
  void reset_branch_tree(const std::string& branch, const std::string& id) override;

  std::unique_ptr<Staging> stage(const std::string& branch, StageKind kind) override;
  StatsDelta publish(const std::string& branch, Staging& staging, const std::string& path,
                     const Placement& where) override;
  TreeStats remove(const std::string& branch, const std::string& path) override;
  // Uploads leave nothing in the branch: temporary objects are gc's.
  void sweep_staging(const std::string&) override {}

  void snapshot(const std::string& branch, const std::string& id) override;
  std::unique_ptr<WorkTree> work_tree(const std::string& base, const std::string& id) override;
  void freeze(WorkTree& tree, const std::string& id) override;
  void delete_commit_tree(const std::string& id) override;
  // Nothing of a work tree is on disk until freeze but receive's scratch
  // files (and objects, which gc removes when nothing references them).
  void discard_work(const std::string& id) override;

  GcReport gc() override;
  void check(FsckReport& report, bool repair) override;

 private:
  std::unique_ptr<TreeReader> tree(const TreeRef& r, const std::string& what);
  TreeRef must_ref(int dir, const std::string& name, const std::string& what);
  TreeRef empty_tree();
  std::vector<std::string> ref_names(int dir);
  void save_branch(const std::string& branch, PTree& t, ObjectWriter& w);

  UniqueFd top_;
  Objects objects_;
  UniqueFd branches_, commits_;
};

}  // namespace pfs::detail::portable
