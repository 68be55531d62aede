// send_stream_writer.cc: StreamWriter, which writes a btrfs send stream
// (version 1) in large buffered pieces.
#include "send_stream.h"

#include <algorithm>

#include "fail.h"
#include "send_stream_bytes.h"

namespace pfs::detail::stream {
namespace {

constexpr std::size_t kFlushAt = 256 * 1024;

// Seals the command that starts at buf[start]: its length and checksum.
void seal(std::string& buf, std::size_t start) {
  std::size_t len = buf.size() - start - kCommandHeaderSize;
  if (len > UINT32_MAX)
    failf(ErrorCode::kInvalidArgument,
          "send stream: a {} command of {} bytes does not fit the 32-bit length of its header",
          cmd_name(static_cast<Cmd>(get16(buf.data() + start + 4))), len);
  char* h = buf.data() + start;
  put32_at(h, static_cast<std::uint32_t>(len));
  put32_at(h + 6, 0);
  put32_at(h + 6, crc32c(0, h, buf.size() - start));
}

}  // namespace

StreamWriter::StreamWriter(Sink& out) : out_(out) {
  buf_.reserve(kFlushAt + kMaxCommand);
  buf_.append(kMagic);
  char v[4];
  put32_at(v, kVersion);
  buf_.append(v, 4);
}

void StreamWriter::begin(Cmd c) {
  cmd_start_ = buf_.size();
  char h[kCommandHeaderSize] = {};
  put16_at(h + 4, static_cast<std::uint16_t>(c));
  buf_.append(h, kCommandHeaderSize);
}

void StreamWriter::put(Attr a, const void* p, std::size_t n) {
  if (n > UINT16_MAX) {
    buf_.resize(cmd_start_);  // drop the half-built command
    failf(ErrorCode::kInvalidArgument, "send stream: attribute {} is {} bytes long (at most {})",
          attr_name(a), n, UINT16_MAX);
  }
  char h[kAttrHeaderSize];
  put16_at(h, static_cast<std::uint16_t>(a));
  put16_at(h + 2, static_cast<std::uint16_t>(n));
  buf_.append(h, kAttrHeaderSize);
  if (n > 0) buf_.append(static_cast<const char*>(p), n);
}

void StreamWriter::put_u64(Attr a, std::uint64_t v) {
  char b[8];
  put64_at(b, v);
  put(a, b, 8);
}

void StreamWriter::put_time(Attr a, const Timespec& t) {
  char b[12];
  put64_at(b, t.sec);
  put32_at(b + 8, t.nsec);
  put(a, b, 12);
}

void StreamWriter::finish() {
  std::size_t size = buf_.size() - cmd_start_;
  if (size > kMaxCommand) {
    auto c = static_cast<Cmd>(get16(buf_.data() + cmd_start_ + 4));
    buf_.resize(cmd_start_);
    failf(ErrorCode::kInvalidArgument,
          "send stream: a {} command would be {} bytes long (at most {}); a path is too long",
          cmd_name(c), size, kMaxCommand);
  }
  seal(buf_, cmd_start_);
  if (buf_.size() >= kFlushAt) flush();
}

void StreamWriter::flush() {
  if (buf_.empty()) return;
  unwrap(out_.write(std::span<const char>(buf_.data(), buf_.size())));
  written_ += buf_.size();
  buf_.clear();
}

void StreamWriter::subvol(std::string_view path, const Uuid& uuid, std::uint64_t ctransid) {
  begin(Cmd::kSubvol);
  put_path(Attr::kPath, path);
  put(Attr::kUuid, uuid.data(), uuid.size());
  put_u64(Attr::kCtransid, ctransid);
  finish();
}

void StreamWriter::snapshot(std::string_view path, const Uuid& uuid, std::uint64_t ctransid,
                            const Uuid& clone_uuid, std::uint64_t clone_ctransid) {
  begin(Cmd::kSnapshot);
  put_path(Attr::kPath, path);
  put(Attr::kUuid, uuid.data(), uuid.size());
  put_u64(Attr::kCtransid, ctransid);
  put(Attr::kCloneUuid, clone_uuid.data(), clone_uuid.size());
  put_u64(Attr::kCloneCtransid, clone_ctransid);
  finish();
}

void StreamWriter::mkfile(std::string_view path, std::uint64_t ino) {
  begin(Cmd::kMkfile);
  put_path(Attr::kPath, path);
  put_u64(Attr::kIno, ino);
  finish();
}

void StreamWriter::mkdir(std::string_view path, std::uint64_t ino) {
  begin(Cmd::kMkdir);
  put_path(Attr::kPath, path);
  put_u64(Attr::kIno, ino);
  finish();
}

void StreamWriter::rename(std::string_view from, std::string_view to) {
  begin(Cmd::kRename);
  put_path(Attr::kPath, from);
  put_path(Attr::kPathTo, to);
  finish();
}

void StreamWriter::unlink(std::string_view path) {
  begin(Cmd::kUnlink);
  put_path(Attr::kPath, path);
  finish();
}

void StreamWriter::rmdir(std::string_view path) {
  begin(Cmd::kRmdir);
  put_path(Attr::kPath, path);
  finish();
}

void StreamWriter::write(std::string_view path, std::uint64_t offset, std::span<const char> data) {
  while (!data.empty()) {
    std::size_t n = std::min(data.size(), kMaxWrite);
    begin(Cmd::kWrite);
    put_path(Attr::kPath, path);
    put_u64(Attr::kFileOffset, offset);
    put(Attr::kData, data.data(), n);
    finish();
    offset += n;
    data = data.subspan(n);
  }
}

void StreamWriter::truncate(std::string_view path, std::uint64_t size) {
  begin(Cmd::kTruncate);
  put_path(Attr::kPath, path);
  put_u64(Attr::kSize, size);
  finish();
}

void StreamWriter::chmod(std::string_view path, std::uint64_t mode) {
  begin(Cmd::kChmod);
  put_path(Attr::kPath, path);
  put_u64(Attr::kMode, mode);
  finish();
}

void StreamWriter::chown(std::string_view path, std::uint64_t uid, std::uint64_t gid) {
  begin(Cmd::kChown);
  put_path(Attr::kPath, path);
  put_u64(Attr::kUid, uid);
  put_u64(Attr::kGid, gid);
  finish();
}

void StreamWriter::utimes(std::string_view path, const Timespec& atime, const Timespec& mtime,
                          const Timespec& ctime) {
  begin(Cmd::kUtimes);
  put_path(Attr::kPath, path);
  put_time(Attr::kAtime, atime);
  put_time(Attr::kMtime, mtime);
  put_time(Attr::kCtime, ctime);
  finish();
}

void StreamWriter::end() {
  begin(Cmd::kEnd);
  finish();
  flush();
}

void StreamWriter::raw(std::uint16_t cmd,
                       const std::vector<std::pair<std::uint16_t, std::string>>& attrs) {
  cmd_start_ = buf_.size();
  char h[kCommandHeaderSize] = {};
  put16_at(h + 4, cmd);
  buf_.append(h, kCommandHeaderSize);
  for (const auto& [type, bytes] : attrs) {
    if (bytes.size() > UINT16_MAX) {
      buf_.resize(cmd_start_);
      failf(ErrorCode::kInvalidArgument, "send stream: raw attribute {} is {} bytes long", type,
            bytes.size());
    }
    char ah[kAttrHeaderSize];
    put16_at(ah, type);
    put16_at(ah + 2, static_cast<std::uint16_t>(bytes.size()));
    buf_.append(ah, kAttrHeaderSize);
    buf_.append(bytes);
  }
  seal(buf_, cmd_start_);
  if (buf_.size() >= kFlushAt) flush();
}

}  // namespace pfs::detail::stream
