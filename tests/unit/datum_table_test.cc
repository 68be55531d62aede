// datum_table_test.cc: a pipeline run's datum table as kept on branch
// _pipelines (src/jobs/pipeline_records.cc): written and read back exactly,
// whatever its text fields hold; damaged tables refused; the JSON lines of
// earlier versions still read.
#include <doctest/doctest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "fail.h"
#include "pipeline_engine.h"

using namespace pfs;
using namespace pfs::detail;
using namespace pfs::detail::jobs;

namespace {

DatumRecord record(std::string id, DatumState state) {
  DatumRecord r;
  r.info.id = std::move(id);
  r.info.state = state;
  r.key = "k" + r.info.id;
  return r;
}

void check_same(const std::vector<DatumRecord>& a, const std::vector<DatumRecord>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); i++) {
    CAPTURE(i);
    CHECK(a[i].info.id == b[i].info.id);
    CHECK(a[i].key == b[i].key);
    CHECK(a[i].info.state == b[i].info.state);
    CHECK(a[i].info.tries == b[i].info.tries);
    CHECK(a[i].info.duration_ns == b[i].info.duration_ns);
    CHECK(a[i].info.error == b[i].info.error);
    CHECK(a[i].info.outputs == b[i].info.outputs);
    REQUIRE(a[i].info.files.size() == b[i].info.files.size());
    for (std::size_t k = 0; k < a[i].info.files.size(); k++) {
      CHECK(a[i].info.files[k].input == b[i].info.files[k].input);
      CHECK(a[i].info.files[k].path == b[i].info.files[k].path);
    }
    REQUIRE(a[i].hashed.size() == b[i].hashed.size());
    for (std::size_t k = 0; k < a[i].hashed.size(); k++) {
      CHECK(a[i].hashed[k].repo == b[i].hashed[k].repo);
      CHECK(a[i].hashed[k].path == b[i].hashed[k].path);
      CHECK(a[i].hashed[k].hash == b[i].hashed[k].hash);
      CHECK(a[i].hashed[k].size == b[i].hashed[k].size);
    }
  }
}

// The error's code, or nullopt when the text reads.
std::optional<ErrorCode> code_of(std::string_view text, bool json_lines = false) {
  try {
    parse_datums_text(text, json_lines, "the test table");
  } catch (Fail& f) {
    CHECK(f.error.message.find("the test table") != std::string::npos);
    return f.error.code;
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("datum table: every field back as written, escapes included") {
  std::vector<DatumRecord> t;
  auto a = record("0123456789abcdef0123456789abcdef", DatumState::kProcessed);
  a.info.tries = 2;
  a.info.duration_ns = 123456789012;
  a.info.files = {{"in", "dir/a b.txt"}, {"other", "x\\y"}};
  a.hashed = {{"images", "dir/a b.txt", std::string(64, 'f'), 17}, {"labels", "x\\y", "00", 0}};
  a.info.outputs = {"out/a b.txt", "back\\slash", "tab\there", "new\nline", "cr\rx", "trailing\\"};
  t.push_back(a);
  auto b = record("b", DatumState::kFailed);
  b.info.error = "cmd exited with status 3\n\tat line 2\\n (not a newline)";
  t.push_back(b);
  t.push_back(record("c", DatumState::kSkipped));    // no files, no outputs
  t.push_back(record("", DatumState::kRecovered));   // empty text fields
  auto d = record("d", DatumState::kPending);
  d.info.files = {{"in", "only-listed"}};            // a file without a hash: listed, not hashed
  t.push_back(d);

  std::string text = datums_text(t);
  CHECK(text.rfind("pfs-datums 1\n", 0) == 0);
  // One line per datum: the escapes leave no raw newline inside one.
  CHECK(std::count(text.begin(), text.end(), '\n') == 1 + static_cast<long>(t.size()));
  auto back = parse_datums_text(text, false, "t");
  d.hashed.clear();
  t.back() = d;
  check_same(t, back);
  // And again: a second round gives the same bytes.
  CHECK(datums_text(back) == text);
}

TEST_CASE("datum table: an unknown state reads as failed (a newer pfs wrote it)") {
  std::string text = "pfs-datums 1\nid\tkey\tteleported\t1\t5\t\t0\t0\n";
  auto back = parse_datums_text(text, false, "t");
  REQUIRE(back.size() == 1);
  CHECK(back[0].info.state == DatumState::kFailed);
}

TEST_CASE("datum table: damaged tables are refused, naming the table") {
  CHECK(code_of("") == ErrorCode::kCorruption);                     // no header
  CHECK(code_of("pfs-datums 2\n") == ErrorCode::kCorruption);       // another format
  CHECK_FALSE(code_of("pfs-datums 1\n"));              // no datums
  CHECK(code_of("pfs-datums 1\nid\tkey\tprocessed\n") == ErrorCode::kCorruption);            // short
  CHECK(code_of("pfs-datums 1\nid\tkey\tprocessed\tx\t5\t\t0\t0\n") == ErrorCode::kCorruption);  // not a number
  CHECK(code_of("pfs-datums 1\nid\tkey\tprocessed\t-1\t5\t\t0\t0\n") == ErrorCode::kCorruption);
  CHECK(code_of("pfs-datums 1\nid\tkey\tprocessed\t1\t5\t\t0\t0\textra\n") == ErrorCode::kCorruption);
  CHECK(code_of("pfs-datums 1\nid\tkey\tprocessed\t1\t5\t\t9\t0\n") == ErrorCode::kCorruption);  // 9 files, none there
  CHECK(code_of("pfs-datums 1\nid\tkey\tprocessed\t1\t99999999999999999999\t\t0\t0\n") == ErrorCode::kCorruption);
  CHECK(code_of("{\"id\": 1}\n", true) == ErrorCode::kCorruption);
  CHECK(code_of("not json\n", true) == ErrorCode::kCorruption);
}

TEST_CASE("datum table: the JSON lines of earlier versions") {
  std::string line =
      R"({"id":"abc","state":"skipped","files":[{"input":"in","path":"a.txt"}],"tries":1,"duration_ns":7,)"
      R"("error":"","outputs":["a.txt"],"key":"k1","hashed":[["images","a.txt","ff",3]]})";
  auto back = parse_datums_text(line + "\n\n" + line + "\n", true, "t");
  REQUIRE(back.size() == 2);
  CHECK(back[0].info.id == "abc");
  CHECK(back[0].info.state == DatumState::kSkipped);
  CHECK(back[0].key == "k1");
  REQUIRE(back[0].hashed.size() == 1);
  CHECK(back[0].hashed[0].repo == "images");
  CHECK(back[0].hashed[0].size == 3);
  CHECK(back[0].info.outputs == std::vector<std::string>{"a.txt"});
}
