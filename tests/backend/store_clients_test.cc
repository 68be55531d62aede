// store_clients_test.cc: the store conformance suite (store_fixture.h) on
// the clients themselves: a reader with a file cache, and the client under
// test answering exactly as the store itself does.
#include <cstdint>
#include <span>
#include <type_traits>
#include <utility>

#include "store_fixture.h"

TEST_CASE(
    "the file cache of a long-running reader serves commits exactly, never a branch's changes") {
  Store s("cache");
  OpenOptions oo;
  oo.file_cache_bytes = 1 << 20;
  Connection reader(s.path, oo);  // remotely: a server of the caching store
  Client& c = *reader;
  auto read = [&](const Ref& ref, const std::string& p, std::uint64_t off = 0,
                  std::size_t n = 100) {
    auto f = c.open_file(ref, p);
    REQUIRE_MESSAGE(f.ok(), (f.ok() ? "" : f.error().message));
    std::string buf(n, '\0');
    auto got = (*f)->read_at(off, std::span<char>(buf.data(), buf.size()));
    REQUIRE(got.ok());
    buf.resize(*got);
    return std::pair<std::string, std::uint64_t>(buf, (*f)->info().size);
  };
  s.put("a.txt", "version one");
  std::string c1 = s.commit();
  CHECK(read(Ref::commit(c1), "a.txt").first == "version one");  // fills the cache
  CHECK(read(Ref::commit(c1), "a.txt").first == "version one");  // from it
  CHECK(read(Ref::commit(c1), "a.txt", 8, 3).first == "one");    // a range of it
  CHECK(read(Ref::commit(c1), "a.txt", 50, 3).first.empty());    // past the end
  CHECK(read(Ref::commit(c1), "a.txt").second == 11);
  // A branch moves on: its head and working state are read afresh, the old
  // commit still reads as it was.
  s.put("a.txt", "version two!");
  CHECK(read(Ref::branch("master"), "a.txt").first == "version two!");
  CHECK(read(Ref::commit("master"), "a.txt").first == "version one");
  std::string c2 = s.commit();
  CHECK(read(Ref::commit("master"), "a.txt").first == "version two!");
  CHECK(read(Ref::commit(c1), "a.txt").first == "version one");
  CHECK(read(Ref::commit(c2), "a.txt").first == "version two!");
  // Errors are the same as without the cache.
  auto missing = c.open_file(Ref::commit(c1), "nope");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().code == ErrorCode::kNotFound);
  // A deleted commit is gone, cached or not.
  REQUIRE(c.create_branch("side", c1).ok());
  std::string c3 = c.commit("side", "").value().id;
  CHECK(read(Ref::commit(c3), "a.txt").first == "version one");
  REQUIRE(c.delete_branch("side").ok());
  REQUIRE(c.delete_commit(c3).ok());
  auto gone = c.open_file(Ref::commit(c3), "a.txt");
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().code == ErrorCode::kNotFound);
}

namespace {
std::string describe(const FileInfo& f) {
  return f.path + " " + std::to_string(static_cast<int>(f.type)) + " " + std::to_string(f.size) +
         " " + std::to_string(f.mtime_ns);
}
std::string describe(const CommitInfo& c) {
  return c.id + " " + c.parent + " " + c.merge_parent + " " + c.branch + " " +
         std::to_string(c.time_ns) + " " + c.message + " " + std::to_string(c.stats.files) + " " +
         std::to_string(c.stats.bytes);
}
std::string describe(const BranchInfo& b) {
  return b.name + " " + b.head + " " + std::to_string(b.dirty) + " " +
         std::to_string(b.stats.files) + " " + std::to_string(b.stats.bytes) + " " +
         std::to_string(b.created_ns);
}
std::string describe(const DiffEntry& d) {
  return std::to_string(static_cast<int>(d.change)) + " " + d.path + " " +
         std::to_string(d.old_size) + " " + std::to_string(d.new_size);
}
std::string describe(const MergeResult& m) {
  std::string out = std::to_string(m.up_to_date) + " " + m.base + " " +
                    (m.commit ? describe(*m.commit) : "no commit");
  for (const auto& d : m.applied) out += "\n" + describe(d);
  for (const auto& p : m.conflicts) out += "\nconflict " + p;
  return out;
}
template <class T>
std::string describe(const Result<T>& r) {
  if (!r)
    return "error " + std::to_string(static_cast<int>(r.error().code)) + ": " + r.error().message;
  if constexpr (std::is_same_v<T, void>) {
    return "ok";
  } else if constexpr (std::is_same_v<T, StoreInfo>) {
    return r->path + " " + r->backend + " " + std::to_string(r->format) + " " +
           std::to_string(r->commits) + " " + std::to_string(r->branches);
  } else if constexpr (requires { r->begin(); }) {
    std::string out;
    for (const auto& x : *r) out += describe(x) + "\n";
    return out;
  } else {
    return describe(*r);
  }
}
}  // namespace

TEST_CASE("the client under test answers exactly as the store itself does") {
  // Remotely, every figure, time and error message must come through as
  // the store gives it (pfs/remote.h); locally this compares the store with
  // a second client of it.
  Store s;
  s.put("d/a", "12");
  s.put("d/e/b", "345");
  std::string c1 = s.commit("master", "first: with \"quotes\", ünïcode and a\nnewline");
  s.put("d/a", "changed");
  REQUIRE_OK(s->create_branch("dev", c1));
  auto opened = open_store(s.path);
  REQUIRE_OK(opened);
  Client& local = **opened;
  Client& tested = *s.c;
  ListOptions rec;
  rec.recursive = true;
  auto both = [&](auto call) { CHECK(describe(call(tested)) == describe(call(local))); };
  both([](Client& c) { return c.info(); });
  both([&](Client& c) { return c.list_files(M, ".", rec); });
  both([&](Client& c) { return c.list_files(Ref::commit(c1), "d/*", {}); });
  both([&](Client& c) { return c.stat_file(Ref::commit(c1), "d/e/b"); });
  both([&](Client& c) { return c.stat_file(M, "d"); });
  both([&](Client& c) { return c.inspect_commit(c1); });
  both([&](Client& c) { return c.list_commits(LogOptions{"master", true, {}}); });
  both([&](Client& c) { return c.list_branches(); });
  both([&](Client& c) { return c.inspect_branch("master"); });
  // Errors: the same code and message.
  both([&](Client& c) { return c.inspect_branch("nope"); });
  both([&](Client& c) { return c.inspect_branch("bad name"); });
  both([&](Client& c) { return c.inspect_commit("ffffffffffffffffffffffffffffffff"); });
  both([&](Client& c) { return c.stat_file(M, "d/nope"); });
  both([&](Client& c) { return c.stat_file(M, "../x"); });
  both([&](Client& c) { return c.list_files(Ref::branch("nope"), ".", {}); });
  both([&](Client& c) { return c.create_branch("dev"); });
  both([&](Client& c) { return c.delete_commit(c1); });
  both([&](Client& c) { return c.merge("master", "master"); });
  both([&](Client& c) { return c.revert("master", c1); });
  both([&](Client& c) { return c.diff(Ref::any("nope"), M); });
  both([&](Client& c) {
    std::string out;
    auto sink = Sink::to_string(&out);
    return c.get_file(M, "d", *sink);
  });
  both([&](Client& c) {
    auto src = Source::from_string("x");
    return c.put_file("master", "d/a/under-a-file", *src);
  });
}
