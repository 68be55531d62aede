// chunking.cc: file content in the portable backend: content-defined chunks
// (a gear rolling hash, as in FastCDC), chunk lists, and re-chunking only
// around the bytes an append or a write-at changed.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "portable.h"

namespace pfs::detail::portable {
namespace {

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

// ---- chunk lists --------------------------------------------------------------

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

}  // namespace

std::vector<Chunk> Objects::chunks(const std::string& hash, std::string_view what) const {
  return parse_chunks(hash, read(hash, what));
}

// ---- storing content ------------------------------------------------------------

PEntry ContentWriter::store(ObjectWriter& w, const ReadFn& read,
                            const std::function<bool(std::uint64_t)>& stop) {
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

// ---- changing content in place ----------------------------------------------------

PEntry spliced(const Objects& objects, const PEntry& old, std::uint64_t offset, int add_fd,
               std::uint64_t add_size, ObjectWriter& w, ContentWriter& content,
               const std::string& path) {
  std::string what = fmt::format("\"{}\"", path);
  auto chunks_of = [&](const PEntry& e) {
    return e.type == 'c' ? objects.chunks(e.hash, what) : std::vector<Chunk>{{e.hash, e.size}};
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
      if (!fd && !g.hash.empty()) fd = objects.open(g.hash, what);
      int from_fd = g.hash.empty() ? add_fd : fd.get();
      std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(n, g.len - in_seg));
      ssize_t r = ::pread(from_fd, p, want, static_cast<off_t>(g.off + in_seg));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) {
        int err = errno;
        fail_errno(err, g.hash.empty()
                            ? fmt::format("read the bytes staged for {} (a temporary file)", what)
                            : fmt::format("read object {} of {}", g.hash, what));
      }
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

}  // namespace pfs::detail::portable
