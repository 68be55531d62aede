// store_replication_test.cc: the store conformance suite (store_fixture.h)
// on send and receive, which carry commits from one store to another.
#include "store_fixture.h"

TEST_CASE("send and receive carry commits between stores, whole and incrementally") {
  Store a("send");
  Store b("receive");
  a.put("data/x", "x1");
  a.put("data/big", random_bytes(300 << 10, 7));
  std::string c1 = a.commit("master", "first");
  a.put("data/x", "x2");
  REQUIRE_OK(a->delete_file("master", "data/big"));
  a.put("y", "yy");
  std::string c2 = a.commit("master", "second");

  std::string full;
  auto sink = Sink::to_string(&full);
  auto sent = a->send(c1, *sink);
  REQUIRE_OK(sent);
  CHECK(sent->id == c1);
  // Received as a new commit on a branch (created).
  auto src = Source::from_string(full);
  ReceiveOptions on_branch;
  on_branch.branch = "imported";
  auto got = b->receive(*src, on_branch);
  REQUIRE_OK(got);
  CHECK(got->stream_bytes == full.size());
  CHECK(got->skipped.empty());
  CHECK(b.get(Ref::commit(got->commit.id), "data/x") == "x1");
  CHECK(b.get(Ref::branch("imported"), "data/big") == random_bytes(300 << 10, 7));
  CHECK(b->inspect_branch("imported")->head == got->commit.id);
  // Received as exactly the sender's commits: the same ids, no branch moved.
  auto c1_info = a->inspect_commit(c1);
  REQUIRE_OK(c1_info);
  ReceiveOptions exact;
  exact.as_commit = *c1_info;
  auto src2 = Source::from_string(full);
  auto same = b->receive(*src2, exact);
  REQUIRE_OK(same);
  CHECK(same->commit.id == c1);
  CHECK(same->commit.message == "first");
  auto src3 = Source::from_string(full);
  CHECK(code(b->receive(*src3, exact)) == ErrorCode::kAlreadyExists);
  std::string incr;
  auto sink2 = Sink::to_string(&incr);
  SendOptions since;
  since.parent = c1;
  REQUIRE_OK(a->send(c2, *sink2, since));
  auto c2_info = a->inspect_commit(c2);
  REQUIRE_OK(c2_info);
  exact.as_commit = *c2_info;
  auto src4 = Source::from_string(incr);
  auto second = b->receive(*src4, exact);
  REQUIRE_OK(second);
  CHECK(second->commit.id == c2);
  CHECK(second->commit.parent == c1);
  CHECK(b.paths(Ref::commit(c2)) == a.paths(Ref::commit(c2)));
  CHECK(b.get(Ref::commit(c2), "data/x") == "x2");
  CHECK(b->inspect_branch("master")->head.empty());
  // A truncated or garbled stream is refused and changes nothing.
  auto before = b->list_commits(LogOptions{"master", true, {}});
  REQUIRE_OK(before);
  auto cut = Source::from_string(full.substr(0, full.size() / 2));
  CHECK(code(b->receive(*cut, on_branch)) == ErrorCode::kInvalidArgument);
  auto junk = Source::from_string("not a send stream at all");
  CHECK(code(b->receive(*junk, on_branch)) == ErrorCode::kInvalidArgument);
  auto after = b->list_commits(LogOptions{"master", true, {}});
  REQUIRE_OK(after);
  CHECK(after->size() == before->size());
  // An incremental stream whose parent the store lacks.
  Store fresh("fresh");
  auto src5 = Source::from_string(incr);
  CHECK(code(fresh->receive(*src5)) == ErrorCode::kNotFound);
  CHECK(code(a->send("ffffffffffffffffffffffffffffffff", *sink2)) == ErrorCode::kNotFound);
  a.check_fsck();
  b.check_fsck();
}
