// store_big_data_test.cc: the store conformance suite (store_fixture.h) on
// big files read whole and by ranges, writes at an offset, and big
// directories changed at random.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <set>

#include <pfs/json.h>

#include "store_fixture.h"

namespace {
// FNV-1a of a name: where the portable backend ends a directory page
// (docs/format.md). Used to make names that force its rarer cases.
std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char ch : s) {
    h ^= ch;
    h *= 0x100000001b3ULL;
  }
  return h;
}
}  // namespace

TEST_CASE("big files read back whole and by ranges, also across chunk boundaries") {
  Store s;
  std::string big = random_bytes(9 << 20, 1);  // several chunks on the portable backend
  s.put("big.bin", big);
  std::string c = s.commit();
  CHECK(s.get(Ref::commit(c), "big.bin") == big);
  for (std::uint64_t off : {0ull, 1ull, (512ull << 10) - 1, 4ull << 20, (9ull << 20) - 10}) {
    std::string out;
    auto sink = Sink::to_string(&out);
    ReadRange r;
    r.offset = off;
    r.length = 3 << 20;
    REQUIRE_OK(s->get_file(Ref::commit(c), "big.bin", *sink, r));
    CHECK(out == big.substr(off, 3 << 20));
  }
  // Append, twice; a change in the middle; all read back.
  std::string more = random_bytes(1 << 20, 2);
  for (int i = 0; i < 2; i++) {
    auto src = Source::from_string(more);
    PutOptions opts;
    opts.append = true;
    REQUIRE_OK(s->put_file("master", "big.bin", *src, opts));
    big += more;
  }
  CHECK(s.get(M, "big.bin") == big);
  std::string changed = big;
  changed[5 << 20] ^= 1;
  s.put("big.bin", changed);
  auto d = s->diff(Ref::commit(c), M);
  REQUIRE_OK(d);
  REQUIRE(d->size() == 1);
  CHECK((*d)[0].change == DiffEntry::Change::kModified);
  CHECK(s.get(M, "big.bin") == changed);
  s.check_fsck();
}

TEST_CASE("put_file at an offset overwrites a range, extends the file, and refuses bad offsets") {
  Store s;
  std::string big = random_bytes(6 << 20, 5);
  s.put("f", big);
  std::string c0 = s.commit();
  auto write_at = [&](std::uint64_t off, const std::string& data) {
    auto src = Source::from_string(data);
    PutOptions o;
    o.offset = off;
    return s->put_file("master", "f", *src, o);
  };
  std::string patch = random_bytes(300 << 10, 6);
  REQUIRE_OK(write_at(3 << 20, patch));
  big.replace(3 << 20, patch.size(), patch);
  CHECK(s.get(M, "f") == big);
  REQUIRE_OK(write_at(big.size() - 100, patch));  // runs past the end: extends
  big.replace(big.size() - 100, 100, patch);
  CHECK(s.get(M, "f") == big);
  auto info = s->stat_file(M, "f");
  REQUIRE_OK(info);
  CHECK(info->size == big.size());
  REQUIRE_OK(write_at(big.size(), "tail"));  // at the very end: an append
  big += "tail";
  CHECK(s.get(M, "f") == big);
  auto b = s->inspect_branch("master");
  REQUIRE_OK(b);
  CHECK(b->stats.bytes == big.size());
  // Refused, changing nothing: past the end, no such file, with append.
  CHECK(code(write_at(big.size() + 1, "x")) == ErrorCode::kInvalidArgument);
  auto src = Source::from_string("x");
  PutOptions o;
  o.offset = 0;
  CHECK(code(s->put_file("master", "nofile", *src, o)) == ErrorCode::kNotFound);
  auto src2 = Source::from_string("x");
  o.append = true;
  CHECK(code(s->put_file("master", "f", *src2, o)) == ErrorCode::kInvalidArgument);
  CHECK(s.get(M, "f") == big);
  CHECK(code(s->stat_file(M, "nofile")) == ErrorCode::kNotFound);
  // The commit before is untouched; the diff sees one modified file.
  CHECK(s.get(Ref::commit(c0), "f") == random_bytes(6 << 20, 5));
  std::string c1 = s.commit();
  auto d = s->diff(Ref::commit(c0), Ref::commit(c1));
  REQUIRE_OK(d);
  REQUIRE(d->size() == 1);
  CHECK((*d)[0].change == DiffEntry::Change::kModified);
  s.check_fsck();
}

TEST_CASE("a big directory changed at random reads back right and stays canonical") {
  // On the portable backend, a directory of more than 64 entries is stored
  // as pages, and a change rewrites only the pages it touches; fsck checks
  // that the result is exactly what paging the whole directory would give.
  // The pool has ordinary names and a run of 150 names none of which ends a
  // page by its hash, so pages there end at 64 entries and an insertion or
  // deletion moves the ends of the pages after it.
  Store s;
  std::vector<std::string> pool;
  for (int i = 0; i < 250; i++) pool.push_back("n" + std::to_string(i * 7919 % 10007));
  for (int i = 0; pool.size() < 400; i++) {
    std::string name = "run" + std::to_string(10000 + i);
    if (fnv1a(name) % 16 != 0) pool.push_back(name);
  }
  std::mt19937 rng(42);
  std::map<std::string, std::string> model;  // path -> content
  auto pick = [&] { return pool[rng() % pool.size()]; };
  for (const auto& n : pool)
    if (rng() % 4 != 0) model["big/" + n] = "v0 " + n;
  for (const auto& [p, data] : model) s.put(p, data);
  s.commit();
  for (int round = 1; round <= 12; round++) {
    int ops = round % 3 == 0 ? 60 : 8;
    for (int k = 0; k < ops; k++) {
      std::string p = "big/" + pick();
      switch (rng() % 4) {
        case 0:
        case 1: {  // add or overwrite a file
          std::string data = "v" + std::to_string(round) + " " + p;
          s.put(p, data);
          model[p] = data;
          break;
        }
        case 2: {  // delete one, when there
          auto r = s->delete_file("master", p);
          if (model.erase(p)) {
            CHECK(r.ok());
          } else {
            CHECK(!r.ok());
          }
          break;
        }
        default: {  // a file in a subdirectory: changes the entry of a directory
          std::string q = "big/sub" + pick().substr(0, 3) + "/" + pick();
          s.put(q, "in a subdirectory");
          model[q] = "in a subdirectory";
        }
      }
    }
    std::string id = s.commit("master", "round " + std::to_string(round));
    std::vector<std::string> want;
    std::set<std::string> dirs;
    for (const auto& [p, data] : model) {
      auto slash = p.rfind('/');
      if (p.substr(0, slash) != "big") dirs.insert(p.substr(0, slash) + "/");
      want.push_back(p);
    }
    want.insert(want.end(), dirs.begin(), dirs.end());
    want.push_back("big/");
    std::sort(want.begin(), want.end());
    auto got = s.paths(Ref::commit(id));
    std::sort(got.begin(), got.end());
    CHECK(got == want);
    for (int k = 0; k < 5; k++) {
      auto it = std::next(model.begin(), static_cast<long>(rng() % model.size()));
      CHECK(s.get(Ref::commit(id), it->first) == it->second);
    }
    s.check_fsck();
  }
}

TEST_CASE("a directory of 10,000 files lists and diffs whole (btrfs stats it on several threads)") {
  Store s;
  std::string local = unique_dir("many");
  std::filesystem::create_directories(local);
  for (int i = 0; i < 10000; i++) {
    std::ofstream f(local + "/f" + std::to_string(i), std::ios::binary);
    f << std::string(static_cast<std::size_t>(i % 7), 'x');
  }
  REQUIRE_OK(s->put_dir("master", ".", local));
  std::filesystem::remove_all(local);
  auto check_listing = [&](const Ref& ref, std::size_t want, bool changed) {
    auto l = s->list_files(ref, "");
    REQUIRE_OK(l);
    CHECK(l->size() == want);
    CHECK(std::is_sorted(l->begin(), l->end(), [](const FileInfo& a, const FileInfo& b) { return a.path < b.path; }));
    std::size_t wrong = 0;
    for (const auto& f : *l) {
      int i = std::stoi(f.path.substr(1));
      if (f.type != FileInfo::Type::kFile || f.size != static_cast<std::uint64_t>(i % 7) + (changed && i == 77 ? 3 : 0)) wrong++;
    }
    CHECK(wrong == 0);
  };
  check_listing(M, 10000, false);
  std::string c1 = s.commit();
  s.put("f77", std::string(77 % 7 + 3, 'y'));
  REQUIRE_OK(s->delete_file("master", "f5000"));
  REQUIRE_OK(s->delete_file("master", "f9999"));
  s.put("f10000", std::string(10000 % 7, 'z'));
  std::string c2 = s.commit();
  check_listing(Ref::commit(c2), 9999, true);
  auto d = s->diff(Ref::commit(c1), Ref::commit(c2));
  REQUIRE_OK(d);
  std::vector<std::string> got;
  for (auto& e : *d) got.push_back(std::string(change_name(e.change)) + " " + e.path);
  CHECK(got == std::vector<std::string>{"added f10000", "deleted f5000", "modified f77", "deleted f9999"});
}
