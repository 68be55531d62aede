// store_events_test.cc: the store conformance suite (store_fixture.h) on
// commit events: waiting for commits, resuming from a cursor, timeouts,
// cancellation and bad input.
#include <chrono>
#include <thread>

#include "store_fixture.h"

TEST_CASE(
    "commit events: a waiter wakes with each new commit, in order, and resumes from its cursor") {
  Store s;
  WaitOptions now;
  now.timeout_ms = 0;
  auto start = s->wait_commits(now);
  REQUIRE_OK(start);
  CHECK(start->events.empty());
  CHECK(start->cursor == "master:");
  // A waiter on another thread wakes with the commit made while it waits.
  WaitOptions w;
  w.branch = "master";
  w.since = start->cursor;
  w.timeout_ms = 20000;
  Result<CommitEvents> got = Error{ErrorCode::kInternal, "not run"};
  std::thread waiter([&] { got = s->wait_commits(w); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  std::string c1 = s.commit("master", "one");
  waiter.join();
  REQUIRE_OK(got);
  REQUIRE(got->events.size() == 1);
  CHECK(got->events[0].branch == "master");
  CHECK(got->events[0].commit.id == c1);
  CHECK(got->events[0].commit.message == "one");
  CHECK(got->cursor == "master:" + c1);
  // Missed while not waiting: all of them, oldest first, from the old cursor.
  std::string c2 = s.commit("master", "two");
  std::string c3 = s.commit("master", "three");
  auto since = s->wait_commits(w);
  REQUIRE_OK(since);
  REQUIRE(since->events.size() == 3);
  CHECK(since->events[0].commit.id == c1);
  CHECK(since->events[1].commit.id == c2);
  CHECK(since->events[2].commit.id == c3);
  // Any branch: a new branch reports its head; commits are grouped by branch.
  WaitOptions any;
  any.since = since->cursor;
  any.timeout_ms = 0;
  REQUIRE_OK(s->create_branch("dev", c1));
  std::string d1 = s.commit("dev", "d1");
  auto both = s->wait_commits(any);
  REQUIRE_OK(both);
  REQUIRE(both->events.size() == 1);  // dev was made and committed on between: its head
  CHECK(both->events[0].branch == "dev");
  CHECK(both->events[0].commit.id == d1);
  CHECK(both->cursor == "dev:" + d1 + ",master:" + c3);
  // Nothing new: a timeout is a success with no events and the same cursor.
  any.since = both->cursor;
  any.timeout_ms = 50;
  auto none = s->wait_commits(any);
  REQUIRE_OK(none);
  CHECK(none->events.empty());
  CHECK(none->cursor == both->cursor);
  // A cancelled wait returns early, as a timeout does.
  any.timeout_ms = 60000;
  any.cancelled = [] { return true; };
  auto cancelled = s->wait_commits(any);
  REQUIRE_OK(cancelled);
  CHECK(cancelled->events.empty());
  // Bad input: kInvalidArgument, nothing changes.
  WaitOptions bad;
  bad.timeout_ms = 0;
  bad.since = "master:nothex";
  CHECK(code(s->wait_commits(bad)) == ErrorCode::kInvalidArgument);
  bad.since = "no colon";
  CHECK(code(s->wait_commits(bad)) == ErrorCode::kInvalidArgument);
  bad.since = "";
  bad.branch = "a/b";
  CHECK(code(s->wait_commits(bad)) == ErrorCode::kInvalidArgument);
  bad.branch = "";
  bad.timeout_ms = -1;
  CHECK(code(s->wait_commits(bad)) == ErrorCode::kInvalidArgument);
  CHECK(s->inspect_branch("master")->head == c3);
}
