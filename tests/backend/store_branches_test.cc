// store_branches_test.cc: the store conformance suite (store_fixture.h) on
// branches: creating, listing and deleting them, moving a head by
// compare-and-swap, and merging one into another.
#include "store_fixture.h"

TEST_CASE("branches: create, write independently, list, delete") {
  Store s;
  s.put("shared", "base");
  std::string c1 = s.commit();
  auto dev = s->create_branch("dev", c1);
  REQUIRE_OK(dev);
  CHECK(dev->head == c1);
  s.put("shared", "dev", "dev");
  s.put("only-dev", "d", "dev");
  CHECK(s.get(M, "shared") == "base");
  CHECK(s.get(Ref::branch("dev"), "shared") == "dev");
  std::string d1 = s.commit("dev");
  auto log = s->list_commits(LogOptions{"dev", false, {}});
  REQUIRE(log->size() == 2);
  CHECK((*log)[0].id == d1);
  CHECK((*log)[0].branch == "dev");
  CHECK((*log)[1].id == c1);
  auto all = s->list_commits(LogOptions{"master", true, {}});
  CHECK(all->size() == 2);
  auto branches = s->list_branches();
  REQUIRE(branches->size() == 2);
  CHECK((*branches)[0].name == "dev");
  CHECK((*branches)[1].name == "master");
  CHECK(code(s->create_branch("dev")) == ErrorCode::kAlreadyExists);
  CHECK(code(s->create_branch("bad/name")) == ErrorCode::kInvalidArgument);
  CHECK(code(s->create_branch("x", "deadbeef")) == ErrorCode::kNotFound);
  CHECK(code(s->delete_branch("nope")) == ErrorCode::kNotFound);
  auto from_default = s->create_branch("copy");  // master's head
  REQUIRE_OK(from_default);
  CHECK(from_default->head == c1);
  {
    auto _r = s->delete_branch("dev");
    REQUIRE_OK(_r);
  }
  CHECK(code(s->inspect_branch("dev")) == ErrorCode::kNotFound);
  CHECK(s.get(Ref::commit(d1), "only-dev") == "d");  // its commits stay
  CHECK_FALSE(fs::exists(tree_path(s, "branches", "dev")));
  {
    auto _r = s->create_branch("dev", d1);
    REQUIRE_OK(_r);
  }  // the name can be used again
  CHECK(s.get(Ref::branch("dev"), "only-dev") == "d");
  s.check_fsck();
}

TEST_CASE("a branch from a master without commits starts empty") {
  Store s;
  s.put("x", "1");
  {
    auto _r = s->create_branch("dev");
    REQUIRE_OK(_r);
  }
  CHECK(s.paths(Ref::branch("dev")).empty());
}

TEST_CASE("set_branch_head moves a branch by compare-and-swap") {
  Store s;
  s.put("f", "1");
  std::string c1 = s.commit();
  s.put("f", "2");
  std::string c2 = s.commit();
  SetHeadOptions expect;
  expect.expected_head = c1;  // stale: master's head is c2
  CHECK(code(s->set_branch_head("master", c1, expect)) == ErrorCode::kConflict);
  CHECK(s->inspect_branch("master")->head == c2);
  expect.expected_head = c2;
  auto moved = s->set_branch_head("master", c1, expect);
  REQUIRE_OK(moved);
  CHECK(moved->head == c1);
  CHECK(s.get(M, "f") == "1");
  // A missing branch is created ("" expects no branch).
  SetHeadOptions none;
  none.expected_head = "";
  auto made = s->set_branch_head("dev", c2, none);
  REQUIRE_OK(made);
  CHECK(s.get(Ref::branch("dev"), "f") == "2");
  // Uncommitted writes hold it back, unless forced (they are discarded).
  s.put("wip", "w", "dev");
  CHECK(code(s->set_branch_head("dev", c1)) == ErrorCode::kConflict);
  SetHeadOptions force;
  force.force = true;
  REQUIRE_OK(s->set_branch_head("dev", c1, force));
  CHECK(s.paths(Ref::branch("dev")) == std::vector<std::string>{"f"});
  CHECK_FALSE(s->inspect_branch("dev")->dirty);
  CHECK(code(s->set_branch_head("dev", "ffffffffffffffffffffffffffffffff")) ==
        ErrorCode::kNotFound);
  CHECK(code(s->set_branch_head("bad name", c1)) == ErrorCode::kInvalidArgument);
  s.check_fsck();
}

TEST_CASE("merge: clean three-way merge of a deep history with branches") {
  Store s;
  s.put("base", "0");
  s.put("edit-on-dev", "0");
  s.put("edit-on-master", "0");
  s.put("delete-on-dev", "0");
  std::string c1 = s.commit("master", "c1");
  {
    auto _r = s->create_branch("dev", c1);
    REQUIRE_OK(_r);
  }
  s.put("edit-on-master", "m");
  std::string c2 = s.commit("master", "c2");
  s.put("edit-on-dev", "d", "dev");
  {
    auto _r = s->delete_file("dev", "delete-on-dev");
    REQUIRE_OK(_r);
  }
  s.put("sub/new-on-dev", "n", "dev");
  s.commit("dev", "d1");
  {
    auto _r = s->create_branch("feature", "dev");
    REQUIRE_OK(_r);
  }
  s.put("feature-file", "f", "feature");
  s.commit("feature", "f1");
  auto mf = s->merge("dev", "feature");
  REQUIRE_OK(mf);
  REQUIRE(mf->commit);
  CHECK(mf->conflicts.empty());
  auto m = s->merge("master", "dev");
  REQUIRE_OK(m);
  REQUIRE(m->commit);
  CHECK(m->base == c1);
  CHECK(m->commit->parent == c2);
  CHECK(m->commit->merge_parent == mf->commit->id);
  CHECK(s.paths(M) == std::vector<std::string>{"base", "edit-on-dev", "edit-on-master",
                                               "feature-file", "sub/", "sub/new-on-dev"});
  CHECK(s.get(M, "edit-on-dev") == "d");
  CHECK(s.get(M, "edit-on-master") == "m");
  CHECK(m->commit->stats.files == 5);
  CHECK_FALSE(s->inspect_branch("master")->dirty);
  // Nothing new: up to date.
  auto again = s->merge("master", "dev");
  REQUIRE_OK(again);
  CHECK(again->up_to_date);
  // More work on dev: only the new change travels, base is the last merge.
  s.put("edit-on-dev", "d2", "dev");
  s.commit("dev", "d2");
  s.put("edit-on-master", "m2");
  s.commit("master", "m2");
  auto m2 = s->merge("master", "dev");
  REQUIRE_OK(m2);
  REQUIRE(m2->commit);
  CHECK(m2->base == mf->commit->id);
  CHECK(m2->applied.size() == 1);
  CHECK(s.get(M, "edit-on-dev") == "d2");
  CHECK(s.get(M, "edit-on-master") == "m2");
  auto log = s->list_commits();
  CHECK(log->size() == 5);  // m2-merge, m2, merge, c2, c1 (first parents)
  s.check_fsck();
}

TEST_CASE("merge conflicts are reported and nothing changes unless a side is chosen") {
  Store s;
  s.put("f", "base");
  s.put("other", "o");
  std::string c1 = s.commit();
  {
    auto _r = s->create_branch("dev");
    REQUIRE_OK(_r);
  }
  s.put("f", "master side");
  std::string c2 = s.commit();
  s.put("f", "dev side", "dev");
  s.put("g", "from dev", "dev");
  s.commit("dev");
  auto m = s->merge("master", "dev");
  REQUIRE_OK(m);
  CHECK_FALSE(m->commit);
  CHECK(m->conflicts == std::vector<std::string>{"f"});
  CHECK(s.get(M, "f") == "master side");
  CHECK(s.paths(M) == std::vector<std::string>{"f", "other"});
  CHECK(s->inspect_branch("master")->head == c2);
  MergeOptions ours;
  ours.on_conflict = MergeOptions::Strategy::kOurs;
  auto mo = s->merge("master", "dev", ours);
  REQUIRE_OK(mo);
  REQUIRE(mo->commit);
  CHECK(s.get(M, "f") == "master side");
  CHECK(s.get(M, "g") == "from dev");
  s.put("f", "dev again", "dev");
  s.commit("dev");
  s.put("f", "master again");
  s.commit();
  MergeOptions theirs;
  theirs.on_conflict = MergeOptions::Strategy::kTheirs;
  auto mt = s->merge("master", "dev", theirs);
  REQUIRE_OK(mt);
  REQUIRE(mt->commit);
  CHECK(s.get(M, "f") == "dev again");
  s.check_fsck();
}

TEST_CASE("merge: a file against a directory is a conflict") {
  Store s;
  s.put("keep", "k");
  s.commit();
  {
    auto _r = s->create_branch("dev");
    REQUIRE_OK(_r);
  }
  s.put("x", "file on master");
  s.commit();
  s.put("x/y", "dir on dev", "dev");
  s.commit("dev");
  auto m = s->merge("master", "dev");
  REQUIRE_OK(m);
  CHECK_FALSE(m->commit);
  CHECK(m->conflicts == std::vector<std::string>{"x/y"});
  CHECK(s.get(M, "x") == "file on master");
  MergeOptions theirs;
  theirs.on_conflict = MergeOptions::Strategy::kTheirs;
  auto mt = s->merge("master", "dev", theirs);
  REQUIRE_OK(mt);
  REQUIRE(mt->commit);
  CHECK(s.get(M, "x/y") == "dir on dev");
  s.check_fsck();
}

TEST_CASE("merge refuses a dirty target and bad names") {
  Store s;
  s.put("f", "1");
  s.commit();
  {
    auto _r = s->create_branch("dev");
    REQUIRE_OK(_r);
  }
  s.put("g", "2", "dev");
  s.commit("dev");
  s.put("wip", "w");
  CHECK(code(s->merge("master", "dev")) == ErrorCode::kConflict);
  CHECK(code(s->merge("master", "nope")) == ErrorCode::kNotFound);
  CHECK(code(s->merge("master", "master")) == ErrorCode::kInvalidArgument);
  CHECK(s.paths(M) == std::vector<std::string>{"f", "wip"});
}
