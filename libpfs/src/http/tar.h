// tar.h: tar streams of files (pax format, via libarchive), for moving
// directories over HTTP in one request: a put-file -r upload, a get-file -r
// download, a glob read with ?format=tar.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include <pfs/io.h>

struct archive;

namespace pfs::detail {

// Writes a tar stream; every byte goes to `out` as it is made (false from
// out aborts with kIo). Entry paths are '/'-separated, relative, UTF-8.
class TarWriter {
 public:
  using Out = std::function<bool(const char* data, std::size_t n)>;
  explicit TarWriter(Out out);
  ~TarWriter();
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;

  void add_dir(const std::string& path, std::int64_t mtime_ns);
  // A file's header; its `size` bytes follow through data().
  void begin_file(const std::string& path, std::uint64_t size, std::int64_t mtime_ns);
  void data(const char* p, std::size_t n);
  // The end of the archive.
  void finish();

 private:
  void check(int rc, const char* what);
  Out out_;
  struct archive* a_;
  bool finished_ = false;
};

// Reads a tar stream from a Source. Throws kInvalidArgument for a malformed
// stream (and passes the Source's own errors on).
class TarReader {
 public:
  struct Entry {
    std::string path;  // as in the archive (check it before use)
    enum class Type { kFile, kDir, kOther } type = Type::kOther;
    std::uint64_t size = 0;
    std::int64_t mtime_ns = 0;
  };
  explicit TarReader(Source& in);
  ~TarReader();
  TarReader(const TarReader&) = delete;
  TarReader& operator=(const TarReader&) = delete;

  // The next entry, or false at the end.
  bool next(Entry& e);
  // The current file's bytes: up to buf.size(), 0 at its end.
  std::size_t read(std::span<char> buf);
  // The current entry's bytes as a Source.
  Source& data() { return entry_source_; }

 private:
  class EntrySource final : public Source {
   public:
    explicit EntrySource(TarReader& r) : r_(r) {}
    Result<std::size_t> read(std::span<char> buf) override;

   private:
    TarReader& r_;
  };
  void fail_archive(const char* what);
  Source& in_;
  struct archive* a_;
  std::string buf_;
  std::optional<Error> in_error_;  // the Source's own error, passed on as is
  EntrySource entry_source_{*this};
  friend long tar_read_cb(struct archive*, void*, const void**);
};

}  // namespace pfs::detail
