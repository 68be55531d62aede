// stream_tool: reads and writes btrfs send streams with pfs's codec, for
// scripts and tests.
//
//   stream_tool dump < stream     one line per command; exit 1 with the
//                                 reader's message on a bad stream
//   stream_tool craft NAME > out  a hand-made stream (good or hostile)
//   stream_tool list              the names craft knows
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include <pfs/io.h>

#include "fail.h"
#include "send_stream.h"

using namespace pfs;
using namespace pfs::detail;
using namespace pfs::detail::stream;

namespace {

// Bytes < 0x20, 0x7f, '\\' and ' ' escaped, so one command stays one line.
std::string esc(std::string_view s) {
  std::string out;
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f || c == '\\' || c == ' ')
      out += fmt::format("\\x{:02x}", c);
    else
      out += ch;
  }
  return out;
}

std::string uuid_str(const Uuid& u) {
  std::string s;
  for (std::size_t i = 0; i < u.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s += '-';
    s += fmt::format("{:02x}", u[i]);
  }
  return s;
}

std::string time_str(const Timespec& t) { return fmt::format("{}.{:09d}", t.sec, t.nsec); }

std::string describe(const Command& c) {
  std::string s = fmt::format("{} {} {}", c.index, c.offset, cmd_name(c.cmd));
  if (c.cmd == Cmd::kEnd) return s;
  s += " path=" + esc(c.path);
  switch (c.cmd) {
    case Cmd::kSubvol:
      s += fmt::format(" uuid={} ctransid={}", uuid_str(c.uuid), c.ctransid);
      break;
    case Cmd::kSnapshot:
      s += fmt::format(" uuid={} ctransid={} clone_uuid={} clone_ctransid={}", uuid_str(c.uuid),
                       c.ctransid, uuid_str(c.clone_uuid), c.clone_ctransid);
      break;
    case Cmd::kMkfile:
    case Cmd::kMkdir:
    case Cmd::kMkfifo:
    case Cmd::kMksock:
      s += fmt::format(" ino={}", c.ino);
      break;
    case Cmd::kMknod:
      s += fmt::format(" ino={} mode={:o} rdev={}", c.ino, c.mode, c.rdev);
      break;
    case Cmd::kSymlink:
      s += fmt::format(" ino={} path_link={}", c.ino, esc(c.path_link));
      break;
    case Cmd::kRename:
      s += " path_to=" + esc(c.path_to);
      break;
    case Cmd::kLink:
      s += " path_link=" + esc(c.path_link);
      break;
    case Cmd::kSetXattr:
      s += fmt::format(" xattr_name={} xattr_len={}", esc(c.xattr_name), c.data.size());
      break;
    case Cmd::kRemoveXattr:
      s += " xattr_name=" + esc(c.xattr_name);
      break;
    case Cmd::kWrite:
      s += fmt::format(" offset={} len={}", c.file_offset, c.data.size());
      break;
    case Cmd::kClone:
      s += fmt::format(
          " offset={} len={} clone_uuid={} clone_ctransid={} clone_path={} clone_offset={}",
          c.file_offset, c.clone_len, uuid_str(c.clone_uuid), c.clone_ctransid, esc(c.clone_path),
          c.clone_offset);
      break;
    case Cmd::kTruncate:
      s += fmt::format(" size={}", c.size);
      break;
    case Cmd::kChmod:
      s += fmt::format(" mode={:o}", c.mode);
      break;
    case Cmd::kChown:
      s += fmt::format(" uid={} gid={}", c.uid, c.gid);
      break;
    case Cmd::kUtimes:
      s += fmt::format(" atime={} mtime={} ctime={}", time_str(c.atime), time_str(c.mtime),
                       time_str(c.ctime));
      break;
    case Cmd::kUpdateExtent:
      s += fmt::format(" offset={} len={}", c.file_offset, c.size);
      break;
    default:
      break;
  }
  return s;
}

int dump() {
  auto in = Source::from_fd(0);
  try {
    StreamReader r(*in);
    Command c;
    while (r.next(c)) std::printf("%s\n", describe(c).c_str());
    std::printf("%s\n", describe(c).c_str());  // the end command
    std::fflush(stdout);
    std::fprintf(stderr, "%llu bytes, %llu commands\n",
                 static_cast<unsigned long long>(r.bytes_read()),
                 static_cast<unsigned long long>(c.index + 1));
    return 0;
  } catch (const Fail& f) {
    std::fflush(stdout);
    std::fprintf(stderr, "stream_tool: %s\n", f.error.message.c_str());
    return 1;
  }
}

// ---- crafted streams ----

using Attrs = std::vector<std::pair<std::uint16_t, std::string>>;

std::string u64(std::uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}
std::pair<std::uint16_t, std::string> at(Attr a, std::string v) {
  return {static_cast<std::uint16_t>(a), std::move(v)};
}
std::uint16_t cmd(Cmd c) { return static_cast<std::uint16_t>(c); }

constexpr Uuid kUuid{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
constexpr Uuid kParent{0xaa, 0xbb, 0xcc, 0xdd, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
const std::string kUuidBytes(kUuid.begin(), kUuid.end());

void write_str(StreamWriter& w, std::string_view path, std::uint64_t off, std::string_view s) {
  w.write(path, off, std::span<const char>(s.data(), s.size()));
}

void symlink(StreamWriter& w, std::string_view path, std::uint64_t ino, std::string_view target) {
  w.raw(cmd(Cmd::kSymlink), {at(Attr::kPath, std::string(path)), at(Attr::kIno, u64(ino)),
                             at(Attr::kPathLink, std::string(target))});
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 251) % 26);
  return s;
}

const std::map<std::string, std::function<void(StreamWriter&, Sink&)>>& crafts() {
  static const std::map<std::string, std::function<void(StreamWriter&, Sink&)>> m = {
      {"escape-dotdot",
       [](StreamWriter& w, Sink&) {
         w.subvol("s", kUuid, 1);
         w.mkfile("../evil", 257);
         write_str(w, "../evil", 0, "pwned\n");
         w.end();
       }},
      {"escape-abs",
       [](StreamWriter& w, Sink&) {
         w.subvol("s", kUuid, 1);
         w.mkfile("/etc/evil", 257);
         write_str(w, "/etc/evil", 0, "pwned\n");
         w.end();
       }},
      {"symlink-dir",
       [](StreamWriter& w, Sink&) {
         w.subvol("s", kUuid, 1);
         w.mkdir("d", 257);
         symlink(w, "d/l", 258, "/tmp");
         w.mkfile("d/l/x", 259);
         write_str(w, "d/l/x", 0, "pwned\n");
         w.end();
       }},
      {"symlink-parent",
       [](StreamWriter& w, Sink&) {
         w.subvol("s", kUuid, 1);
         symlink(w, "l", 257, "..");
         w.mkfile("l/x", 258);
         write_str(w, "l/x", 0, "pwned\n");
         w.end();
       }},
      {"rename-escape",
       [](StreamWriter& w, Sink&) {
         w.subvol("s", kUuid, 1);
         w.mkfile("a", 257);
         w.rename("a", "../a");
         w.end();
       }},
      {"link-escape",
       [](StreamWriter& w, Sink&) {
         w.subvol("s", kUuid, 1);
         w.raw(cmd(Cmd::kLink), {at(Attr::kPath, "x"), at(Attr::kPathLink, "../../etc/passwd")});
         w.end();
       }},
      {"clone-escape",
       [](StreamWriter& w, Sink&) {
         w.subvol("s", kUuid, 1);
         w.mkfile("f", 257);
         w.raw(cmd(Cmd::kClone),
               {at(Attr::kPath, "f"), at(Attr::kFileOffset, u64(0)), at(Attr::kCloneLen, u64(4096)),
                at(Attr::kCloneUuid, kUuidBytes), at(Attr::kCloneCtransid, u64(1)),
                at(Attr::kClonePath, "../x"), at(Attr::kCloneOffset, u64(0))});
         w.end();
       }},
      {"huge-truncate",
       [](StreamWriter& w, Sink&) {
         w.subvol("s", kUuid, 1);
         w.mkfile("f", 257);
         w.truncate("f", std::uint64_t{1} << 41);
         w.end();
       }},
      {"no-end",
       [](StreamWriter& w, Sink&) {
         w.subvol("s", kUuid, 1);
         w.mkfile("f", 257);
         write_str(w, "f", 0, "hello\n");
         w.flush();
       }},
      {"two-subvols",
       [](StreamWriter& w, Sink& out) {
         w.subvol("s", kUuid, 1);
         w.mkfile("f", 257);
         w.end();
         StreamWriter second(out);
         second.subvol("t", kParent, 2);
         second.mkfile("g", 257);
         second.end();
       }},
      {"write-to-dir",
       [](StreamWriter& w, Sink&) {
         w.subvol("s", kUuid, 1);
         w.mkdir("d", 257);
         write_str(w, "d", 0, "x");
         w.end();
       }},
      {"ok-small",
       [](StreamWriter& w, Sink&) {
         w.subvol("s", kUuid, 1);
         w.mkdir("d", 257);
         w.mkfile("d/f", 258);
         write_str(w, "d/f", 0, "hello\n");
         w.mkfile("g", 259);
         write_str(w, "g", 0, pattern(100 * 1024));
         Timespec t{1700000000, 123456789};
         w.utimes("d/f", t, t, t);
         w.utimes("g", t, t, t);
         w.utimes("d", t, t, t);
         w.utimes("", t, t, t);
         w.end();
       }},
      // Every command of the format once, each valid to the reader.
      {"ok-all",
       [](StreamWriter& w, Sink&) {
         Timespec t{1700000000, 5};
         w.snapshot("s", kUuid, 2, kParent, 1);
         w.mkdir("d", 257);
         w.mkfile("d/f", 258);
         write_str(w, "d/f", 0, "hello\n");
         w.raw(cmd(Cmd::kMknod), {at(Attr::kPath, "n"), at(Attr::kIno, u64(259)),
                                  at(Attr::kMode, u64(020644)), at(Attr::kRdev, u64(0x0103))});
         w.raw(cmd(Cmd::kMkfifo), {at(Attr::kPath, "p"), at(Attr::kIno, u64(260)),
                                   at(Attr::kMode, u64(010644)), at(Attr::kRdev, u64(0))});
         w.raw(cmd(Cmd::kMksock), {at(Attr::kPath, "k"), at(Attr::kIno, u64(261))});
         symlink(w, "l", 262, "d/f");
         w.rename("d/f", "d/g");
         w.raw(cmd(Cmd::kLink), {at(Attr::kPath, "h"), at(Attr::kPathLink, "d/g")});
         w.unlink("h");
         w.raw(cmd(Cmd::kSetXattr),
               {at(Attr::kPath, "d/g"), at(Attr::kXattrName, "user.k"), at(Attr::kXattrData, "v")});
         w.raw(cmd(Cmd::kRemoveXattr), {at(Attr::kPath, "d/g"), at(Attr::kXattrName, "user.k")});
         w.raw(cmd(Cmd::kClone), {at(Attr::kPath, "d/g"), at(Attr::kFileOffset, u64(4096)),
                                  at(Attr::kCloneLen, u64(4096)), at(Attr::kCloneUuid, kUuidBytes),
                                  at(Attr::kCloneCtransid, u64(2)), at(Attr::kClonePath, "d/g"),
                                  at(Attr::kCloneOffset, u64(0))});
         w.truncate("d/g", 8192);
         w.raw(cmd(Cmd::kUpdateExtent),
               {at(Attr::kPath, "d/g"), at(Attr::kFileOffset, u64(0)), at(Attr::kSize, u64(4096))});
         w.chmod("d/g", 0600);
         w.chown("d/g", 1000, 1000);
         w.utimes("d/g", t, t, t);
         w.mkdir("e", 263);
         w.rmdir("e");
         w.end();
       }},
  };
  return m;
}

int craft(const std::string& name) {
  auto it = crafts().find(name);
  if (it == crafts().end()) {
    std::fprintf(stderr, "stream_tool: no stream named \"%s\" (list them with: stream_tool list)\n",
                 name.c_str());
    return 2;
  }
  auto out = Sink::to_fd(1);
  try {
    StreamWriter w(*out);
    it->second(w, *out);
    w.flush();
  } catch (const Fail& f) {
    std::fprintf(stderr, "stream_tool: %s\n", f.error.message.c_str());
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 1 && args[0] == "dump") return dump();
  if (args.size() == 2 && args[0] == "craft") return craft(args[1]);
  if (args.size() == 1 && args[0] == "list") {
    for (const auto& [name, fn] : crafts()) std::printf("%s\n", name.c_str());
    return 0;
  }
  std::fprintf(stderr,
               "usage: stream_tool dump < stream\n"
               "       stream_tool craft NAME > stream\n"
               "       stream_tool list\n");
  return 2;
}
