// send_stream_reader.cc: StreamReader, which reads a btrfs send stream
// (version 1) and checks every command.
//
// NOTE: the reader treats every byte as hostile: it allocates one fixed
// buffer (kBufSize, more than a command can hold), never sizes anything by a
// length from the stream beyond kMaxCommand, and checks the checksum before
// it looks at a single attribute.
#include "send_stream.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "fail.h"
#include "send_stream_bytes.h"

namespace pfs::detail::stream {
namespace {

constexpr std::size_t kBufSize = 256 * 1024;
constexpr std::uint16_t kLastCmd = static_cast<std::uint16_t>(Cmd::kUpdateExtent);
constexpr std::uint16_t kLastAttr = static_cast<std::uint16_t>(Attr::kCloneLen);
constexpr std::uint32_t kNsecPerSec = 1000000000;
constexpr std::size_t kMaxXattrName = 255;  // XATTR_NAME_MAX

static_assert(kBufSize >= 2 * kMaxCommand, "a command must always fit the read buffer");
static_assert(kMaxWrite + kMaxPath + 64 <= kMaxCommand, "a full write must fit one command");

constexpr std::uint32_t bit(Attr a) { return std::uint32_t{1} << static_cast<unsigned>(a); }

// The attributes each command must carry, indexed by command number.
constexpr std::uint32_t required(Cmd c) {
  using A = Attr;
  switch (c) {
    case Cmd::kSubvol:
      return bit(A::kPath) | bit(A::kUuid) | bit(A::kCtransid);
    case Cmd::kSnapshot:
      return bit(A::kPath) | bit(A::kUuid) | bit(A::kCtransid) | bit(A::kCloneUuid) |
             bit(A::kCloneCtransid);
    case Cmd::kMkfile:
    case Cmd::kMkdir:
    case Cmd::kMkfifo:
    case Cmd::kMksock:
      return bit(A::kPath) | bit(A::kIno);
    case Cmd::kMknod:
      return bit(A::kPath) | bit(A::kIno) | bit(A::kMode) | bit(A::kRdev);
    case Cmd::kSymlink:
      return bit(A::kPath) | bit(A::kIno) | bit(A::kPathLink);
    case Cmd::kRename:
      return bit(A::kPath) | bit(A::kPathTo);
    case Cmd::kLink:
      return bit(A::kPath) | bit(A::kPathLink);
    case Cmd::kUnlink:
    case Cmd::kRmdir:
      return bit(A::kPath);
    case Cmd::kSetXattr:
      return bit(A::kPath) | bit(A::kXattrName) | bit(A::kXattrData);
    case Cmd::kRemoveXattr:
      return bit(A::kPath) | bit(A::kXattrName);
    case Cmd::kWrite:
      return bit(A::kPath) | bit(A::kFileOffset) | bit(A::kData);
    case Cmd::kClone:
      return bit(A::kPath) | bit(A::kFileOffset) | bit(A::kCloneLen) | bit(A::kCloneUuid) |
             bit(A::kCloneCtransid) | bit(A::kClonePath) | bit(A::kCloneOffset);
    case Cmd::kTruncate:
      return bit(A::kPath) | bit(A::kSize);
    case Cmd::kChmod:
      return bit(A::kPath) | bit(A::kMode);
    case Cmd::kChown:
      return bit(A::kPath) | bit(A::kUid) | bit(A::kGid);
    case Cmd::kUtimes:
      return bit(A::kPath) | bit(A::kAtime) | bit(A::kMtime) | bit(A::kCtime);
    case Cmd::kEnd:
      return 0;
    case Cmd::kUpdateExtent:
      return bit(A::kPath) | bit(A::kFileOffset) | bit(A::kSize);
  }
  return 0;
}

// NOTE: the kernel names the subvolume's root directory by the empty path,
// in the commands that change an inode's attributes (a full send always
// sends chown/chmod/utimes "" for it); no other command can name the root.
constexpr bool may_name_root(Cmd c) {
  return c == Cmd::kChown || c == Cmd::kChmod || c == Cmd::kUtimes || c == Cmd::kSetXattr ||
         c == Cmd::kRemoveXattr;
}

// A printable form of a path for messages: at most 80 bytes; control and
// non-ASCII bytes escaped, so a message is always valid UTF-8 (JSON output).
std::string shown(std::string_view p) {
  std::string out;
  for (std::size_t i = 0; i < p.size() && i < 80; ++i) {
    auto c = static_cast<unsigned char>(p[i]);
    if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
      out += fmt::format("\\x{:02x}", c);
    else
      out += static_cast<char>(c);
  }
  if (p.size() > 80) out += "...";
  return out;
}

}  // namespace

StreamReader::StreamReader(Source& in) : in_(in), buf_(kBufSize) {
  fill(kHeaderSize);
  std::size_t have = end_ - at_;
  if (have == 0)
    fail(ErrorCode::kInvalidArgument,
         "send stream: the input is empty; expected a btrfs send stream (btrfs send --proto 1)");
  std::size_t m = std::min(have, kMagic.size());
  if (std::string_view(buf_.data() + at_, m) != kMagic.substr(0, m))
    fail(ErrorCode::kInvalidArgument,
         "send stream: the input is not a btrfs send stream (no \"btrfs-stream\" magic at its "
         "start)");
  if (have < kHeaderSize)
    failf(ErrorCode::kInvalidArgument,
          "send stream: truncated header ({} of {} bytes); the stream is corrupt or truncated",
          have, kHeaderSize);
  std::uint32_t version = get32(buf_.data() + at_ + kMagic.size());
  if (version != kVersion)
    failf(ErrorCode::kInvalidArgument,
          "send stream: version {} is not supported; pfs reads version {} streams (make them with "
          "btrfs send --proto 1)",
          version, kVersion);
  at_ += kHeaderSize;
  pos_ += kHeaderSize;
}

void StreamReader::fill(std::size_t need) {
  if (end_ - at_ >= need) return;
  if (at_ > 0) {  // move the unread bytes to the front
    std::memmove(buf_.data(), buf_.data() + at_, end_ - at_);
    end_ -= at_;
    at_ = 0;
  }
  while (end_ < need && !eof_) {
    const std::size_t room = buf_.size() - end_;
    auto n = unwrap(in_.read(std::span<char>(buf_.data() + end_, room)));
    if (n > room) fail(ErrorCode::kInternal, "send stream: the input returned more than was asked");
    if (n == 0)
      eof_ = true;
    else
      end_ += n;
  }
}

void StreamReader::bad(const std::string& what) const {
  fail(ErrorCode::kInvalidArgument, "send stream: " + what);
}

bool StreamReader::next(Command& out) {
  if (ended_) return false;
  cmd_offset_ = pos_;
  const std::uint64_t index = count_;
  fill(kCommandHeaderSize);
  std::size_t have = end_ - at_;
  if (have == 0)
    bad(
        fmt::format("the stream ends at byte {} after {} commands without an end command; it is "
                    "truncated (was btrfs send interrupted?)",
                    pos_, count_));
  if (have < kCommandHeaderSize)
    bad(
        fmt::format("truncated header of command {} at byte {} ({} of {} bytes); the stream is "
                    "truncated",
                    index, cmd_offset_, have, kCommandHeaderSize));
  const char* h = buf_.data() + at_;
  const std::uint32_t len = get32(h);
  const std::uint16_t type = get16(h + 4);
  const std::uint32_t crc = get32(h + 6);
  if (type == 0 || type > kLastCmd)
    bad(
        fmt::format("unknown command type {} (command {} at byte {}); pfs reads version-1 streams "
                    "(btrfs send --proto 1), or the stream is corrupt",
                    type, index, cmd_offset_));
  const Cmd c = static_cast<Cmd>(type);
  if (len > kMaxCommand - kCommandHeaderSize)
    bad(
        fmt::format("command {} ({}) at byte {} is {} bytes long, more than the {} a version-1 "
                    "stream allows; the stream is corrupt",
                    index, cmd_name(c), cmd_offset_, len, kMaxCommand - kCommandHeaderSize));
  const std::size_t total = kCommandHeaderSize + len;
  fill(total);
  have = end_ - at_;
  if (have < total)
    bad(
        fmt::format("command {} ({}) at byte {} is cut short ({} of {} bytes); the stream is "
                    "truncated",
                    index, cmd_name(c), cmd_offset_, have, total));
  h = buf_.data() + at_;

  char zeroed[kCommandHeaderSize];
  std::memcpy(zeroed, h, kCommandHeaderSize);
  put32_at(zeroed + 6, 0);
  std::uint32_t sum = crc32c(0, zeroed, kCommandHeaderSize);
  sum = crc32c(sum, h + kCommandHeaderSize, len);
  if (sum != crc)
    bad(
        fmt::format("checksum mismatch in command {} ({}) at byte {}; the stream is corrupt or "
                    "truncated",
                    index, cmd_name(c), cmd_offset_));

  auto where = [&] {
    return fmt::format("command {} ({}) at byte {}", index, cmd_name(c), cmd_offset_);
  };

  // Reset `out`, keeping the strings' storage for the next command.
  out.cmd = c;
  out.index = index;
  out.offset = cmd_offset_;
  for (std::string* s :
       {&out.path, &out.path_to, &out.path_link, &out.clone_path, &out.xattr_name, &out.data})
    s->clear();
  out.uuid = {};
  out.clone_uuid = {};
  out.ctransid = out.clone_ctransid = out.ino = out.size = out.mode = out.uid = out.gid = out.rdev =
      out.file_offset = out.clone_offset = out.clone_len = 0;
  out.atime = out.mtime = out.ctime = Timespec{};

  std::uint32_t seen = 0;
  const char* p = h + kCommandHeaderSize;
  const char* const e = p + len;
  while (p < e) {
    const std::uint64_t attr_at = cmd_offset_ + static_cast<std::uint64_t>(p - h);
    if (static_cast<std::size_t>(e - p) < kAttrHeaderSize)
      bad(
          fmt::format("an attribute header at byte {} runs past the end of {}; the stream is "
                      "corrupt",
                      attr_at, where()));
    const std::uint16_t at = get16(p);
    const std::uint16_t alen = get16(p + 2);
    p += kAttrHeaderSize;
    if (alen > static_cast<std::size_t>(e - p))
      bad(
          fmt::format("attribute {} at byte {} ({} bytes) runs past the end of {}; the stream is "
                      "corrupt",
                      at, attr_at, alen, where()));
    if (at == 0 || at > kLastAttr)
      bad(
          fmt::format("unknown attribute type {} at byte {} in {}; pfs reads version-1 streams "
                      "(btrfs send --proto 1), or the stream is corrupt",
                      at, attr_at, where()));
    const Attr a = static_cast<Attr>(at);
    if (seen & bit(a))
      bad(fmt::format("attribute {} appears twice in {}; the stream is corrupt", attr_name(a),
                      where()));
    seen |= bit(a);
    std::string_view v(p, alen);
    p += alen;

    auto need_size = [&](std::size_t n) {
      if (v.size() != n)
        bad(fmt::format("attribute {} in {} is {} bytes long, not {}; the stream is corrupt",
                        attr_name(a), where(), v.size(), n));
    };
    auto u64 = [&] {
      need_size(8);
      return get64(v.data());
    };
    auto uuid = [&](Uuid& u) {
      need_size(u.size());
      std::memcpy(u.data(), v.data(), u.size());
    };
    auto ts = [&] {
      need_size(12);
      Timespec t{get64(v.data()), get32(v.data() + 8)};
      if (t.nsec >= kNsecPerSec)
        bad(
            fmt::format("attribute {} in {} has {} nanoseconds (at most 999999999); the stream is "
                        "corrupt",
                        attr_name(a), where(), t.nsec));
      return t;
    };
    switch (a) {
      case Attr::kUuid:
        uuid(out.uuid);
        break;
      case Attr::kCtransid:
        out.ctransid = u64();
        break;
      case Attr::kIno:
        out.ino = u64();
        break;
      case Attr::kSize:
        out.size = u64();
        break;
      case Attr::kMode:
        out.mode = u64();
        break;
      case Attr::kUid:
        out.uid = u64();
        break;
      case Attr::kGid:
        out.gid = u64();
        break;
      case Attr::kRdev:
        out.rdev = u64();
        break;
      case Attr::kCtime:
        out.ctime = ts();
        break;
      case Attr::kMtime:
        out.mtime = ts();
        break;
      case Attr::kAtime:
        out.atime = ts();
        break;
      case Attr::kOtime:
        (void)ts();
        break;  // checked, not kept
      case Attr::kXattrName:
        out.xattr_name.assign(v);
        break;
      case Attr::kXattrData:
        out.data.assign(v);
        break;
      case Attr::kPath:
        out.path.assign(v);
        break;
      case Attr::kPathTo:
        out.path_to.assign(v);
        break;
      case Attr::kPathLink:
        out.path_link.assign(v);
        break;
      case Attr::kFileOffset:
        out.file_offset = u64();
        break;
      case Attr::kData:
        out.data.assign(v);
        break;
      case Attr::kCloneUuid:
        uuid(out.clone_uuid);
        break;
      case Attr::kCloneCtransid:
        out.clone_ctransid = u64();
        break;
      case Attr::kClonePath:
        out.clone_path.assign(v);
        break;
      case Attr::kCloneOffset:
        out.clone_offset = u64();
        break;
      case Attr::kCloneLen:
        out.clone_len = u64();
        break;
    }
  }
  // xattr_data and data both land in out.data; no command may carry both.
  if ((seen & bit(Attr::kXattrData)) && (seen & bit(Attr::kData)))
    bad(fmt::format("{} carries both data and xattr_data; the stream is corrupt", where()));

  const std::uint32_t missing = required(c) & ~seen;
  if (missing != 0) {
    std::string names;
    for (std::uint16_t i = 1; i <= kLastAttr; ++i)
      if (missing & bit(static_cast<Attr>(i))) {
        if (!names.empty()) names += ", ";
        names += attr_name(static_cast<Attr>(i));
      }
    bad(fmt::format("{} lacks {}; the stream is corrupt", where(), names));
  }

  auto check_path = [&](const std::string& v, Attr a, bool root_ok) {
    if (v.empty() && root_ok) return;
    std::string why;
    if (!valid_stream_path(v, &why))
      bad(fmt::format("{} names the bad path \"{}\" in {}: {}; pfs refuses it", where(), shown(v),
                      attr_name(a), why));
  };
  if (seen & bit(Attr::kPath)) check_path(out.path, Attr::kPath, may_name_root(c));
  if (seen & bit(Attr::kPathTo)) check_path(out.path_to, Attr::kPathTo, false);
  if (seen & bit(Attr::kClonePath)) check_path(out.clone_path, Attr::kClonePath, false);
  if (seen & bit(Attr::kPathLink)) {
    if (c == Cmd::kSymlink) {
      // A symlink's target is only stored, never followed by pfs.
      const std::string& t = out.path_link;
      if (t.empty() || t.size() > kMaxPath || t.find('\0') != std::string::npos)
        bad(
            fmt::format("{} has a bad symlink target \"{}\" (empty, longer than {} bytes, or "
                        "holding a NUL byte); the stream is corrupt",
                        where(), shown(t), kMaxPath));
    } else {
      check_path(out.path_link, Attr::kPathLink, false);
    }
  }
  if (seen & bit(Attr::kXattrName)) {
    const std::string& n = out.xattr_name;
    if (n.empty() || n.size() > kMaxXattrName || n.find('\0') != std::string::npos)
      bad(
          fmt::format("{} has a bad xattr name \"{}\" (empty, longer than {} bytes, or holding a "
                      "NUL byte); the stream is corrupt",
                      where(), shown(n), kMaxXattrName));
  }

  // Sizes and offsets: each at most kMaxFileSize, and so are their sums
  // (each term is checked first, so no sum overflows).
  auto limit = [&](std::uint64_t v, std::string_view what) {
    if (v > kMaxFileSize)
      bad(fmt::format("{} sets {} to {}, beyond the {} bytes (1 TiB) pfs accepts", where(), what, v,
                      kMaxFileSize));
  };
  limit(out.size, "size");
  limit(out.file_offset, "file_offset");
  limit(out.clone_offset, "clone_offset");
  limit(out.clone_len, "clone_len");
  if (c == Cmd::kWrite) limit(out.file_offset + out.data.size(), "the end of the write");
  if (c == Cmd::kUpdateExtent) limit(out.file_offset + out.size, "the end of the extent");
  if (c == Cmd::kClone) {
    limit(out.file_offset + out.clone_len, "the end of the clone");
    limit(out.clone_offset + out.clone_len, "the end of the cloned range");
  }

  // Where the command may stand.
  const bool is_subvol = c == Cmd::kSubvol || c == Cmd::kSnapshot;
  if (!started_ && !is_subvol)
    bad(
        fmt::format("the stream starts with {}, not with subvol or snapshot; the stream is "
                    "corrupt",
                    where()));
  if (started_ && is_subvol)
    bad(
        fmt::format("{} starts a second subvolume; pfs receives one subvolume per stream (send "
                    "each subvolume on its own)",
                    where()));
  started_ = true;

  at_ += total;
  pos_ += total;
  ++count_;

  if (c == Cmd::kEnd) {
    ended_ = true;
    fill(1);
    if (end_ > at_)
      bad(
          fmt::format("the stream holds more than one subvolume or data after its end command "
                      "(at byte {}); send each subvolume on its own",
                      pos_));
    return false;
  }
  return true;
}

}  // namespace pfs::detail::stream
