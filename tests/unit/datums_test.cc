// datums_test.cc: the datums of pipeline inputs (src/jobs/datums.h):
// Pachyderm's glob, datums of pfs, cross and union inputs, datum ids.
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "datums.h"
#include "fail.h"

using namespace pfs;
using namespace pfs::detail::jobs;

namespace {

struct GlobCase {
  const char* pattern;
  const char* path;
  bool match;
};

// Repos of a test: name -> files (sorted).
using Repos = std::map<std::string, std::vector<InputFile>>;

std::vector<Datum> datums(const PipelineInput& in, const Repos& repos) {
  static const std::vector<InputFile> kNone;
  return make_datums(in, [&](const std::string& repo) -> const std::vector<InputFile>& {
    auto it = repos.find(repo);
    return it == repos.end() ? kNone : it->second;
  });
}

PipelineInput pfs_input(std::string repo, std::string glob, std::string name = "") {
  PipelineInput in;
  in.kind = PipelineInput::Kind::kPfs;
  in.repo = std::move(repo);
  in.glob = std::move(glob);
  in.name = std::move(name);
  return in;
}

PipelineInput combine(PipelineInput::Kind kind, std::vector<PipelineInput> inputs) {
  PipelineInput in;
  in.kind = kind;
  in.inputs = std::move(inputs);
  return in;
}

std::vector<InputFile> files(std::vector<std::string> paths) {
  std::vector<InputFile> out;
  for (auto& p : paths) out.push_back({p, "h-" + p, p.size()});
  return out;
}

// The roots of datums with one part each.
std::vector<std::string> roots(const std::vector<Datum>& ds) {
  std::vector<std::string> out;
  for (auto& d : ds) {
    REQUIRE(d.parts.size() == 1);
    out.push_back(d.parts[0].root);
  }
  return out;
}

std::vector<std::string> paths(const DatumPart& part) {
  std::vector<std::string> out;
  for (auto& f : part.files) out.push_back(f.path);
  return out;
}

// Each part of a datum as "input:root".
std::string describe(const Datum& d) {
  std::string out;
  for (auto& p : d.parts) out += (out.empty() ? "" : " ") + p.input + ":" + p.root;
  return out;
}

const Repos kRepos = {
    {"data", files({"a.txt", "b/c.csv", "b/d.csv", "b/e/f.txt", "dir/x.csv", "dir/y.json", "dir/z.csv"})},
    {"empty", {}},
    {"left", files({"l1", "l2", "l3"})},
    {"right", files({"r1", "r2"})},
};

}  // namespace

TEST_CASE("glob_match follows Pachyderm's glob") {
  const GlobCase cases[] = {
      // the root
      {"/", "", true},
      {"/", "a", false},
      {"/*", "", false},
      {"/**", "", false},
      {"/a", "", false},
      {"//", "", true},  // a trailing '/' is ignored
      // literal names, dots
      {"/a", "a", true},
      {"/a", "b", false},
      {"/a", "ab", false},
      {"/a.txt", "a.txt", true},
      {"/a.txt", "aXtxt", false},
      {"/.hidden", ".hidden", true},
      {"/a/b", "a/b", true},
      {"/a/b", "a", false},
      {"/a", "a/b", false},
      // *
      {"/*", "a", true},
      {"/*", "a.b.c", true},
      {"/*", "a/b", false},
      {"/*/*", "a/b", true},
      {"/*/*", "a", false},
      {"/*/*", "a/b/c", false},
      {"/*.csv", "x.csv", true},
      {"/*.csv", ".csv", true},
      {"/*.csv", "x.csv.gz", false},
      {"/*.csv", "d/x.csv", false},
      {"/dir/*.csv", "dir/x.csv", true},
      {"/dir/*.csv", "dir/y.json", false},
      {"/dir/*.csv", "dir/sub/x.csv", false},
      {"/a*b*c", "aXXbYYc", true},
      {"/a*b*c", "aXX/bYYc", false},
      // ?
      {"/?", "a", true},
      {"/?", "ab", false},
      {"/?", "", false},
      {"/a?c", "abc", true},
      {"/a?c", "a/c", false},
      {"/?", "\xc3\xa9", true},  // one character, two bytes
      // classes
      {"/[abc]", "b", true},
      {"/[abc]", "d", false},
      {"/[a-z]1", "q1", true},
      {"/[a-z]1", "Q1", false},
      {"/[!a-z]", "Q", true},
      {"/[!a-z]", "q", false},
      {"/[^a-z]", "7", true},
      {"/[^a-z]", "m", false},
      {"/a[!x]b", "a/b", false},
      {"/a[/]b", "a/b", false},
      {"/[a-c0-2]", "1", true},
      {"/[\\]]", "]", true},
      {"/[a-]", "-", true},
      // **
      {"/**", "a", true},
      {"/**", "a/b/c", true},
      {"/a/**", "a", false},
      {"/a/**", "a/b", true},
      {"/a/**", "a/b/c", true},
      {"/a/**", "ab/c", false},
      {"/**/c", "a/b/c", true},
      {"/**.csv", "a/b/c.csv", true},
      {"/**.csv", "a/b/c.json", false},
      {"/**/x", "x", false},  // "/**/x" needs a '/' before x past the root
      // braces
      {"/{a,b}", "a", true},
      {"/{a,b}", "b", true},
      {"/{a,b}", "c", false},
      {"/*.{csv,json}", "y.json", true},
      {"/*.{csv,json}", "y.txt", false},
      {"/{a,b{c,d}}", "bd", true},
      {"/{a,b{c,d}}", "b", false},
      {"/{a/*,b}", "a/x", true},
      {"/x{,y}", "x", true},
      {"/x{,y}", "xy", true},
      {"/a,b", "a,b", true},
      // escapes
      {"/\\*", "*", true},
      {"/\\*", "a", false},
      {"/a\\?", "a?", true},
      {"/a\\?", "ab", false},
      {"/\\{a,b\\}", "{a,b}", true},
      {"/\\[a]", "[a]", true},
      // trailing slash, missing leading slash
      {"/dir/", "dir", true},
      {"/*/", "a", true},
      {"/*/", "a/b", false},
      {"dir", "dir", true},
      // invalid patterns match nothing
      {"/[abc", "a", false},
      {"/{a,b", "a", false},
      {"/a\\", "a", false},
      {"/[]", "a", false},
  };
  for (const auto& c : cases) {
    CAPTURE(c.pattern);
    CAPTURE(c.path);
    CHECK(glob_match(c.pattern, c.path) == c.match);
  }
}

TEST_CASE("valid_glob refuses what glob_match cannot read") {
  CHECK(valid_glob("/"));
  CHECK(valid_glob("/**"));
  CHECK(valid_glob("/{a,{b,c}}/[!x-z]?"));
  CHECK(valid_glob("/a}b,c"));
  CHECK_FALSE(valid_glob("/[abc"));
  CHECK_FALSE(valid_glob("/[]"));
  CHECK_FALSE(valid_glob("/[z-a]"));
  CHECK_FALSE(valid_glob("/{a,b"));
  CHECK_FALSE(valid_glob("/a\\"));
  auto bad = pfs_input("data", "/[a");
  CHECK_THROWS_AS(datums(bad, kRepos), pfs::detail::Fail);
}

TEST_CASE("a hostile pattern takes linear time") {
  std::string path(20000, 'a');
  CHECK_FALSE(glob_match("/**a**a**a**a**a**a**a**b", path));
  CHECK_FALSE(glob_match("/*a*a*a*a*a*a*a*a*a*b", path));
  CHECK(glob_match("/**a**a**a**a**a**a**a**a", path));
  CHECK_FALSE(glob_match("/{*,**,a*,*a}{*,**,a*,*a}{*,**,a*,*a}b", path));
}

TEST_CASE("pfs datums: /, /*, /*/*, /**, /dir/*.csv") {
  SUBCASE("/ gives one datum with every file") {
    auto ds = datums(pfs_input("data", "/"), kRepos);
    REQUIRE(ds.size() == 1);
    CHECK(ds[0].parts[0].input == "data");
    CHECK(ds[0].parts[0].root == "");
    CHECK(paths(ds[0].parts[0]) == std::vector<std::string>{"a.txt", "b/c.csv", "b/d.csv", "b/e/f.txt",
                                                             "dir/x.csv", "dir/y.json", "dir/z.csv"});
    CHECK(ds[0].parts[0].files[1].hash == "h-b/c.csv");
    CHECK(ds[0].parts[0].files[1].size == 7);
  }
  SUBCASE("/* gives one per top-level file or directory") {
    auto ds = datums(pfs_input("data", "/*"), kRepos);
    CHECK(roots(ds) == std::vector<std::string>{"a.txt", "b", "dir"});
    CHECK(paths(ds[0].parts[0]) == std::vector<std::string>{"a.txt"});
    CHECK(paths(ds[1].parts[0]) == std::vector<std::string>{"b/c.csv", "b/d.csv", "b/e/f.txt"});
    CHECK(paths(ds[2].parts[0]) == std::vector<std::string>{"dir/x.csv", "dir/y.json", "dir/z.csv"});
  }
  SUBCASE("/*/*") {
    auto ds = datums(pfs_input("data", "/*/*"), kRepos);
    CHECK(roots(ds) == std::vector<std::string>{"b/c.csv", "b/d.csv", "b/e", "dir/x.csv", "dir/y.json",
                                                "dir/z.csv"});
    CHECK(paths(ds[2].parts[0]) == std::vector<std::string>{"b/e/f.txt"});
  }
  SUBCASE("/** gives every path but the root, overlapping") {
    auto ds = datums(pfs_input("data", "/**"), kRepos);
    CHECK(roots(ds) == std::vector<std::string>{"a.txt", "b", "b/c.csv", "b/d.csv", "b/e", "b/e/f.txt", "dir",
                                                "dir/x.csv", "dir/y.json", "dir/z.csv"});
    CHECK(paths(ds[4].parts[0]) == std::vector<std::string>{"b/e/f.txt"});
    CHECK(paths(ds[5].parts[0]) == std::vector<std::string>{"b/e/f.txt"});
    CHECK(ds[4].id != ds[5].id);
  }
  SUBCASE("/dir/*.csv") {
    auto ds = datums(pfs_input("data", "/dir/*.csv"), kRepos);
    CHECK(roots(ds) == std::vector<std::string>{"dir/x.csv", "dir/z.csv"});
    CHECK(paths(ds[1].parts[0]) == std::vector<std::string>{"dir/z.csv"});
  }
  SUBCASE("a named input, a name that is a prefix of another") {
    Repos r = {{"p", files({"a/1", "a.b", "a0", "ab/2"})}};
    auto ds = datums(pfs_input("p", "/a", "in"), r);
    REQUIRE(ds.size() == 1);
    CHECK(ds[0].parts[0].input == "in");
    CHECK(paths(ds[0].parts[0]) == std::vector<std::string>{"a/1"});
  }
  SUBCASE("directories between files that share their prefix") {
    Repos r = {{"p", files({"a.txt", "a/b.txt", "a/b/c", "a/bc/d"})}};
    auto ds = datums(pfs_input("p", "/**"), r);
    CHECK(roots(ds) == std::vector<std::string>{"a", "a.txt", "a/b", "a/b.txt", "a/b/c", "a/bc", "a/bc/d"});
    CHECK(paths(ds[0].parts[0]) == std::vector<std::string>{"a/b.txt", "a/b/c", "a/bc/d"});
    CHECK(paths(ds[2].parts[0]) == std::vector<std::string>{"a/b/c"});
    CHECK(paths(ds[5].parts[0]) == std::vector<std::string>{"a/bc/d"});
  }
  SUBCASE("an unsorted list is sorted") {
    Repos r = {{"p", files({"b", "a/2", "a/1"})}};
    auto ds = datums(pfs_input("p", "/*"), r);
    CHECK(roots(ds) == std::vector<std::string>{"a", "b"});
    CHECK(paths(ds[0].parts[0]) == std::vector<std::string>{"a/1", "a/2"});
  }
}

TEST_CASE("pfs datums: none for an empty repo or a glob matching nothing") {
  CHECK(datums(pfs_input("empty", "/"), kRepos).empty());
  CHECK(datums(pfs_input("empty", "/*"), kRepos).empty());
  CHECK(datums(pfs_input("data", "/nothing/*"), kRepos).empty());
  CHECK(datums(pfs_input("data", "/*.parquet"), kRepos).empty());
}

TEST_CASE("pfs datums: 100,000 files under /* (one binary search per datum)") {
  Repos r;
  auto& fs = r["big"];
  for (int d = 0; d < 1000; d++)
    for (int f = 0; f < 100; f++)
      fs.push_back({"d" + std::to_string(1000 + d) + "/f" + std::to_string(100 + f), "h", 1});
  auto ds = datums(pfs_input("big", "/*"), r);
  REQUIRE(ds.size() == 1000);
  for (auto& d : ds) CHECK_EQ(d.parts[0].files.size(), 100);
  CHECK(ds[0].parts[0].root == "d1000");
  CHECK(ds[999].parts[0].files.back().path == "d1999/f199");
  CHECK(datums(pfs_input("big", "/*/*"), r).size() == 100000);
  CHECK(datums(pfs_input("big", "/"), r)[0].parts[0].files.size() == 100000);
}

TEST_CASE("cross: every combination, the first input slowest") {
  auto in = combine(PipelineInput::Kind::kCross, {pfs_input("left", "/*"), pfs_input("right", "/*")});
  auto ds = datums(in, kRepos);
  REQUIRE(ds.size() == 6);
  std::vector<std::string> got;
  for (auto& d : ds) got.push_back(describe(d));
  CHECK(got == std::vector<std::string>{"left:l1 right:r1", "left:l1 right:r2", "left:l2 right:r1",
                                        "left:l2 right:r2", "left:l3 right:r1", "left:l3 right:r2"});
  CHECK(paths(ds[3].parts[1]) == std::vector<std::string>{"r2"});
  CHECK(ds[3].id == datum_id(ds[3].parts));
  SUBCASE("an empty side: no datums") {
    auto e = combine(PipelineInput::Kind::kCross, {pfs_input("left", "/*"), pfs_input("empty", "/*")});
    CHECK(datums(e, kRepos).empty());
    auto m = combine(PipelineInput::Kind::kCross, {pfs_input("left", "/nothing"), pfs_input("right", "/*")});
    CHECK(datums(m, kRepos).empty());
  }
}

TEST_CASE("union: each input in turn, identical datums once") {
  auto in = combine(PipelineInput::Kind::kUnion, {pfs_input("left", "/*"), pfs_input("right", "/*")});
  std::vector<std::string> got;
  for (auto& d : datums(in, kRepos)) got.push_back(describe(d));
  CHECK(got == std::vector<std::string>{"left:l1", "left:l2", "left:l3", "right:r1", "right:r2"});

  auto dup = combine(PipelineInput::Kind::kUnion,
                     {pfs_input("left", "/l{1,2}"), pfs_input("right", "/*"), pfs_input("left", "/*")});
  got.clear();
  for (auto& d : datums(dup, kRepos)) got.push_back(describe(d));
  CHECK(got == std::vector<std::string>{"left:l1", "left:l2", "right:r1", "right:r2", "left:l3"});

  SUBCASE("a cross in a union") {
    auto nested = combine(PipelineInput::Kind::kUnion,
                          {combine(PipelineInput::Kind::kCross, {pfs_input("left", "/l1"), pfs_input("right", "/*")}),
                           pfs_input("data", "/dir")});
    got.clear();
    for (auto& d : datums(nested, kRepos)) got.push_back(describe(d));
    CHECK(got == std::vector<std::string>{"left:l1 right:r1", "left:l1 right:r2", "data:dir"});
  }
  SUBCASE("a union in a cross") {
    auto nested = combine(PipelineInput::Kind::kCross,
                          {combine(PipelineInput::Kind::kUnion, {pfs_input("left", "/l1"), pfs_input("right", "/r2")}),
                           pfs_input("data", "/a.txt")});
    got.clear();
    for (auto& d : datums(nested, kRepos)) got.push_back(describe(d));
    CHECK(got == std::vector<std::string>{"left:l1 data:a.txt", "right:r2 data:a.txt"});
  }
}

TEST_CASE("datum ids: stable, and changed by any field") {
  auto a = datums(pfs_input("data", "/*"), kRepos);
  auto b = datums(pfs_input("data", "/*"), kRepos);
  REQUIRE(a.size() == 3);
  for (std::size_t i = 0; i < a.size(); i++) {
    CHECK(a[i].id == b[i].id);
    CHECK(a[i].id.size() == 32);
    CHECK(a[i].id.find_first_not_of("0123456789abcdef") == std::string::npos);
  }
  CHECK(a[0].id != a[1].id);

  // The same files from another repo list, in another call: the same id.
  Repos other = {{"data", files({"a.txt", "zzz/other"})}};
  CHECK(datums(pfs_input("data", "/a.txt"), other)[0].id == a[0].id);

  const auto base = a[1].parts;
  auto changed = [&](auto edit) {
    auto parts = base;
    edit(parts);
    return datum_id(parts);
  };
  const std::string id = datum_id(base);
  CHECK(id == a[1].id);
  CHECK(changed([](auto& p) { p[0].files[0].hash += "0"; }) != id);
  CHECK(changed([](auto& p) { p[0].files[0].size++; }) != id);
  CHECK(changed([](auto& p) { p[0].files[0].path = "b/c.tsv"; }) != id);
  CHECK(changed([](auto& p) { p[0].input = "data2"; }) != id);
  CHECK(changed([](auto& p) { p[0].root = "b/"; }) != id);
  CHECK(changed([](auto& p) { p[0].files.pop_back(); }) != id);
  // Fields that run into each other still differ.
  CHECK(changed([](auto& p) { p[0].input = "datab", p[0].root = ""; }) != id);
  CHECK(datums(pfs_input("data", "/*", "other"), kRepos)[0].id != a[0].id);
  // Parts split differently.
  std::vector<DatumPart> one = {{"x", "", files({"a", "b"}), "x"}};
  std::vector<DatumPart> two = {{"x", "", files({"a"}), "x"}, {"x", "", files({"b"}), "x"}};
  CHECK(datum_id(one) != datum_id(two));
}
