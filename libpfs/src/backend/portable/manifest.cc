// manifest.cc: directories in the portable backend: manifests, the pages of
// large directories and their index; parsed strictly, written canonically.
#include <fcntl.h>
#include <unistd.h>

#include <iterator>

#include "portable.h"

namespace pfs::detail::portable {
namespace {

// FNV-1a, 64 bits: where pages end (part of the format).
std::uint64_t name_hash(std::string_view name) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
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

std::string index_line(const PageRef& r) {
  return fmt::format("{} {} {} {} {}:{}\n", r.hash, r.count, r.files, r.bytes, r.first.size(),
                     r.first);
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

}  // namespace

// ---- writing directories ----------------------------------------------------

std::string serialize(const Manifest& m) {
  std::string out = kTreeMagic;
  for (const auto& [name, e] : m)
    out += fmt::format("{} {} {} {} {} {}:{}\n", e.type, e.hash, e.size, e.files, e.mtime_ns,
                       name.size(), name);
  return out;
}

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

bool ends_page(const std::string& name, std::size_t entries) {
  return name_hash(name) % kPageSpread == 0 || entries == kLeafMax;
}

std::string index_text(const std::vector<PageRef>& pages) {
  std::string text = kDirMagic;
  for (const auto& r : pages) text += index_line(r);
  return text;
}

std::string write_dir(const Manifest& m, ObjectWriter& w) {
  if (m.size() <= kLeafMax) return w.put(serialize(m));
  return w.put(index_text(paginate(m, [&](const std::string& text) { return w.put(text); })));
}

// ---- reading directories ----------------------------------------------------

Objects::Dir Objects::dir(const std::string& hash, std::string_view what) const {
  std::string text = read(hash, what);
  std::string_view magic = kDirMagic;
  Dir d;
  if (std::string_view(text).substr(0, magic.size()) != magic)
    d.entries = parse_manifest(hash, text);
  else
    d.pages = parse_index(hash, std::string_view(text).substr(magic.size()));
  return d;
}

Manifest Objects::page(const std::string& index, const std::vector<PageRef>& pages, std::size_t i,
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

Manifest Objects::manifest(const std::string& hash, std::string_view what,
                           std::vector<std::string>* pages) const {
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

void Objects::prefetch(const std::vector<PageRef>& pages, const std::vector<bool>& skip) const {
  for (std::size_t i = 0; i < pages.size(); i++) {
    if (i < skip.size() && skip[i]) continue;
    UniqueFd fd(::openat(dir_.get(), object_path(pages[i].hash).c_str(),
                         O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (fd) ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_WILLNEED);
  }
}

}  // namespace pfs::detail::portable
