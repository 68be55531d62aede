// send_stream_fixture.h: what the unit tests of the btrfs send-stream codec
// (send_stream_*_test.cc, no file system needed) share: streams built byte
// by byte, a valid set of attributes for every command, readers that
// collect a stream's commands or its error, and sources and sinks that
// trickle or fail.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <pfs/io.h>
#include <pfs/result.h>

#include "fail.h"
#include "send_stream.h"

using namespace pfs;
using namespace pfs::detail;
using namespace pfs::detail::stream;

namespace send_stream_test {

using Attrs = std::vector<std::pair<std::uint16_t, std::string>>;

inline std::string le(std::uint64_t v, int bytes) {
  std::string s(static_cast<std::size_t>(bytes), '\0');
  for (int i = 0; i < bytes; ++i) s[static_cast<std::size_t>(i)] = static_cast<char>(v >> (8 * i));
  return s;
}
inline std::string u64(std::uint64_t v) { return le(v, 8); }
inline std::string ts(std::uint64_t sec, std::uint32_t nsec) { return u64(sec) + le(nsec, 4); }
inline std::pair<std::uint16_t, std::string> at(Attr a, std::string v) {
  return {static_cast<std::uint16_t>(a), std::move(v)};
}
inline std::uint16_t num(Cmd c) { return static_cast<std::uint16_t>(c); }

inline constexpr Uuid kU1{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
inline constexpr Uuid kU2{16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1};
inline const std::string kU1s(kU1.begin(), kU1.end());
inline const std::string kU2s(kU2.begin(), kU2.end());

inline std::string header(std::uint32_t version = 1) {
  return std::string(kMagic) + le(version, 4);
}

// A command's bytes from its attribute bytes, with a correct checksum (over
// the length given, which defaults to the body's).
inline std::string cmd_bytes(std::uint16_t type, const std::string& body,
                             std::optional<std::uint32_t> len = std::nullopt) {
  std::string h =
      le(len.value_or(static_cast<std::uint32_t>(body.size())), 4) + le(type, 2) + le(0, 4) + body;
  std::string crc = le(crc32c(0, h.data(), h.size()), 4);
  h.replace(6, 4, crc);
  return h;
}
inline std::string attr_bytes(std::uint16_t type, const std::string& v) {
  return le(type, 2) + le(v.size(), 2) + v;
}

template <class Fn>
inline std::string stream_of(Fn fn) {
  std::string s;
  auto sink = Sink::to_string(&s);
  StreamWriter w(*sink);
  fn(w);
  w.flush();
  return s;
}

// All commands of a stream, the end command last.
inline std::vector<Command> read_all(const std::string& s) {
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
inline Error error_of(const std::string& s) {
  try {
    read_all(s);
  } catch (const Fail& f) {
    return f.error;
  }
  return Error{ErrorCode::kInternal, "accepted"};
}

inline bool contains(const std::string& s, std::string_view what) {
  return s.find(what) != std::string::npos;
}

// subvol "s", then `cmds`, then the end command (unless without_end).
inline std::string with_subvol(const std::string& cmds, bool with_end = true) {
  std::string s =
      header() + cmd_bytes(num(Cmd::kSubvol),
                           attr_bytes(15, "s") + attr_bytes(1, kU1s) + attr_bytes(2, u64(1)));
  s += cmds;
  if (with_end) s += cmd_bytes(num(Cmd::kEnd), "");
  return s;
}

inline std::string raw_cmd(Cmd c, const Attrs& attrs) {
  std::string body;
  for (const auto& [t, v] : attrs) body += attr_bytes(t, v);
  return cmd_bytes(num(c), body);
}

// A valid set of attributes for every command: exactly the required ones.
inline Attrs valid_attrs(Cmd c) {
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
inline std::string stream_with(Cmd c, const Attrs& attrs) {
  if (c == Cmd::kSubvol || c == Cmd::kSnapshot)
    return header() + raw_cmd(c, attrs) + cmd_bytes(num(Cmd::kEnd), "");
  if (c == Cmd::kEnd) return with_subvol(raw_cmd(c, attrs), false);
  return with_subvol(raw_cmd(c, attrs));
}

// The command c, read back from a stream that holds it.
inline Command read_one(Cmd c, const Attrs& attrs) {
  auto all = read_all(stream_with(c, attrs));
  if (c == Cmd::kEnd) return all.back();
  return c == Cmd::kSubvol || c == Cmd::kSnapshot ? all.front() : all.at(1);
}

inline constexpr Cmd kAllCmds[] = {Cmd::kSubvol,   Cmd::kSnapshot,    Cmd::kMkfile, Cmd::kMkdir,
                                   Cmd::kMknod,    Cmd::kMkfifo,      Cmd::kMksock, Cmd::kSymlink,
                                   Cmd::kRename,   Cmd::kLink,        Cmd::kUnlink, Cmd::kRmdir,
                                   Cmd::kSetXattr, Cmd::kRemoveXattr, Cmd::kWrite,  Cmd::kClone,
                                   Cmd::kTruncate, Cmd::kChmod,       Cmd::kChown,  Cmd::kUtimes,
                                   Cmd::kEnd,      Cmd::kUpdateExtent};

// A small valid stream through the writer.
inline std::string small_stream() {
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

}  // namespace send_stream_test

using namespace send_stream_test;
