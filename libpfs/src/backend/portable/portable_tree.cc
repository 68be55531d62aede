// portable_tree.cc: trees of the portable backend: a TreeReader over
// directory manifests, read lazily and changed in memory, and a FileReader
// over a file's chunks.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <iterator>

#include "names.h"
#include "portable.h"

namespace pfs::detail::portable {
namespace {

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

}  // namespace

// ---- trees ------------------------------------------------------------------

PTree::PTree(const Objects& objects, std::string root, std::string what)
    : objects_(objects), what_(std::move(what)) {
  root_.hash = std::move(root);
}

// ---- TreeReader

std::optional<Entry> PTree::stat(const std::string& path) {
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

std::vector<Entry> PTree::list(const std::string& dir) {
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

std::unique_ptr<FileReader> PTree::open_file(const std::string& path) {
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

std::optional<PEntry> PTree::get(const std::string& path) {
  if (path.empty()) return std::nullopt;
  Node* dir = find_dir(path_parent(path));
  if (!dir) return std::nullopt;
  const PEntry* e = lookup(*dir, path_base(path));
  if (!e) return std::nullopt;
  return *e;
}

void PTree::set_file(const std::string& path, const PEntry& e) {
  Node* dir = make_dirs(path_parent(path));
  std::string name = path_base(path);
  touch(*dir, name);
  auto it = dir->entries.find(name);
  if (it != dir->entries.end() && it->second.is_dir())
    failf(ErrorCode::kInvalidArgument, "\"{}\" is a directory; a file cannot replace it", path);
  dir->entries[name] = e;
  dir->kids.erase(name);
}

TreeStats PTree::remove(const std::string& path) {
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

std::string PTree::write(ObjectWriter& w) {
  std::int64_t now = now_ns();
  write_node(root_, w, now);
  return root_.hash;
}

// ---- nodes and pages

void PTree::load(Node& n) {
  if (n.loaded) return;
  auto d = objects_.dir(n.hash, what_);
  n.entries = std::move(d.entries);
  n.pages.clear();
  for (auto& r : d.pages) n.pages.push_back({std::move(r), false, false});
  n.loaded = true;
}

// The page whose range holds `name`.
std::size_t PTree::page_of(const Node& n, const std::string& name) {
  auto it = std::upper_bound(n.pages.begin(), n.pages.end(), name,
                             [](const std::string& a, const Page& p) { return a < p.ref.first; });
  return it == n.pages.begin() ? 0 : static_cast<std::size_t>(it - n.pages.begin()) - 1;
}

void PTree::load_page(Node& n, std::size_t i) {
  if (n.pages[i].loaded) return;
  std::vector<PageRef> refs;
  refs.reserve(n.pages.size());
  for (const auto& p : n.pages) refs.push_back(p.ref);  // for the checks
  Manifest m = objects_.page(n.hash, refs, i, what_);
  n.entries.insert(std::make_move_iterator(m.begin()), std::make_move_iterator(m.end()));
  n.pages[i].loaded = true;
}

void PTree::load_all(Node& n) {
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
const PEntry* PTree::lookup(Node& n, const std::string& name) {
  if (!n.pages.empty()) load_page(n, page_of(n, name));
  auto it = n.entries.find(name);
  return it == n.entries.end() ? nullptr : &it->second;
}

// Makes n.entries hold what there is of `name`, to be changed.
void PTree::touch(Node& n, const std::string& name) {
  if (n.pages.empty()) return;
  std::size_t i = page_of(n, name);
  load_page(n, i);
  n.pages[i].dirty = true;
}

Entry PTree::to_entry(Node& parent, const std::string& path, const std::string& name,
                      const PEntry& e) {
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
PTree::Node* PTree::find_dir(const std::string& dir, bool for_change) {
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

bool PTree::is_file(const std::string& path) {
  auto e = get(path);
  return e && !e->is_dir();
}

// Like mkdir -p; marks the way dirty.
PTree::Node* PTree::make_dirs(const std::string& dir) {
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

// ---- writing

// Returns the node's figures; stores its manifest if it changed.
TreeStats PTree::write_node(Node& n, ObjectWriter& w, std::int64_t now) {
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
std::string PTree::write_pages(Node& n, ObjectWriter& w) {
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

}  // namespace pfs::detail::portable
