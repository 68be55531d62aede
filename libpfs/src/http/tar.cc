#include "tar.h"

#include <locale.h>

#include <archive.h>
#include <archive_entry.h>

#include "fail.h"
#include "lazy_lib.h"

namespace pfs::detail {

PFS_LAZY_FN(archive_lib, archive_entry_pathname_utf8)
PFS_LAZY_FN(archive_lib, archive_entry_set_pathname_utf8)
PFS_LAZY_FN(archive_lib, archive_entry_filetype)
PFS_LAZY_FN(archive_lib, archive_entry_free)
PFS_LAZY_FN(archive_lib, archive_entry_mtime)
PFS_LAZY_FN(archive_lib, archive_entry_mtime_nsec)
PFS_LAZY_FN(archive_lib, archive_entry_new)
PFS_LAZY_FN(archive_lib, archive_entry_pathname)
PFS_LAZY_FN(archive_lib, archive_entry_set_filetype)
PFS_LAZY_FN(archive_lib, archive_entry_set_mtime)
PFS_LAZY_FN(archive_lib, archive_entry_set_perm)
PFS_LAZY_FN(archive_lib, archive_entry_set_size)
PFS_LAZY_FN(archive_lib, archive_entry_size)
PFS_LAZY_FN(archive_lib, archive_entry_size_is_set)
PFS_LAZY_FN(archive_lib, archive_error_string)
PFS_LAZY_FN(archive_lib, archive_read_data)
PFS_LAZY_FN(archive_lib, archive_read_free)
PFS_LAZY_FN(archive_lib, archive_read_new)
PFS_LAZY_FN(archive_lib, archive_read_next_header)
PFS_LAZY_FN(archive_lib, archive_read_open)
PFS_LAZY_FN(archive_lib, archive_read_support_format_tar)
PFS_LAZY_FN(archive_lib, archive_write_close)
PFS_LAZY_FN(archive_lib, archive_write_data)
PFS_LAZY_FN(archive_lib, archive_write_fail)
PFS_LAZY_FN(archive_lib, archive_write_free)
PFS_LAZY_FN(archive_lib, archive_write_header)
PFS_LAZY_FN(archive_lib, archive_write_new)
PFS_LAZY_FN(archive_lib, archive_write_open)
PFS_LAZY_FN(archive_lib, archive_write_set_bytes_in_last_block)
PFS_LAZY_FN(archive_lib, archive_write_set_bytes_per_block)
PFS_LAZY_FN(archive_lib, archive_write_set_format_pax_restricted)


namespace {

la_ssize_t write_cb(struct archive*, void* self, const void* buf, size_t n) {
  auto* out = static_cast<TarWriter::Out*>(self);
  return (*out)(static_cast<const char*>(buf), n) ? static_cast<la_ssize_t>(n) : -1;
}

void set_mtime(struct archive_entry* e, std::int64_t ns) {
  archive_entry_set_mtime(e, ns / 1000000000, ns % 1000000000);
}

}  // namespace

namespace {

// archive_write_header with this thread's character type set to UTF-8.
// NOTE: libarchive converts names through the locale; in the C locale (a
// server's) it cannot convert a UTF-8 name, and its pax writer then reads
// a NULL name: a tar of a directory holding "été" crashed the server.
// uselocale() changes this thread only, for this call only.
int write_header(struct archive* a, struct archive_entry* e) {
  locale_t utf8 = ::newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
  locale_t old = utf8 ? ::uselocale(utf8) : nullptr;
  int rc = archive_write_header(a, e);
  if (utf8) {
    ::uselocale(old);
    ::freelocale(utf8);
  }
  return rc;
}

}  // namespace

TarWriter::TarWriter(Out out) : out_(std::move(out)), a_(archive_write_new()) {
  if (!a_) fail(ErrorCode::kInternal, "archive_write_new failed");
  // pax: long paths, exact sizes and UTF-8 names; no padding to blocks, so
  // bytes go out as they are made.
  archive_write_set_format_pax_restricted(a_);
  archive_write_set_bytes_per_block(a_, 0);
  archive_write_set_bytes_in_last_block(a_, 1);
  try {
    check(archive_write_open(a_, &out_, nullptr, write_cb, nullptr), "open");
  } catch (...) {  // no destructor runs for a constructor that throws
    archive_write_free(a_);
    throw;
  }
}

TarWriter::~TarWriter() {
  if (!finished_) archive_write_fail(a_);
  archive_write_free(a_);
}

void TarWriter::check(int rc, const char* what) {
  if (rc >= ARCHIVE_WARN) return;
  failf(ErrorCode::kIo, "writing a tar stream ({}): {}", what,
        archive_error_string(a_) ? archive_error_string(a_) : "the receiver went away");
}

void TarWriter::add_dir(const std::string& path, std::int64_t mtime_ns) {
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname_utf8(e, path.c_str());
  archive_entry_set_filetype(e, AE_IFDIR);
  archive_entry_set_perm(e, 0755);
  set_mtime(e, mtime_ns);
  int rc = write_header(a_, e);
  archive_entry_free(e);
  check(rc, "directory header");
}

void TarWriter::begin_file(const std::string& path, std::uint64_t size, std::int64_t mtime_ns) {
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname_utf8(e, path.c_str());
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, static_cast<la_int64_t>(size));
  set_mtime(e, mtime_ns);
  int rc = write_header(a_, e);
  archive_entry_free(e);
  check(rc, "file header");
}

void TarWriter::data(const char* p, std::size_t n) {
  while (n > 0) {
    la_ssize_t w = archive_write_data(a_, p, n);
    if (w <= 0) check(ARCHIVE_FATAL, "file data");
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

void TarWriter::finish() {
  check(archive_write_close(a_), "end");
  finished_ = true;
}

long tar_read_cb(struct archive*, void* self, const void** buf) {
  auto* r = static_cast<TarReader*>(self);
  r->buf_.resize(256 * 1024);
  auto n = r->in_.read(std::span<char>(r->buf_.data(), r->buf_.size()));
  if (!n) {
    r->in_error_ = n.error();
    return -1;
  }
  *buf = r->buf_.data();
  return static_cast<long>(*n);
}

namespace {
la_ssize_t read_cb(struct archive* a, void* self, const void** buf) { return tar_read_cb(a, self, buf); }
}  // namespace

TarReader::TarReader(Source& in) : in_(in), a_(archive_read_new()) {
  if (!a_) fail(ErrorCode::kInternal, "archive_read_new failed");
  archive_read_support_format_tar(a_);  // tar only: no other format, no compression
  if (archive_read_open(a_, this, nullptr, read_cb, nullptr) != ARCHIVE_OK) {
    try {
      fail_archive("open");
    } catch (...) {  // no destructor runs for a constructor that throws
      archive_read_free(a_);
      throw;
    }
  }
}

TarReader::~TarReader() { archive_read_free(a_); }

void TarReader::fail_archive(const char* what) {
  if (in_error_) throw Fail{*in_error_};
  failf(ErrorCode::kInvalidArgument, "the body is not a valid tar stream ({}: {})", what,
        archive_error_string(a_) ? archive_error_string(a_) : "unreadable");
}

bool TarReader::next(Entry& e) {
  struct archive_entry* ae = nullptr;
  int rc = archive_read_next_header(a_, &ae);
  if (rc == ARCHIVE_EOF) return false;
  if (rc < ARCHIVE_WARN) fail_archive("header");
  const char* p = archive_entry_pathname_utf8(ae);
  if (!p) p = archive_entry_pathname(ae);
  e.path = p ? p : "";
  switch (archive_entry_filetype(ae)) {
    case AE_IFREG:
      e.type = Entry::Type::kFile;
      break;
    case AE_IFDIR:
      e.type = Entry::Type::kDir;
      break;
    default:
      e.type = Entry::Type::kOther;
  }
  e.size = archive_entry_size_is_set(ae) ? static_cast<std::uint64_t>(archive_entry_size(ae)) : 0;
  e.mtime_ns = static_cast<std::int64_t>(archive_entry_mtime(ae)) * 1000000000 +
               archive_entry_mtime_nsec(ae);
  return true;
}

std::size_t TarReader::read(std::span<char> buf) {
  la_ssize_t n = archive_read_data(a_, buf.data(), buf.size());
  if (n < 0) fail_archive("file data");
  return static_cast<std::size_t>(n);
}

Result<std::size_t> TarReader::EntrySource::read(std::span<char> buf) {
  return guard([&] { return r_.read(buf); });
}

}  // namespace pfs::detail
