// Unit tests of the btrfs send-stream codec (no file system needed).
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <pfs/io.h>
#include <pfs/result.h>

#include "fail.h"
#include "send_stream.h"

using namespace pfs;
using namespace pfs::detail;
using namespace pfs::detail::stream;

namespace {

using Attrs = std::vector<std::pair<std::uint16_t, std::string>>;

std::string le(std::uint64_t v, int bytes) {
  std::string s(static_cast<std::size_t>(bytes), '\0');
  for (int i = 0; i < bytes; ++i) s[static_cast<std::size_t>(i)] = static_cast<char>(v >> (8 * i));
  return s;
}
std::string u64(std::uint64_t v) { return le(v, 8); }
std::string ts(std::uint64_t sec, std::uint32_t nsec) { return u64(sec) + le(nsec, 4); }
std::pair<std::uint16_t, std::string> at(Attr a, std::string v) {
  return {static_cast<std::uint16_t>(a), std::move(v)};
}
std::uint16_t num(Cmd c) { return static_cast<std::uint16_t>(c); }

constexpr Uuid kU1{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
constexpr Uuid kU2{16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1};
const std::string kU1s(kU1.begin(), kU1.end());
const std::string kU2s(kU2.begin(), kU2.end());

std::string header(std::uint32_t version = 1) { return std::string(kMagic) + le(version, 4); }

// A command's bytes from its attribute bytes, with a correct checksum (over
// the length given, which defaults to the body's).
std::string cmd_bytes(std::uint16_t type, const std::string& body,
                      std::optional<std::uint32_t> len = std::nullopt) {
  std::string h =
      le(len.value_or(static_cast<std::uint32_t>(body.size())), 4) + le(type, 2) + le(0, 4) + body;
  std::string crc = le(crc32c(0, h.data(), h.size()), 4);
  h.replace(6, 4, crc);
  return h;
}
std::string attr_bytes(std::uint16_t type, const std::string& v) {
  return le(type, 2) + le(v.size(), 2) + v;
}

template <class Fn>
std::string stream_of(Fn fn) {
  std::string s;
  auto sink = Sink::to_string(&s);
  StreamWriter w(*sink);
  fn(w);
  w.flush();
  return s;
}

// All commands of a stream, the end command last.
std::vector<Command> read_all(const std::string& s) {
  auto src = Source::from_string(s);
  StreamReader r(*src);
  std::vector<Command> out;
  Command c;
  while (r.next(c)) out.push_back(c);
  out.push_back(c);
  CHECK(r.bytes_read() == s.size());
  Command again;
  CHECK_FALSE(r.next(again));
  return out;
}

// The error reading `s` raises (code kInternal and "accepted" if none).
Error error_of(const std::string& s) {
  try {
    read_all(s);
  } catch (const Fail& f) {
    return f.error;
  }
  return Error{ErrorCode::kInternal, "accepted"};
}

bool contains(const std::string& s, std::string_view what) {
  return s.find(what) != std::string::npos;
}

// subvol "s", then `cmds`, then the end command (unless without_end).
std::string with_subvol(const std::string& cmds, bool with_end = true) {
  std::string s =
      header() + cmd_bytes(num(Cmd::kSubvol),
                           attr_bytes(15, "s") + attr_bytes(1, kU1s) + attr_bytes(2, u64(1)));
  s += cmds;
  if (with_end) s += cmd_bytes(num(Cmd::kEnd), "");
  return s;
}

std::string raw_cmd(Cmd c, const Attrs& attrs) {
  std::string body;
  for (const auto& [t, v] : attrs) body += attr_bytes(t, v);
  return cmd_bytes(num(c), body);
}

// A valid set of attributes for every command: exactly the required ones.
Attrs valid_attrs(Cmd c) {
  switch (c) {
    case Cmd::kSubvol:
      return {at(Attr::kPath, "s"), at(Attr::kUuid, kU1s), at(Attr::kCtransid, u64(7))};
    case Cmd::kSnapshot:
      return {at(Attr::kPath, "s"), at(Attr::kUuid, kU1s), at(Attr::kCtransid, u64(8)),
              at(Attr::kCloneUuid, kU2s), at(Attr::kCloneCtransid, u64(7))};
    case Cmd::kMkfile:
    case Cmd::kMkdir:
    case Cmd::kMkfifo:
    case Cmd::kMksock:
      return {at(Attr::kPath, "d/x"), at(Attr::kIno, u64(257))};
    case Cmd::kMknod:
      return {at(Attr::kPath, "n"), at(Attr::kIno, u64(258)), at(Attr::kMode, u64(020644)),
              at(Attr::kRdev, u64(0x103))};
    case Cmd::kSymlink:
      return {at(Attr::kPath, "l"), at(Attr::kIno, u64(259)), at(Attr::kPathLink, "../t")};
    case Cmd::kRename:
      return {at(Attr::kPath, "a"), at(Attr::kPathTo, "b/c")};
    case Cmd::kLink:
      return {at(Attr::kPath, "h"), at(Attr::kPathLink, "a/b")};
    case Cmd::kUnlink:
    case Cmd::kRmdir:
      return {at(Attr::kPath, "a")};
    case Cmd::kSetXattr:
      return {at(Attr::kPath, "a"), at(Attr::kXattrName, "user.k"),
              at(Attr::kXattrData, std::string("v\0w", 3))};
    case Cmd::kRemoveXattr:
      return {at(Attr::kPath, "a"), at(Attr::kXattrName, "user.k")};
    case Cmd::kWrite:
      return {at(Attr::kPath, "a"), at(Attr::kFileOffset, u64(4096)), at(Attr::kData, "hello")};
    case Cmd::kClone:
      return {at(Attr::kPath, "a"),
              at(Attr::kFileOffset, u64(8192)),
              at(Attr::kCloneLen, u64(4096)),
              at(Attr::kCloneUuid, kU2s),
              at(Attr::kCloneCtransid, u64(3)),
              at(Attr::kClonePath, "b"),
              at(Attr::kCloneOffset, u64(12288))};
    case Cmd::kTruncate:
      return {at(Attr::kPath, "a"), at(Attr::kSize, u64(12345))};
    case Cmd::kChmod:
      return {at(Attr::kPath, "a"), at(Attr::kMode, u64(0640))};
    case Cmd::kChown:
      return {at(Attr::kPath, "a"), at(Attr::kUid, u64(1000)), at(Attr::kGid, u64(100))};
    case Cmd::kUtimes:
      return {at(Attr::kPath, "a"), at(Attr::kAtime, ts(1, 2)), at(Attr::kMtime, ts(3, 4)),
              at(Attr::kCtime, ts(5, 999999999))};
    case Cmd::kEnd:
      return {};
    case Cmd::kUpdateExtent:
      return {at(Attr::kPath, "a"), at(Attr::kFileOffset, u64(0)), at(Attr::kSize, u64(65536))};
  }
  return {};
}

// A stream holding command c with `attrs` in its proper place.
std::string stream_with(Cmd c, const Attrs& attrs) {
  if (c == Cmd::kSubvol || c == Cmd::kSnapshot)
    return header() + raw_cmd(c, attrs) + cmd_bytes(num(Cmd::kEnd), "");
  if (c == Cmd::kEnd) return with_subvol(raw_cmd(c, attrs), false);
  return with_subvol(raw_cmd(c, attrs));
}

// The command c, read back from a stream that holds it.
Command read_one(Cmd c, const Attrs& attrs) {
  auto all = read_all(stream_with(c, attrs));
  if (c == Cmd::kEnd) return all.back();
  return c == Cmd::kSubvol || c == Cmd::kSnapshot ? all.front() : all.at(1);
}

constexpr Cmd kAllCmds[] = {Cmd::kSubvol,   Cmd::kSnapshot,    Cmd::kMkfile, Cmd::kMkdir,
                            Cmd::kMknod,    Cmd::kMkfifo,      Cmd::kMksock, Cmd::kSymlink,
                            Cmd::kRename,   Cmd::kLink,        Cmd::kUnlink, Cmd::kRmdir,
                            Cmd::kSetXattr, Cmd::kRemoveXattr, Cmd::kWrite,  Cmd::kClone,
                            Cmd::kTruncate, Cmd::kChmod,       Cmd::kChown,  Cmd::kUtimes,
                            Cmd::kEnd,      Cmd::kUpdateExtent};

// A small valid stream through the writer.
std::string small_stream() {
  return stream_of([](StreamWriter& w) {
    w.subvol("s", kU1, 1);
    w.mkdir("d", 257);
    w.mkfile("d/f", 258);
    std::string_view data = "hello\n";
    w.write("d/f", 0, std::span<const char>(data.data(), data.size()));
    w.utimes("d/f", {1, 2}, {3, 4}, {5, 6});
    w.end();
  });
}

class TrickleSource final : public Source {
 public:
  explicit TrickleSource(std::string s, std::size_t step) : s_(std::move(s)), step_(step) {}
  Result<std::size_t> read(std::span<char> buf) override {
    ++reads;
    largest = std::max(largest, buf.size());
    std::size_t n = std::min({buf.size(), s_.size() - pos_, step_});
    std::memcpy(buf.data(), s_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  std::size_t reads = 0, largest = 0;

 private:
  std::string s_;
  std::size_t pos_ = 0, step_;
};

class FailingSource final : public Source {
 public:
  Result<std::size_t> read(std::span<char>) override { return Error{ErrorCode::kIo, "disk gone"}; }
};

class FailingSink final : public Sink {
 public:
  Result<void> write(std::span<const char>) override { return Error{ErrorCode::kIo, "disk full"}; }
};

}  // namespace

TEST_CASE("crc32c is the raw CRC-32C the kernel computes") {
  const char* s = "123456789";
  // The standard check value (inverted in and out) is 0xE3069283; the raw
  // update from 0 without inversions, as the kernel's crc32c(0, ...), is:
  CHECK(crc32c(0, s, 9) == 0x58E3FA20u);
  CHECK(~crc32c(~0u, s, 9) == 0xE3069283u);
  CHECK(crc32c(crc32c(0, s, 4), s + 4, 5) == crc32c(0, s, 9));
  CHECK(crc32c(0x1234u, s, 0) == 0x1234u);
}

TEST_CASE("names of commands and attributes") {
  CHECK(cmd_name(Cmd::kSubvol) == "subvol");
  CHECK(cmd_name(Cmd::kSetXattr) == "set_xattr");
  CHECK(cmd_name(Cmd::kUpdateExtent) == "update_extent");
  CHECK(cmd_name(static_cast<Cmd>(0)) == "unknown");
  CHECK(cmd_name(static_cast<Cmd>(99)) == "unknown");
  CHECK(attr_name(Attr::kPath) == "path");
  CHECK(attr_name(Attr::kCloneLen) == "clone_len");
  CHECK(attr_name(static_cast<Attr>(25)) == "unknown");
}

TEST_CASE("valid_stream_path") {
  std::string why;
  for (const std::string& good :
       std::vector<std::string>{"a", "a/b/c", "o257-7-0", "...", ".a", "a..", std::string(255, 'x'),
                                "a/" + std::string(255, 'y'), std::string("\xff\x01 \n", 4)}) {
    INFO("path: ", good);
    CHECK(valid_stream_path(good, &why));
  }
  std::string long_path;
  while (long_path.size() < kMaxPath + 1) long_path += "abcdefgh/";
  long_path.resize(kMaxPath + 1);
  for (const std::string& bad : std::vector<std::string>{
           "", "..", ".", "/abs", "/", "a//b", "a/./b", "a/../b", "a/..", "../a", "./a", "a/",
           "a/.", std::string("a\0b", 3), std::string("\0", 1), std::string(256, 'x'),
           "a/" + std::string(256, 'y'), long_path}) {
    INFO("path: ", bad);
    why.clear();
    CHECK_FALSE(valid_stream_path(bad, &why));
    CHECK_FALSE(why.empty());
  }
  // The longest path: kMaxPath bytes in components of up to kMaxName.
  std::string longest;
  while (longest.size() < kMaxPath) longest += std::string(200, 'c') + "/";
  longest.resize(kMaxPath);
  if (longest.back() == '/') longest.back() = 'c';
  CHECK(valid_stream_path(longest, nullptr));
  CHECK_FALSE(valid_stream_path("a//b", nullptr));
}

TEST_CASE("every command round-trips with its attributes") {
  for (Cmd c : kAllCmds) {
    INFO("command: ", cmd_name(c));
    Command r = read_one(c, valid_attrs(c));
    CHECK(r.cmd == c);
    switch (c) {
      case Cmd::kSubvol:
        CHECK(r.path == "s");
        CHECK(r.uuid == kU1);
        CHECK(r.ctransid == 7);
        CHECK(r.index == 0);
        CHECK(r.offset == kHeaderSize);
        break;
      case Cmd::kSnapshot:
        CHECK(r.uuid == kU1);
        CHECK(r.ctransid == 8);
        CHECK(r.clone_uuid == kU2);
        CHECK(r.clone_ctransid == 7);
        break;
      case Cmd::kMkfile:
      case Cmd::kMkdir:
      case Cmd::kMkfifo:
      case Cmd::kMksock:
        CHECK(r.path == "d/x");
        CHECK(r.ino == 257);
        CHECK(r.index == 1);
        break;
      case Cmd::kMknod:
        CHECK(r.mode == 020644);
        CHECK(r.rdev == 0x103);
        CHECK(r.ino == 258);
        break;
      case Cmd::kSymlink:
        CHECK(r.path_link == "../t");
        CHECK(r.ino == 259);
        break;
      case Cmd::kRename:
        CHECK(r.path == "a");
        CHECK(r.path_to == "b/c");
        break;
      case Cmd::kLink:
        CHECK(r.path == "h");
        CHECK(r.path_link == "a/b");
        break;
      case Cmd::kUnlink:
      case Cmd::kRmdir:
        CHECK(r.path == "a");
        break;
      case Cmd::kSetXattr:
        CHECK(r.xattr_name == "user.k");
        CHECK(r.data == std::string("v\0w", 3));
        break;
      case Cmd::kRemoveXattr:
        CHECK(r.xattr_name == "user.k");
        break;
      case Cmd::kWrite:
        CHECK(r.file_offset == 4096);
        CHECK(r.data == "hello");
        break;
      case Cmd::kClone:
        CHECK(r.file_offset == 8192);
        CHECK(r.clone_len == 4096);
        CHECK(r.clone_uuid == kU2);
        CHECK(r.clone_ctransid == 3);
        CHECK(r.clone_path == "b");
        CHECK(r.clone_offset == 12288);
        break;
      case Cmd::kTruncate:
        CHECK(r.size == 12345);
        break;
      case Cmd::kChmod:
        CHECK(r.mode == 0640);
        break;
      case Cmd::kChown:
        CHECK(r.uid == 1000);
        CHECK(r.gid == 100);
        break;
      case Cmd::kUtimes:
        CHECK(r.atime.sec == 1);
        CHECK(r.atime.nsec == 2);
        CHECK(r.mtime.sec == 3);
        CHECK(r.mtime.nsec == 4);
        CHECK(r.ctime.sec == 5);
        CHECK(r.ctime.nsec == 999999999);
        break;
      case Cmd::kEnd:
        CHECK(r.path.empty());
        break;
      case Cmd::kUpdateExtent:
        CHECK(r.file_offset == 0);
        CHECK(r.size == 65536);
        break;
    }
  }
}

TEST_CASE("the writer encodes each command as the format says") {
  auto same = [](auto typed, Cmd c, const Attrs& attrs) {
    std::string a = stream_of(typed);
    std::string b = stream_of([&](StreamWriter& w) { w.raw(num(c), attrs); });
    CHECK(a == b);
    CHECK(b == header() + raw_cmd(c, attrs));
  };
  same([](StreamWriter& w) { w.subvol("s", kU1, 7); }, Cmd::kSubvol, valid_attrs(Cmd::kSubvol));
  same([](StreamWriter& w) { w.snapshot("s", kU1, 8, kU2, 7); }, Cmd::kSnapshot,
       valid_attrs(Cmd::kSnapshot));
  same([](StreamWriter& w) { w.mkfile("d/x", 257); }, Cmd::kMkfile, valid_attrs(Cmd::kMkfile));
  same([](StreamWriter& w) { w.mkdir("d/x", 257); }, Cmd::kMkdir, valid_attrs(Cmd::kMkdir));
  same([](StreamWriter& w) { w.rename("a", "b/c"); }, Cmd::kRename, valid_attrs(Cmd::kRename));
  same([](StreamWriter& w) { w.unlink("a"); }, Cmd::kUnlink, valid_attrs(Cmd::kUnlink));
  same([](StreamWriter& w) { w.rmdir("a"); }, Cmd::kRmdir, valid_attrs(Cmd::kRmdir));
  same([](StreamWriter& w) { w.write("a", 4096, std::span<const char>("hello", 5)); }, Cmd::kWrite,
       valid_attrs(Cmd::kWrite));
  same([](StreamWriter& w) { w.truncate("a", 12345); }, Cmd::kTruncate,
       valid_attrs(Cmd::kTruncate));
  same([](StreamWriter& w) { w.chmod("a", 0640); }, Cmd::kChmod, valid_attrs(Cmd::kChmod));
  same([](StreamWriter& w) { w.chown("a", 1000, 100); }, Cmd::kChown, valid_attrs(Cmd::kChown));
  same(
      [](StreamWriter& w) {
        w.utimes("a", {1, 2}, {3, 4}, {5, 999999999});
      },
      Cmd::kUtimes, valid_attrs(Cmd::kUtimes));
  same([](StreamWriter& w) { w.end(); }, Cmd::kEnd, {});
}

TEST_CASE("the writer splits writes and counts its bytes") {
  std::string data(300 * 1024 + 7, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31 + i / 977);
  std::string s;
  auto sink = Sink::to_string(&s);
  StreamWriter w(*sink);
  CHECK(w.bytes_written() == kHeaderSize);
  w.subvol("s", kU1, 1);
  w.mkfile("f", 257);
  w.write("f", 10, std::span<const char>(data.data(), data.size()));
  w.write("f", 0, std::span<const char>());  // nothing
  // More than the writer buffers: some of it has reached the sink already.
  CHECK(s.size() > 0);
  std::uint64_t before_end = w.bytes_written();
  w.end();
  CHECK(w.bytes_written() == s.size());
  CHECK(before_end + kCommandHeaderSize == s.size());

  auto all = read_all(s);
  std::string back;
  std::size_t writes = 0;
  for (const Command& c : all) {
    if (c.cmd != Cmd::kWrite) continue;
    ++writes;
    CHECK(c.data.size() <= kMaxWrite);
    CHECK(c.file_offset == 10 + back.size());
    back += c.data;
  }
  CHECK(writes == (data.size() + kMaxWrite - 1) / kMaxWrite);
  CHECK(back == data);
  CHECK(all.back().cmd == Cmd::kEnd);
}

TEST_CASE("the writer refuses what it cannot encode and reports sink failures") {
  std::string s;
  auto sink = Sink::to_string(&s);
  StreamWriter w(*sink);
  std::string huge(70000, 'a');
  try {
    w.mkfile(huge, 1);
    FAIL("no error");
  } catch (const Fail& f) {
    CHECK(f.error.code == ErrorCode::kInvalidArgument);
  }
  // The half-built command is gone: the stream goes on cleanly.
  w.subvol("s", kU1, 1);
  w.end();
  CHECK(read_all(s).size() == 2);

  FailingSink bad;
  StreamWriter w2(bad);
  w2.subvol("s", kU1, 1);
  try {
    w2.end();
    FAIL("no error");
  } catch (const Fail& f) {
    CHECK(f.error.code == ErrorCode::kIo);
  }
}

TEST_CASE("the reader takes its input in large pieces or in tiny ones") {
  std::string s = stream_of([](StreamWriter& w) {
    w.subvol("s", kU1, 1);
    w.mkfile("f", 257);
    std::string data(300 * 1024, 'x');
    w.write("f", 0, std::span<const char>(data.data(), data.size()));
    w.end();
  });
  {
    TrickleSource src(s, SIZE_MAX);
    StreamReader r(src);
    Command c;
    while (r.next(c)) {
    }
    CHECK(r.bytes_read() == s.size());
    CHECK(src.largest >= 64 * 1024);
    CHECK(src.reads < 10);
  }
  for (std::size_t step : {1, 3, 4096, 65535}) {
    TrickleSource src(s, step);
    StreamReader r(src);
    Command c;
    std::size_t n = 0;
    while (r.next(c)) ++n;
    CHECK(n == 2 + (300 * 1024 + kMaxWrite - 1) / kMaxWrite);
    CHECK(r.bytes_read() == s.size());
  }
  FailingSource fails;
  try {
    StreamReader r(fails);
    FAIL("no error");
  } catch (const Fail& f) {
    CHECK(f.error.code == ErrorCode::kIo);
  }
}

TEST_CASE("the reader accepts the subvolume root's empty path where the kernel sends it") {
  for (Cmd c : {Cmd::kChown, Cmd::kChmod, Cmd::kUtimes, Cmd::kSetXattr, Cmd::kRemoveXattr}) {
    INFO("command: ", cmd_name(c));
    Attrs a = valid_attrs(c);
    a[0].second = "";
    CHECK(read_one(c, a).path.empty());
  }
  for (Cmd c : kAllCmds) {
    if (c == Cmd::kEnd || c == Cmd::kChown || c == Cmd::kChmod || c == Cmd::kUtimes ||
        c == Cmd::kSetXattr || c == Cmd::kRemoveXattr)
      continue;
    INFO("command: ", cmd_name(c));
    Attrs a = valid_attrs(c);
    a[0].second = "";
    CHECK(error_of(stream_with(c, a)).code == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("bad headers are refused with a message that says why") {
  auto err = [](const std::string& s) { return error_of(s); };
  Error e = err("");
  CHECK(e.code == ErrorCode::kInvalidArgument);
  CHECK(contains(e.message, "empty"));
  e = err("btrfs-strea");
  CHECK(e.code == ErrorCode::kInvalidArgument);
  CHECK(contains(e.message, "truncated"));
  e = err("not a stream at all, really");
  CHECK(e.code == ErrorCode::kInvalidArgument);
  CHECK(contains(e.message, "not a btrfs send stream"));
  e = err(std::string("btrfs-stream\0\1\0\0", 16));
  CHECK(contains(e.message, "truncated"));
  for (std::uint32_t v : {0u, 2u, 3u, 0x01000000u}) {
    e = err(header(v) + cmd_bytes(num(Cmd::kEnd), ""));
    CHECK(e.code == ErrorCode::kInvalidArgument);
    CHECK(contains(e.message, "--proto 1"));
    CHECK(contains(e.message, "version " + std::to_string(v)));
  }
}

TEST_CASE("a stream cut short at any byte is refused as truncated") {
  std::string s = small_stream();
  for (std::size_t n = 0; n < s.size(); ++n) {
    INFO("cut at ", n, " of ", s.size());
    Error e = error_of(s.substr(0, n));
    CHECK(e.code == ErrorCode::kInvalidArgument);
    if (n > 0) CHECK(contains(e.message, "truncated"));
  }
  CHECK(read_all(s).size() == 6);
}

TEST_CASE("every single-bit flip of a small stream is refused") {
  std::string s = small_stream();
  for (std::size_t i = 0; i < s.size(); ++i)
    for (int b = 0; b < 8; ++b) {
      std::string t = s;
      t[i] = static_cast<char>(t[i] ^ (1 << b));
      INFO("byte ", i, " bit ", b);
      CHECK(error_of(t).code == ErrorCode::kInvalidArgument);
    }
}

TEST_CASE("checksum mismatches name the command and its offset") {
  std::string s = small_stream();
  auto all = read_all(s);
  const Command& w = all.at(3);
  REQUIRE(w.cmd == Cmd::kWrite);
  std::string t = s;
  t[w.offset + kCommandHeaderSize + 6] ^= 0x20;  // inside the path attribute
  Error e = error_of(t);
  CHECK(e.code == ErrorCode::kInvalidArgument);
  CHECK(e.message == "send stream: checksum mismatch in command 3 (write) at byte " +
                         std::to_string(w.offset) + "; the stream is corrupt or truncated");
  t = s;
  t[w.offset + 6] ^= 1;  // the crc itself
  CHECK(contains(error_of(t).message, "checksum mismatch in command 3 (write)"));
}

TEST_CASE("command lengths: up to kMaxCommand with the header, and no further") {
  // A write command of exactly kMaxCommand bytes is what btrfs-progs reads.
  std::string fixed = attr_bytes(15, "f") + attr_bytes(18, u64(0));
  std::size_t data = kMaxCommand - kCommandHeaderSize - fixed.size() - 4;
  std::string mk = raw_cmd(Cmd::kMkfile, {at(Attr::kPath, "f"), at(Attr::kIno, u64(257))});
  std::string ok = cmd_bytes(num(Cmd::kWrite), fixed + attr_bytes(19, std::string(data, 'z')));
  CHECK(ok.size() == kMaxCommand);
  CHECK(read_all(with_subvol(mk + ok)).at(2).data.size() == data);
  std::string big = cmd_bytes(num(Cmd::kWrite), fixed + attr_bytes(19, std::string(data + 1, 'z')));
  Error e = error_of(with_subvol(mk + big));
  CHECK(e.code == ErrorCode::kInvalidArgument);
  CHECK(contains(e.message, "more than"));
  // A huge length is refused before anything is read or allocated for it.
  e = error_of(with_subvol(cmd_bytes(num(Cmd::kWrite), "", 0xffffffffu), false));
  CHECK(e.code == ErrorCode::kInvalidArgument);
  CHECK(contains(e.message, "more than"));
}

TEST_CASE("unknown commands and attributes are refused") {
  for (std::uint16_t c : {0, 23, 24, 25, 100, 0xffff}) {
    INFO("command ", c);
    Error e = error_of(with_subvol(cmd_bytes(c, attr_bytes(15, "a"))));
    CHECK(e.code == ErrorCode::kInvalidArgument);
    CHECK(contains(e.message, "unknown command type " + std::to_string(c)));
  }
  for (std::uint16_t a : {0, 25, 26, 30, 0xffff}) {
    INFO("attribute ", a);
    Error e = error_of(
        with_subvol(cmd_bytes(num(Cmd::kUnlink), attr_bytes(15, "a") + attr_bytes(a, "x"))));
    CHECK(e.code == ErrorCode::kInvalidArgument);
    CHECK(contains(e.message, "unknown attribute type " + std::to_string(a)));
  }
}

TEST_CASE("attributes must lie inside their command") {
  // An attribute header cut by the command's end.
  Error e = error_of(with_subvol(cmd_bytes(num(Cmd::kUnlink), attr_bytes(15, "a") + "\x0f\x00")));
  CHECK(e.code == ErrorCode::kInvalidArgument);
  CHECK(contains(e.message, "past the end"));
  // An attribute longer than what is left of the command.
  std::string body = le(15, 2) + le(100, 2) + "abc";
  e = error_of(with_subvol(cmd_bytes(num(Cmd::kUnlink), body)));
  CHECK(e.code == ErrorCode::kInvalidArgument);
  CHECK(contains(e.message, "past the end"));
  // The same, the attribute running into the next command.
  e = error_of(with_subvol(cmd_bytes(num(Cmd::kUnlink), le(15, 2) + le(12, 2) + "a") +
                           raw_cmd(Cmd::kUnlink, {at(Attr::kPath, "b")})));
  CHECK(e.code == ErrorCode::kInvalidArgument);
}

TEST_CASE("every required attribute is required, and none may repeat") {
  for (Cmd c : kAllCmds) {
    Attrs full = valid_attrs(c);
    for (std::size_t i = 0; i < full.size(); ++i) {
      Attrs a = full;
      std::string name(attr_name(static_cast<Attr>(a[i].first)));
      a.erase(a.begin() + static_cast<long>(i));
      INFO("command ", cmd_name(c), " without ", name);
      Error e = error_of(stream_with(c, a));
      CHECK(e.code == ErrorCode::kInvalidArgument);
      CHECK(contains(e.message, "lacks " + name));
    }
    for (std::size_t i = 0; i < full.size(); ++i) {
      Attrs a = full;
      a.push_back(full[i]);
      INFO("command ", cmd_name(c), " with ", attr_name(static_cast<Attr>(full[i].first)),
           " twice");
      Error e = error_of(stream_with(c, a));
      CHECK(e.code == ErrorCode::kInvalidArgument);
      CHECK(contains(e.message, "twice"));
    }
  }
}

TEST_CASE("known attributes a command does not need are accepted") {
  // As the kernel sends mkfifo and mksock with mode and rdev.
  Attrs a = valid_attrs(Cmd::kMkfifo);
  a.push_back(at(Attr::kMode, u64(010644)));
  a.push_back(at(Attr::kRdev, u64(0)));
  a.push_back(at(Attr::kOtime, ts(1, 1)));
  Command c = read_one(Cmd::kMkfifo, a);
  CHECK(c.mode == 010644);
  CHECK(c.path == "d/x");
  // But data and xattr_data share a field: not both.
  a = valid_attrs(Cmd::kWrite);
  a.push_back(at(Attr::kXattrData, "x"));
  CHECK(error_of(stream_with(Cmd::kWrite, a)).code == ErrorCode::kInvalidArgument);
}

TEST_CASE("fixed-size attributes must have their size") {
  struct Case {
    Cmd c;
    Attr a;
    std::string v;
  };
  std::vector<Case> cases = {
      {Cmd::kMkfile, Attr::kIno, std::string(7, '\0')},
      {Cmd::kMkfile, Attr::kIno, std::string(9, '\0')},
      {Cmd::kMkfile, Attr::kIno, ""},
      {Cmd::kSubvol, Attr::kUuid, std::string(15, '\1')},
      {Cmd::kSubvol, Attr::kUuid, std::string(17, '\1')},
      {Cmd::kSubvol, Attr::kCtransid, std::string(4, '\1')},
      {Cmd::kSnapshot, Attr::kCloneUuid, std::string(8, '\1')},
      {Cmd::kUtimes, Attr::kAtime, std::string(11, '\0')},
      {Cmd::kUtimes, Attr::kMtime, std::string(13, '\0')},
      {Cmd::kUtimes, Attr::kCtime, ts(5, 1000000000)},
      {Cmd::kUtimes, Attr::kCtime, ts(5, 0xffffffffu)},
      {Cmd::kChown, Attr::kUid, std::string(4, '\0')},
      {Cmd::kWrite, Attr::kFileOffset, std::string(16, '\0')},
  };
  for (const Case& k : cases) {
    Attrs a = valid_attrs(k.c);
    for (auto& [t, v] : a)
      if (t == static_cast<std::uint16_t>(k.a)) v = k.v;
    INFO(cmd_name(k.c), " ", attr_name(k.a), " of ", k.v.size(), " bytes");
    CHECK(error_of(stream_with(k.c, a)).code == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("paths that could escape or confuse are refused") {
  std::vector<std::string> bad = {"..",
                                  "../evil",
                                  "a/../../b",
                                  "/abs",
                                  "/",
                                  "a//b",
                                  "a/./b",
                                  "./a",
                                  "a/",
                                  std::string("a\0b", 3),
                                  std::string(256, 'x'),
                                  "d/" + std::string(256, 'x'),
                                  std::string(kMaxPath + 1, 'x')};
  struct Where {
    Cmd c;
    Attr a;
  };
  for (Where w : {Where{Cmd::kSubvol, Attr::kPath}, Where{Cmd::kSnapshot, Attr::kPath},
                  Where{Cmd::kMkfile, Attr::kPath}, Where{Cmd::kRename, Attr::kPathTo},
                  Where{Cmd::kRename, Attr::kPath}, Where{Cmd::kLink, Attr::kPathLink},
                  Where{Cmd::kClone, Attr::kClonePath}, Where{Cmd::kWrite, Attr::kPath},
                  Where{Cmd::kSymlink, Attr::kPath}, Where{Cmd::kChmod, Attr::kPath}}) {
    for (const std::string& p : bad) {
      Attrs a = valid_attrs(w.c);
      for (auto& [t, v] : a)
        if (t == static_cast<std::uint16_t>(w.a)) v = p;
      INFO(cmd_name(w.c), " ", attr_name(w.a), " = ", p);
      Error e = error_of(stream_with(w.c, a));
      CHECK(e.code == ErrorCode::kInvalidArgument);
      CHECK(contains(e.message, "bad path"));
    }
  }
  // Messages show a bad path escaped: printable ASCII only (valid UTF-8 in JSON).
  Attrs x = valid_attrs(Cmd::kMkfile);
  x[0].second = std::string("../\xff\xc3\n\x01\"", 8);
  Error msg = error_of(stream_with(Cmd::kMkfile, x));
  CHECK(contains(msg.message, "\"../\\xff\\xc3\\x0a\\x01\\x22\""));
  CHECK(std::all_of(msg.message.begin(), msg.message.end(),
                    [](char ch) { return ch >= 0x20 && ch < 0x7f; }));
  // The empty path, except for the root's attributes.
  Attrs a = valid_attrs(Cmd::kLink);
  a[1].second = "";
  CHECK(error_of(stream_with(Cmd::kLink, a)).code == ErrorCode::kInvalidArgument);
  a = valid_attrs(Cmd::kRename);
  a[1].second = "";
  CHECK(error_of(stream_with(Cmd::kRename, a)).code == ErrorCode::kInvalidArgument);
}

TEST_CASE("a symlink's target is only non-empty and NUL-free") {
  for (const std::string& t :
       std::vector<std::string>{"..", "/etc/passwd", "../../x", "a//b", std::string(300, 'x')}) {
    Attrs a = valid_attrs(Cmd::kSymlink);
    a[2].second = t;
    CHECK(read_one(Cmd::kSymlink, a).path_link == t);
  }
  for (std::string t : {std::string(), std::string("a\0b", 3), std::string(kMaxPath + 1, 'x')}) {
    Attrs a = valid_attrs(Cmd::kSymlink);
    a[2].second = t;
    CHECK(error_of(stream_with(Cmd::kSymlink, a)).code == ErrorCode::kInvalidArgument);
  }
}

TEST_CASE("xattr names are non-empty, NUL-free and at most 255 bytes") {
  for (std::string n : {std::string(), std::string("user.\0x", 7), std::string(256, 'u')}) {
    Attrs a = valid_attrs(Cmd::kRemoveXattr);
    a[1].second = n;
    CHECK(error_of(stream_with(Cmd::kRemoveXattr, a)).code == ErrorCode::kInvalidArgument);
  }
  Attrs a = valid_attrs(Cmd::kSetXattr);
  a[2].second = "";  // an empty value is fine
  CHECK(read_one(Cmd::kSetXattr, a).data.empty());
}

TEST_CASE("sizes and offsets past 1 TiB are refused, without overflow") {
  const std::uint64_t m = kMaxFileSize;
  auto write_at = [](std::uint64_t off, std::string data) {
    return Attrs{at(Attr::kPath, "a"), at(Attr::kFileOffset, u64(off)), at(Attr::kData, data)};
  };
  CHECK(read_one(Cmd::kWrite, write_at(m - 3, "abc")).file_offset == m - 3);
  CHECK(error_of(stream_with(Cmd::kWrite, write_at(m - 3, "abcd"))).code ==
        ErrorCode::kInvalidArgument);
  CHECK(error_of(stream_with(Cmd::kWrite, write_at(UINT64_MAX - 1, "abcd"))).code ==
        ErrorCode::kInvalidArgument);
  CHECK(error_of(stream_with(Cmd::kWrite, write_at(m + 1, ""))).code ==
        ErrorCode::kInvalidArgument);

  auto trunc = [](std::uint64_t size) {
    return Attrs{at(Attr::kPath, "a"), at(Attr::kSize, u64(size))};
  };
  CHECK(read_one(Cmd::kTruncate, trunc(m)).size == m);
  Error e = error_of(stream_with(Cmd::kTruncate, trunc(m + 1)));
  CHECK(e.code == ErrorCode::kInvalidArgument);
  CHECK(contains(e.message, "1 TiB"));
  CHECK(error_of(stream_with(Cmd::kTruncate, trunc(std::uint64_t{1} << 41))).code ==
        ErrorCode::kInvalidArgument);
  CHECK(error_of(stream_with(Cmd::kTruncate, trunc(UINT64_MAX))).code ==
        ErrorCode::kInvalidArgument);

  auto clone = [](std::uint64_t off, std::uint64_t len, std::uint64_t src) {
    return Attrs{at(Attr::kPath, "a"),
                 at(Attr::kFileOffset, u64(off)),
                 at(Attr::kCloneLen, u64(len)),
                 at(Attr::kCloneUuid, kU2s),
                 at(Attr::kCloneCtransid, u64(3)),
                 at(Attr::kClonePath, "b"),
                 at(Attr::kCloneOffset, u64(src))};
  };
  CHECK(read_one(Cmd::kClone, clone(m - 4096, 4096, m - 4096)).clone_len == 4096);
  for (Attrs a : {clone(m - 4095, 4096, 0), clone(0, 4096, m - 4095), clone(0, m + 1, 0),
                  clone(UINT64_MAX, 2, 0), clone(0, 2, UINT64_MAX), clone(0, UINT64_MAX, 1)})
    CHECK(error_of(stream_with(Cmd::kClone, a)).code == ErrorCode::kInvalidArgument);

  auto extent = [](std::uint64_t off, std::uint64_t len) {
    return Attrs{at(Attr::kPath, "a"), at(Attr::kFileOffset, u64(off)), at(Attr::kSize, u64(len))};
  };
  CHECK(read_one(Cmd::kUpdateExtent, extent(m - 10, 10)).size == 10);
  CHECK(error_of(stream_with(Cmd::kUpdateExtent, extent(m - 10, 11))).code ==
        ErrorCode::kInvalidArgument);
}

TEST_CASE("the stream's shape: one subvolume, then the end, then nothing") {
  std::string mk = raw_cmd(Cmd::kMkfile, valid_attrs(Cmd::kMkfile));
  std::string end = cmd_bytes(num(Cmd::kEnd), "");
  // The first command must start a subvolume.
  Error e = error_of(header() + mk + end);
  CHECK(e.code == ErrorCode::kInvalidArgument);
  CHECK(contains(e.message, "not with subvol or snapshot"));
  CHECK(error_of(header() + end).code == ErrorCode::kInvalidArgument);
  // A second subvol or snapshot is refused.
  e = error_of(with_subvol(mk + raw_cmd(Cmd::kSubvol, valid_attrs(Cmd::kSubvol))));
  CHECK(e.code == ErrorCode::kInvalidArgument);
  CHECK(contains(e.message, "second subvolume"));
  CHECK(error_of(with_subvol(raw_cmd(Cmd::kSnapshot, valid_attrs(Cmd::kSnapshot)))).code ==
        ErrorCode::kInvalidArgument);
  // No end command.
  e = error_of(with_subvol(mk, false));
  CHECK(e.code == ErrorCode::kInvalidArgument);
  CHECK(contains(e.message, "without an end command"));
  CHECK(contains(e.message, "truncated"));
  // Anything after the end: a second stream, or a single byte.
  std::string one = with_subvol(mk);
  e = error_of(one + one);
  CHECK(e.code == ErrorCode::kInvalidArgument);
  CHECK(contains(e.message, "more than one subvolume"));
  CHECK(error_of(one + std::string(1, '\0')).code == ErrorCode::kInvalidArgument);
  CHECK(read_all(one).size() == 3);
  // Two ends.
  CHECK(error_of(one + end).code == ErrorCode::kInvalidArgument);
}

// An incremental stream made by btrfs send -p (btrfs-progs 6.2, Linux 6.18):
// its checksums are the kernel's, so it pins the CRC convention.
const char kRealIncremental[] =
    "62747266732d73747265616d0001000000460000000200951f92400f00020073"
    "32010010007646f2bb7a34724b8225e60c7ee248140200080008000000000000"
    "0014001000ebda66aa7d3fce449ea15aef20cfc3991500080007000000000000"
    "001d0000000f00933d8ab90f0001006112000800000000000000000013000800"
    "68690a6d6f72650a3500000014003715b01c0f000100610b000c00b33c066b00"
    "000000e5457b020a000c00b33c066b00000000e472ac0309000c00b33c066b00"
    "000000e472ac03070000000b0089b652f30f000300642f62110000000a003a01"
    "82f90f000600642f6269673211000300626967070000000b00b4c3ca810f0003"
    "006269673a00000014004a47ee9f0f000600642f626967320b000c00b33c066b"
    "00000000e54eb8020a000c00b33c066b00000000e557f50209000c00b33c066b"
    "00000000e472ac0318000000030052e17dda0f0008006f3236332d382d300300"
    "08000701000000000000110000000900c22e588b0f0008006f3236332d382d30"
    "100001006e190000000f002791a0820f0001006e120008000000000000000000"
    "130004006e65770a1d0000001300866c5ba50f0001006e060008000000000000"
    "0000000700080000000000000000001100000012006e7e25e00f0001006e0500"
    "0800a401000000000000350000001400001cd4240f0001006e0b000c00b33c06"
    "6b00000000e472ac030a000c00b33c066b00000000e472ac0309000c00b33c06"
    "6b00000000e472ac03340000001400f0cd326d0f0000000b000c00b33c066b00"
    "000000e5457b020a000c00b33c066b00000000e472ac0309000c00b33c066b00"
    "000000e472ac033500000014005de682120f000100640b000c00b33c066b0000"
    "0000b843b3020a000c00b33c066b00000000e472ac0309000c00b33c066b0000"
    "0000e472ac03000000001500506cc99d";

std::string unhex(std::string_view h) {
  std::string out;
  for (std::size_t i = 0; i + 1 < h.size(); i += 2)
    out += static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16));
  return out;
}

TEST_CASE("a stream btrfs send made parses, checksums and all") {
  std::string s = unhex(kRealIncremental);
  REQUIRE(s.size() == 688);
  auto all = read_all(s);
  REQUIRE(all.size() == 16);
  CHECK(all[0].cmd == Cmd::kSnapshot);
  CHECK(all[0].path == "s2");
  CHECK(all[0].ctransid == 8);
  CHECK(all[0].clone_ctransid == 7);
  CHECK(all[1].cmd == Cmd::kWrite);
  CHECK(all[1].path == "a");
  CHECK(all[1].data == "hi\nmore\n");
  CHECK(all[4].cmd == Cmd::kLink);
  CHECK(all[4].path == "d/big2");
  CHECK(all[4].path_link == "big");
  CHECK(all[13].cmd == Cmd::kUtimes);
  CHECK(all[13].path.empty());  // the subvolume's root
  CHECK(all[15].cmd == Cmd::kEnd);
  CHECK(all[15].offset == 678);
}

TEST_CASE("the inputs kept in tests/fuzz/corpus are read or refused, nothing else") {
  namespace fs = std::filesystem;
  // __FILE__ is relative to the build directory (meson) or absolute.
  std::vector<fs::path> tries;
  if (const char* root = std::getenv("SOURCE_ROOT")) tries.push_back(fs::path(root) / "tests");
  fs::path file(__FILE__);
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  for (const fs::path& base : {fs::current_path(), exe.parent_path().parent_path(), fs::path()})
    tries.push_back((base / file).parent_path().parent_path());
  fs::path dir;
  for (const fs::path& t : tries)
    if (fs::is_directory(t / "fuzz/corpus", ec)) {
      dir = t / "fuzz/corpus";
      break;
    }
  if (dir.empty()) {
    MESSAGE("no corpus directory found (set SOURCE_ROOT); skipped");
    return;
  }
  std::size_t n = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    std::ifstream f(entry.path(), std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    INFO("input: ", entry.path().string());
    Error e = error_of(s);
    // Crafted seeds may be valid; the point is that nothing else escapes.
    CHECK((e.code == ErrorCode::kInvalidArgument || e.message == "accepted"));
    ++n;
  }
  MESSAGE(n, " corpus inputs read");
}
