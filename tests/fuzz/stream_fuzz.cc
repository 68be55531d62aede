// stream_fuzz: a libFuzzer target for the send-stream reader. Any input must
// be read to its end command or refused with a Fail; nothing else (a crash,
// a sanitizer report, another exception) may happen. Build and run it with
// scripts/fuzz.sh.
//
// NOTE: a mutated command almost never keeps a valid checksum, so each input
// is read twice: as it is, and with every whole command's crc recomputed,
// which lets the fuzzer reach the attribute checks behind the checksum.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include <pfs/io.h>

#include "fail.h"
#include "send_stream.h"

namespace {

using namespace pfs::detail;

void read_stream(std::string bytes) {
  auto in = pfs::Source::from_string(std::move(bytes));
  try {
    stream::StreamReader r(*in);
    stream::Command c;
    while (r.next(c)) {
    }
  } catch (const Fail&) {
  }
}

std::uint32_t get32(const std::string& s, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(s[at + i]);
  return v;
}

// The input with the checksum of every command that lies wholly inside it
// made right.
std::string with_fixed_crcs(std::string s) {
  std::size_t pos = stream::kHeaderSize;
  while (pos + stream::kCommandHeaderSize <= s.size()) {
    std::uint64_t len = get32(s, pos);
    std::uint64_t total = stream::kCommandHeaderSize + len;
    if (total > s.size() - pos) break;
    std::memset(&s[pos + 6], 0, 4);
    std::uint32_t crc = stream::crc32c(0, s.data() + pos, total);
    for (int i = 0; i < 4; ++i) s[pos + 6 + i] = static_cast<char>((crc >> (8 * i)) & 0xff);
    pos += total;
  }
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  std::string fixed = with_fixed_crcs(input);
  if (fixed != input) read_stream(std::move(fixed));
  read_stream(std::move(input));
  return 0;
}
