// pfs/io.h: where file bytes come from (Source) and go to (Sink). File data
// always streams through these; nothing holds a whole file in memory.
#pragma once

#include <pfs/export.h>

#include <cstddef>
#include <memory>
#include <span>
#include <string>

#include <pfs/result.h>

namespace pfs {

// A stream of bytes to store. Not thread-safe; use from one thread.
class PFS_EXPORT Source {
 public:
  virtual ~Source() = default;
  // Reads up to buf.size() bytes; returns 0 at the end. Errors: kIo.
  virtual Result<std::size_t> read(std::span<char> buf) = 0;
  // A file descriptor to read from instead, for zero-copy (reflink,
  // copy_file_range, splice), or -1. A Source that returns one is read only
  // through it, from its current offset.
  virtual int fd() const { return -1; }

  // Reads from `fd` (not owned, not closed).
  static std::unique_ptr<Source> from_fd(int fd);
  // Reads a copy of `bytes`.
  static std::unique_ptr<Source> from_string(std::string bytes);
};

// A destination for file bytes. Not thread-safe.
class PFS_EXPORT Sink {
 public:
  virtual ~Sink() = default;
  // Writes all of `data`. Errors: kIo.
  virtual Result<void> write(std::span<const char> data) = 0;
  // A file descriptor to write to instead, for zero-copy, or -1.
  virtual int fd() const { return -1; }

  // Writes to `fd` (not owned, not closed).
  static std::unique_ptr<Sink> to_fd(int fd);
  // Appends to *out, which must outlive the sink.
  static std::unique_ptr<Sink> to_string(std::string* out);
};

}  // namespace pfs
