// store_commits_test.cc: the store conformance suite (store_fixture.h) on
// commits: snapshots and history, diff, revert, deleting commits,
// concurrent committers, fsck and gc.
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <iterator>
#include <mutex>
#include <thread>

#include <pfs/json.h>

#include "store_fixture.h"

TEST_CASE("commits are immutable snapshots with history") {
  Store s;
  s.put("f", "v1");
  std::string c1 = s.commit("master", "first");
  s.put("f", "v2");
  s.put("g", "new");
  CHECK(s.get(Ref::commit(c1), "f") == "v1");
  std::string c2 = s.commit("master", "second");
  s.put("f", "v3");
  CHECK(s.get(Ref::commit(c1), "f") == "v1");
  CHECK(s.get(Ref::commit(c2), "f") == "v2");
  CHECK(s.get(Ref::commit("master"), "f") == "v2");  // a branch name as a commit: its head
  CHECK(s.get(M, "f") == "v3");                      // the working state
  auto log = s->list_commits();
  REQUIRE_OK(log);
  REQUIRE(log->size() == 2);
  CHECK((*log)[0].id == c2);
  CHECK((*log)[0].parent == c1);
  CHECK((*log)[0].message == "second");
  CHECK((*log)[0].stats.files == 2);
  CHECK((*log)[0].stats.bytes == 5);
  CHECK((*log)[1].id == c1);
  CHECK((*log)[1].parent.empty());
  CHECK((*log)[0].time_ns >= (*log)[1].time_ns);
  auto c = s->inspect_commit(c2.substr(0, 6));
  REQUIRE_OK(c);
  CHECK(c->id == c2);
  CHECK(code(s->inspect_commit(c2.substr(0, 3))) == ErrorCode::kNotFound);
  CHECK(code(s->inspect_commit("ffffffffffffffffffffffffffffffff")) == ErrorCode::kNotFound);
  CHECK(code(s->inspect_commit("")) == ErrorCode::kInvalidArgument);
  LogOptions lim;
  lim.limit = 1;
  CHECK(s->list_commits(lim)->size() == 1);
  // The commit's tree is read-only on disk too.
  if (on_btrfs()) CHECK(::access((s.path + "/btrfs/commits/" + c1 + "/f").c_str(), W_OK) != 0);
  s.check_fsck();
}

TEST_CASE("an unchanged branch still commits, and dirty tracks uncommitted writes") {
  Store s;
  std::string c1 = s.commit();
  std::string c2 = s.commit();
  CHECK(c1 != c2);
  CHECK_FALSE(s->inspect_branch("master")->dirty);
  s.put("x", "1");
  CHECK(s->inspect_branch("master")->dirty);
  s.commit();
  CHECK_FALSE(s->inspect_branch("master")->dirty);
}

TEST_CASE("diff reports added, modified and deleted files with sizes") {
  Store s;
  s.put("same", "s");
  s.put("mod", "old");
  s.put("gone", "bye");
  s.put("rewrite", "equal");
  s.put("dir/x", "1");
  std::string c1 = s.commit();
  s.put("mod", "newer");
  s.put("rewrite", "equal");  // same bytes, new inode: not a change
  {
    auto _r = s->delete_file("master", "gone");
    REQUIRE_OK(_r);
  }
  {
    auto _r = s->delete_file("master", "dir");
    REQUIRE_OK(_r);
  }
  s.put("dir", "now a file");
  s.put("new/y", "yy");
  std::string c2 = s.commit();
  auto d = s->diff(Ref::commit(c1), Ref::commit(c2));
  REQUIRE_OK(d);
  std::vector<std::string> got;
  for (auto& e : *d)
    got.push_back(std::string(change_name(e.change)) + " " + e.path + " " +
                  std::to_string(e.old_size) + "->" + std::to_string(e.new_size));
  CHECK(got == std::vector<std::string>{"added dir 0->10", "deleted dir/x 1->0",
                                        "deleted gone 3->0", "modified mod 3->5",
                                        "added new/y 0->2"});
  auto none = s->diff(Ref::commit(c2), Ref::any("master"));
  REQUIRE_OK(none);
  CHECK(none->empty());
  s.put("wip", "w");
  auto dirty = s->diff(Ref::any(c2), Ref::any("master"));  // a branch name: its working state
  REQUIRE(dirty->size() == 1);
  CHECK((*dirty)[0].path == "wip");
  CHECK(code(s->diff(Ref::any("nope"), Ref::any("master"))) == ErrorCode::kNotFound);
}

TEST_CASE("revert restores a prior commit as a new commit, keeping history") {
  Store s;
  s.put("f", "good");
  std::string good = s.commit("master", "good");
  s.put("f", "broken");
  s.put("junk", "j");
  std::string bad = s.commit("master", "bad");
  s.put("wip", "uncommitted");
  CHECK(code(s->revert("master", good)) == ErrorCode::kConflict);  // dirty: refuse
  CHECK(s.get(M, "wip") == "uncommitted");
  RevertOptions force;
  force.force = true;
  auto r = s->revert("master", good.substr(0, 8), force);
  REQUIRE_OK(r);
  CHECK(r->parent == bad);
  CHECK(r->message == "revert to " + good);
  CHECK(s.get(M, "f") == "good");
  CHECK(s.paths(M) == std::vector<std::string>{"f"});
  CHECK(s.get(Ref::commit(bad), "junk") == "j");  // history is kept
  auto log = s->list_commits();
  CHECK(log->size() == 3);
  auto b = s->inspect_branch("master");
  CHECK_FALSE(b->dirty);
  CHECK(b->head == r->id);
  CHECK(b->stats.files == 1);
  CHECK(code(s->revert("master", "0000")) == ErrorCode::kNotFound);
  s.check_fsck();
}

TEST_CASE("delete a commit only where nothing depends on it") {
  Store s;
  s.put("f", "1");
  std::string c1 = s.commit();
  s.put("f", "2");
  std::string c2 = s.commit();
  CHECK(code(s->delete_commit(c2)) == ErrorCode::kConflict);  // head of master
  CHECK(code(s->delete_commit(c1)) == ErrorCode::kConflict);  // parent of c2
  {
    auto _r = s->create_branch("tmp");
    REQUIRE_OK(_r);
  }
  s.put("t", "t", "tmp");
  std::string t1 = s.commit("tmp");
  {
    auto _r = s->delete_branch("tmp");
    REQUIRE_OK(_r);
  }
  {
    auto _r = s->delete_commit(t1);
    REQUIRE_OK(_r);
  }
  CHECK(code(s->inspect_commit(t1)) == ErrorCode::kNotFound);
  CHECK_FALSE(fs::exists(tree_path(s, "commits", t1)));
  CHECK(code(s->delete_commit(t1)) == ErrorCode::kNotFound);
  s.check_fsck();
}

TEST_CASE("concurrent writers and committers lose nothing") {
  Store s;
  constexpr int kThreads = 4, kFiles = 40;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  std::mutex mu;
  std::string errors;  // what failed, for the report
  auto failed = [&](const Error& e) {
    failures++;
    std::lock_guard<std::mutex> g(mu);
    errors += e.message + "\n";
  };
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kFiles; ++i) {
        auto src = Source::from_string(std::string(static_cast<std::size_t>(i + 1), 'a' + t));
        auto r = s->put_file("master", "t" + std::to_string(t) + "/f" + std::to_string(i), *src);
        if (!r) failed(r.error());
      }
    });
  threads.emplace_back([&] {
    for (int i = 0; i < 10; ++i) {
      auto r = s->commit("master");
      if (!r) failed(r.error());
    }
  });
  for (auto& th : threads) th.join();
  CHECK_MESSAGE(failures == 0, errors);
  s.commit();
  auto b = s->inspect_branch("master");
  CHECK(b->stats.files == kThreads * kFiles);
  CHECK(s.paths(M, "", true).size() == kThreads * kFiles + kThreads);
  CHECK(s.get(M, "t2/f9") == std::string(10, 'c'));
  auto log = s->list_commits();
  CHECK(log->size() == 11);
  s.check_fsck();
}

TEST_CASE("fsck finds leftovers and --repair removes them") {
  Store s;
  s.put("f", "1");
  s.commit();
  s.put("f", "2");
  std::string c2 = s.commit();
  {
    auto _r = s->create_branch("tmp");
    REQUIRE_OK(_r);
  }
  std::string t = s.commit("tmp");
  {
    auto _r = s->delete_branch("tmp");
    REQUIRE_OK(_r);
  }
  // Simulate a crash between the two steps of delete-commit: metadata gone,
  // tree left behind.
  fs::remove(s.path + "/meta/commits/" + t + ".json");
  auto r = s->fsck();
  REQUIRE_OK(r);
  CHECK(r->problems.empty());  // a leftover is not damage
  REQUIRE(r->leftovers.size() == 1);
  CHECK(r->leftovers[0].find(t) != std::string::npos);
  auto fixed = s->fsck(true);
  REQUIRE_OK(fixed);
  CHECK(fixed->problems.empty());
  CHECK(fixed->leftovers.empty());
  CHECK(fixed->repaired.size() == 1);
  s.check_fsck();
  // A wrong size figure is found too.
  std::string meta = s.path + "/meta/commits/" + c2 + ".json";
  std::ifstream in(meta);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  auto pos = text.find("\"files\": 1");
  REQUIRE(pos != std::string::npos);
  text.replace(pos, 10, "\"files\": 7");
  std::ofstream(meta) << text;
  auto r2 = s->fsck();
  REQUIRE_OK(r2);
  CHECK(r2->problems.size() == 1);
}

TEST_CASE("gc removes only what no commit or branch reaches") {
  Store s;
  s.put("keep/a", random_bytes(700 << 10, 3));
  s.put("keep/b", "small");
  std::string c1 = s.commit();
  {
    auto r = s->create_branch("tmp");
    REQUIRE_OK(r);
  }
  s.put("doomed", random_bytes(2 << 20, 4), "tmp");
  std::string t1 = s.commit("tmp");
  s.put("keep/b", "overwritten");  // the old working state's manifests become garbage
  REQUIRE_OK(s->delete_branch("tmp"));
  REQUIRE_OK(s->delete_commit(t1));
  auto g = s->gc();
  REQUIRE_OK(g);
  if (on_btrfs()) {
    CHECK(g->objects_removed == 0);  // btrfs frees space when the commit goes
  } else {
    CHECK(g->bytes_removed >= (2u << 20));
    CHECK(g->objects_kept > 0);
    auto again = s->gc();
    REQUIRE_OK(again);
    CHECK(again->objects_removed == 0);
  }
  CHECK(s.get(Ref::commit(c1), "keep/a") == random_bytes(700 << 10, 3));
  CHECK(s.get(Ref::commit(c1), "keep/b") == "small");
  CHECK(s.get(M, "keep/b") == "overwritten");
  s.check_fsck();
}
