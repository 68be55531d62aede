// send_stream_bytes.h: little-endian integers in a send stream's bytes, and
// the attribute header's size: what the reader and the writer both need.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pfs::detail::stream {

inline constexpr std::size_t kAttrHeaderSize = 4;  // le16 type, le16 len

inline std::uint16_t get16(const char* p) {
  auto b = reinterpret_cast<const unsigned char*>(p);
  return static_cast<std::uint16_t>(b[0] | (b[1] << 8));
}
inline std::uint32_t get32(const char* p) {
  auto b = reinterpret_cast<const unsigned char*>(p);
  return std::uint32_t{b[0]} | (std::uint32_t{b[1]} << 8) | (std::uint32_t{b[2]} << 16) |
         (std::uint32_t{b[3]} << 24);
}
inline std::uint64_t get64(const char* p) {
  return std::uint64_t{get32(p)} | (std::uint64_t{get32(p + 4)} << 32);
}
inline void put16_at(char* p, std::uint16_t v) {
  p[0] = static_cast<char>(v & 0xff);
  p[1] = static_cast<char>(v >> 8);
}
inline void put32_at(char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
inline void put64_at(char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}

}  // namespace pfs::detail::stream
