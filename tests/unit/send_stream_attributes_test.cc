// send_stream_attributes_test.cc: unit tests of how the send-stream reader
// checks the attributes of a command (send_stream_fixture.h): required,
// repeated and unneeded ones, sizes, paths, symlink targets, xattr names,
// and sizes and offsets past the largest file.
#include <algorithm>

#include "send_stream_fixture.h"

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
