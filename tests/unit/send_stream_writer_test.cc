// send_stream_writer_test.cc: unit tests of the send-stream writer
// (send_stream_fixture.h): its bytes, how it splits writes, and what it
// refuses.
#include "send_stream_fixture.h"

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
