// send_stream.h: the btrfs send stream, version 1 -- what `btrfs send`
// writes and `btrfs receive` reads -- as pfs writes and checks it.
//
//   stream  = "btrfs-stream\0" le32(version) command*
//   command = le32(len) le16(cmd) le32(crc) attribute*   (len: of the attributes)
//   attr    = le16(type) le16(len) bytes[len]
//
// crc is CRC-32C (Castagnoli) of the command header (with crc = 0) and its
// attributes, started from 0 with no final inversion (as the kernel's
// crc32c(0, ...)). Integers are little-endian; paths are raw bytes without
// a NUL, relative to the subvolume's root. The format is the kernel's
// (fs/btrfs/send.h); this file holds no code from it.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <pfs/io.h>

namespace pfs::detail::stream {

inline constexpr std::string_view kMagic{"btrfs-stream\0", 13};
inline constexpr std::uint32_t kVersion = 1;
inline constexpr std::size_t kHeaderSize = 17;        // magic + version
inline constexpr std::size_t kCommandHeaderSize = 10;  // len + cmd + crc
// The largest command (header included) a version-1 stream may hold: what
// btrfs-progs reads (BTRFS_SEND_BUF_SIZE_V1).
inline constexpr std::size_t kMaxCommand = 64 * 1024;
// Data bytes per write command, as the kernel sends them.
inline constexpr std::size_t kMaxWrite = 48 * 1024;
// The largest file size or offset a stream may set (1 TiB): larger is
// refused, so a stream cannot make a receiver store (or hash) petabytes of
// holes.
inline constexpr std::uint64_t kMaxFileSize = std::uint64_t{1} << 40;
inline constexpr std::size_t kMaxPath = 4095;  // bytes, as PATH_MAX less the NUL
inline constexpr std::size_t kMaxName = 255;   // bytes of one path component

enum class Cmd : std::uint16_t {
  kSubvol = 1,
  kSnapshot = 2,
  kMkfile = 3,
  kMkdir = 4,
  kMknod = 5,
  kMkfifo = 6,
  kMksock = 7,
  kSymlink = 8,
  kRename = 9,
  kLink = 10,
  kUnlink = 11,
  kRmdir = 12,
  kSetXattr = 13,
  kRemoveXattr = 14,
  kWrite = 15,
  kClone = 16,
  kTruncate = 17,
  kChmod = 18,
  kChown = 19,
  kUtimes = 20,
  kEnd = 21,
  kUpdateExtent = 22,
};

enum class Attr : std::uint16_t {
  kUuid = 1,
  kCtransid = 2,
  kIno = 3,
  kSize = 4,
  kMode = 5,
  kUid = 6,
  kGid = 7,
  kRdev = 8,
  kCtime = 9,
  kMtime = 10,
  kAtime = 11,
  kOtime = 12,
  kXattrName = 13,
  kXattrData = 14,
  kPath = 15,
  kPathTo = 16,
  kPathLink = 17,
  kFileOffset = 18,
  kData = 19,
  kCloneUuid = 20,
  kCloneCtransid = 21,
  kClonePath = 22,
  kCloneOffset = 23,
  kCloneLen = 24,
};

// The name of a command ("mkfile") or attribute ("path"), for messages.
std::string_view cmd_name(Cmd c);
std::string_view attr_name(Attr a);

using Uuid = std::array<std::uint8_t, 16>;

struct Timespec {
  std::uint64_t sec = 0;
  std::uint32_t nsec = 0;
};

// CRC-32C of [p, p + n), continuing from `crc` (0 to start), without the
// usual inversions: the checksum a send stream carries.
std::uint32_t crc32c(std::uint32_t crc, const void* p, std::size_t n);

// Whether `p` is a path a stream may name: 1..kMaxPath bytes, relative, no
// NUL, no empty, "." or ".." component, components of at most kMaxName
// bytes. On false, *why says what is wrong.
bool valid_stream_path(std::string_view p, std::string* why);

// One command, its attributes checked: every attribute the command needs
// is present, once, with its size; paths pass valid_stream_path, except
// that "" (the subvolume's root, as the kernel sends it) is allowed in
// chown, chmod, utimes, set_xattr and remove_xattr, and a symlink's target
// (path_link of kSymlink) is only non-empty, NUL-free and at most kMaxPath;
// offsets and sizes are at most kMaxFileSize. Fields the command does not
// carry keep their defaults.
struct Command {
  Cmd cmd = Cmd::kEnd;
  std::uint64_t index = 0;   // 0 for the first command of the stream
  std::uint64_t offset = 0;  // byte offset of its header in the stream
  std::string path, path_to, path_link, clone_path, xattr_name;
  std::string data;  // kWrite's bytes, kSetXattr's value
  Uuid uuid{}, clone_uuid{};
  std::uint64_t ctransid = 0, clone_ctransid = 0;
  std::uint64_t ino = 0, size = 0, mode = 0, uid = 0, gid = 0, rdev = 0;
  std::uint64_t file_offset = 0, clone_offset = 0, clone_len = 0;
  Timespec atime, mtime, ctime;
};

// Reads and checks a stream, one command at a time. Every fault -- a bad
// magic or version, a checksum mismatch, a length past the command's end,
// an unknown command or attribute, a missing or repeated attribute, a bad
// path, a first command other than subvol/snapshot, a second subvol, the
// end before the end command, anything after it -- throws Fail with
// kInvalidArgument and a message naming the command and its byte offset.
class StreamReader {
 public:
  // Reads and checks the stream's header (so it may throw, as next() does).
  explicit StreamReader(Source& in);
  // The next command; false once the end command has been read (and the
  // source checked to be at its end), and on every call after.
  bool next(Command& out);
  std::uint64_t bytes_read() const { return pos_; }

 private:
  void fill(std::size_t need);  // reads until buf_ holds `need` bytes from at_
  [[noreturn]] void bad(const std::string& what) const;

  Source& in_;
  std::vector<char> buf_;
  std::size_t at_ = 0, end_ = 0;  // unread bytes: buf_[at_, end_)
  std::uint64_t pos_ = 0;         // stream offset of buf_[at_]
  std::uint64_t count_ = 0;       // commands read
  std::uint64_t cmd_offset_ = 0;
  bool started_ = false, ended_ = false, eof_ = false;
};

// Writes a stream: the header at construction, then commands, buffered and
// written to the sink in large pieces. Paths are written as given (the
// caller passes valid ones). Throws Fail (kIo) when the sink fails.
class StreamWriter {
 public:
  explicit StreamWriter(Sink& out);
  void subvol(std::string_view path, const Uuid& uuid, std::uint64_t ctransid);
  void snapshot(std::string_view path, const Uuid& uuid, std::uint64_t ctransid,
                const Uuid& clone_uuid, std::uint64_t clone_ctransid);
  void mkfile(std::string_view path, std::uint64_t ino);
  void mkdir(std::string_view path, std::uint64_t ino);
  void rename(std::string_view from, std::string_view to);
  void unlink(std::string_view path);
  void rmdir(std::string_view path);
  // Splits data into commands of at most kMaxWrite bytes.
  void write(std::string_view path, std::uint64_t offset, std::span<const char> data);
  void truncate(std::string_view path, std::uint64_t size);
  void chmod(std::string_view path, std::uint64_t mode);
  void chown(std::string_view path, std::uint64_t uid, std::uint64_t gid);
  void utimes(std::string_view path, const Timespec& atime, const Timespec& mtime,
              const Timespec& ctime);
  // The end command; flushes everything to the sink.
  void end();
  std::uint64_t bytes_written() const { return written_ + buf_.size(); }

  // For tests that build bad streams: a command from raw attributes
  // (type, bytes), in the order given.
  void raw(std::uint16_t cmd, const std::vector<std::pair<std::uint16_t, std::string>>& attrs);
  void flush();

 private:
  void begin(Cmd c);
  void put(Attr a, const void* p, std::size_t n);
  void put_u64(Attr a, std::uint64_t v);
  void put_path(Attr a, std::string_view p) { put(a, p.data(), p.size()); }
  void put_time(Attr a, const Timespec& t);
  void finish();

  Sink& out_;
  std::string buf_;
  std::size_t cmd_start_ = 0;
  std::uint64_t written_ = 0;
};

}  // namespace pfs::detail::stream
