// send_stream_format_test.cc: unit tests of the btrfs send-stream format
// (send_stream_fixture.h): the checksum, the names, which paths a stream may
// hold, every command read back with its attributes, and a stream the
// kernel made.
#include <string_view>

#include "send_stream_fixture.h"

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

namespace {
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
}  // namespace

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
