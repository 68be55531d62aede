// send_stream.cc: what the send-stream reader and writer share: the names
// of commands and attributes, the checksum, and which paths a stream may name.
#include "send_stream.h"

#include <isa-l/crc.h>

#include <algorithm>
#include <climits>

#include <fmt/format.h>

namespace pfs::detail::stream {

std::string_view cmd_name(Cmd c) {
  static constexpr std::string_view kNames[] = {
      "unspec",  "subvol",   "snapshot", "mkfile", "mkdir",  "mknod",     "mkfifo",       "mksock",
      "symlink", "rename",   "link",     "unlink", "rmdir",  "set_xattr", "remove_xattr", "write",
      "clone",   "truncate", "chmod",    "chown",  "utimes", "end",       "update_extent"};
  auto i = static_cast<std::size_t>(c);
  return i >= 1 && i < std::size(kNames) ? kNames[i] : "unknown";
}

std::string_view attr_name(Attr a) {
  static constexpr std::string_view kNames[] = {
      "unspec",     "uuid",           "ctransid",    "ino",
      "size",       "mode",           "uid",         "gid",
      "rdev",       "ctime",          "mtime",       "atime",
      "otime",      "xattr_name",     "xattr_data",  "path",
      "path_to",    "path_link",      "file_offset", "data",
      "clone_uuid", "clone_ctransid", "clone_path",  "clone_offset",
      "clone_len"};
  auto i = static_cast<std::size_t>(a);
  return i >= 1 && i < std::size(kNames) ? kNames[i] : "unknown";
}

std::uint32_t crc32c(std::uint32_t crc, const void* p, std::size_t n) {
  // NOTE: ISA-L's crc32_iscsi applies no inversion of its own (checked in
  // send_stream_format_test.cc): it is the raw update the stream wants.
  auto b = static_cast<unsigned char*>(const_cast<void*>(p));
  while (n > 0) {
    auto part = static_cast<int>(std::min<std::size_t>(n, INT_MAX / 2));
    crc = crc32_iscsi(b, part, crc);
    b += part;
    n -= static_cast<std::size_t>(part);
  }
  return crc;
}

bool valid_stream_path(std::string_view p, std::string* why) {
  auto no = [&](std::string w) {
    if (why) *why = std::move(w);
    return false;
  };
  if (p.empty()) return no("the path is empty");
  if (p.size() > kMaxPath)
    return no(fmt::format("the path is {} bytes long (at most {})", p.size(), kMaxPath));
  if (p.find('\0') != std::string_view::npos) return no("the path holds a NUL byte");
  if (p.front() == '/') return no("the path is absolute");
  std::size_t start = 0;
  for (;;) {
    std::size_t slash = p.find('/', start);
    std::string_view part =
        p.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (part.empty()) return no("the path has an empty component");
    if (part == "." || part == "..")
      return no(fmt::format("the path has a \"{}\" component", part));
    if (part.size() > kMaxName)
      return no(fmt::format("a component of the path is {} bytes long (at most {})", part.size(),
                            kMaxName));
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return true;
}

}  // namespace pfs::detail::stream
