// scheduler_test.cc: what jobs and pipelines share (src/jobs): the
// RunScheduler (oldest runnable run of any source first, never more than
// its threads at once, nothing lost between a look and a wait) and the
// DatumPool (every datum once, tries, a lost executor replaced, the first
// failure stopping the rest, abort cutting datums short).
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "datum_pool.h"
#include "scheduler.h"

using namespace pfs;
using namespace pfs::detail::jobs;
using namespace std::chrono_literals;

namespace {

// A queue of runs (queue times) as a source: each run sleeps `hold` and
// records its order; `gate` holds a run back until it is opened.
struct FakeQueue {
  std::mutex mu;
  std::deque<std::int64_t> queued;
  std::set<std::int64_t> gated;  // not runnable yet
  std::vector<std::int64_t>* order = nullptr;
  std::mutex* order_mu = nullptr;
  std::atomic<int>* running = nullptr;
  std::atomic<int>* peak = nullptr;
  std::chrono::milliseconds hold{0};

  std::deque<std::int64_t>::iterator next() {
    for (auto it = queued.begin(); it != queued.end(); ++it)
      if (!gated.count(*it)) return it;
    return queued.end();
  }
  RunScheduler::Source source() {
    RunScheduler::Source s;
    s.peek = [this]() -> std::optional<std::int64_t> {
      std::lock_guard lk(mu);
      auto it = next();
      if (it == queued.end()) return std::nullopt;
      return *it;
    };
    s.take = [this]() -> std::function<void()> {
      std::lock_guard lk(mu);
      auto it = next();
      if (it == queued.end()) return {};
      std::int64_t t = *it;
      queued.erase(it);
      return [this, t] {
        int now = ++*running;
        int p = peak->load();
        while (now > p && !peak->compare_exchange_weak(p, now)) {
        }
        std::this_thread::sleep_for(hold);
        {
          std::lock_guard olk(*order_mu);
          order->push_back(t);
        }
        --*running;
      };
    };
    return s;
  }
};

bool wait_for(const std::function<bool()>& cond) {
  for (int i = 0; i < 1000; i++) {
    if (cond()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return cond();
}

}  // namespace

TEST_CASE("RunScheduler: the oldest runnable run of all sources first, at most its threads at once") {
  std::vector<std::int64_t> order;
  std::mutex order_mu;
  std::atomic<int> running{0}, peak{0};
  FakeQueue jobs, pipes;
  for (auto* q : {&jobs, &pipes}) {
    q->order = &order;
    q->order_mu = &order_mu;
    q->running = &running;
    q->peak = &peak;
    q->hold = 20ms;
  }
  jobs.queued = {1, 4, 5, 8};
  pipes.queued = {2, 3, 6, 7};
  RunScheduler s;
  s.add(jobs.source());
  s.add(pipes.source());
  s.start(1);  // one thread: the order is exactly the queue times'
  REQUIRE(wait_for([&] {
    std::lock_guard lk(order_mu);
    return order.size() == 8;
  }));
  CHECK(order == std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(peak == 1);
  s.stop();
}

TEST_CASE("RunScheduler: two threads run two at once, never three; a wake lets a gated run go") {
  std::vector<std::int64_t> order;
  std::mutex order_mu;
  std::atomic<int> running{0}, peak{0};
  FakeQueue q;
  q.order = &order;
  q.order_mu = &order_mu;
  q.running = &running;
  q.peak = &peak;
  q.hold = 30ms;
  for (int i = 1; i <= 6; i++) q.queued.push_back(i);
  q.gated = {0};
  RunScheduler s;
  s.add(q.source());
  s.start(2);
  REQUIRE(wait_for([&] {
    std::lock_guard lk(order_mu);
    return order.size() == 6;
  }));
  CHECK(peak == 2);
  // A run queued while the threads wait, runnable only once opened.
  {
    std::lock_guard lk(q.mu);
    q.queued.push_back(9);
    q.gated.insert(9);
  }
  s.wake();
  std::this_thread::sleep_for(50ms);
  {
    std::lock_guard lk(order_mu);
    CHECK(order.size() == 6);  // gated: not run
  }
  {
    std::lock_guard lk(q.mu);
    q.gated.erase(9);
  }
  s.wake();
  CHECK(wait_for([&] {
    std::lock_guard lk(order_mu);
    return order.size() == 7 && order.back() == 9;
  }));
  s.stop();
  // Stopped: what is queued now stays queued.
  {
    std::lock_guard lk(q.mu);
    q.queued.push_back(10);
  }
  s.wake();
  std::this_thread::sleep_for(30ms);
  std::lock_guard lk(q.mu);
  CHECK(q.queued.size() == 1);
}

namespace {
struct Exec {
  int serial;
};
}  // namespace

TEST_CASE("DatumPool: every datum exactly once, on at most `parallel` executors") {
  const std::size_t n = 500;
  std::vector<std::atomic<int>> runs(n);
  std::atomic<int> made{0}, ok{0};
  DatumLoop<Exec> loop;
  loop.count = n;
  loop.parallel = 3;
  loop.tries = 2;
  loop.make = [&](std::size_t) { return std::make_unique<Exec>(Exec{++made}); };
  loop.run = [&](std::size_t i, std::uint32_t, Exec&) {
    runs[i]++;
    return DatumTry{true, {}, false, false};
  };
  loop.ended = [&](std::size_t, const DatumTry& last, std::uint32_t tries, bool cut) {
    CHECK(last.ok);
    CHECK(tries == 1);
    CHECK_FALSE(cut);
    ok++;
  };
  DatumPool<Exec> pool(std::move(loop));
  pool.join();
  CHECK(pool.finished());
  CHECK_FALSE(pool.failed());
  CHECK(ok == static_cast<int>(n));
  CHECK(made <= 3);
  for (auto& r : runs) CHECK(r == 1);
}

TEST_CASE("DatumPool: tries, a lost executor replaced, a thrown error is a try's failure") {
  std::atomic<int> made{0};
  std::map<std::size_t, std::uint32_t> tries_of;
  std::mutex mu;
  DatumLoop<Exec> loop;
  loop.count = 3;
  loop.parallel = 1;
  loop.tries = 3;
  loop.make = [&](std::size_t) { return std::make_unique<Exec>(Exec{++made}); };
  loop.run = [&](std::size_t i, std::uint32_t attempt, Exec& e) -> DatumTry {
    if (i == 0 && attempt == 1) return {false, "container died", true, false};  // lost: a new executor
    if (i == 1 && attempt < 3) pfs::detail::fail(ErrorCode::kIo, "cannot copy the datum's files");
    if (i == 1) CHECK(e.serial == 4);  // a throw is a lost executor too
    return {true, {}, false, false};
  };
  loop.ended = [&](std::size_t i, const DatumTry& last, std::uint32_t tries, bool) {
    CHECK(last.ok);
    std::lock_guard lk(mu);
    tries_of[i] = tries;
  };
  DatumPool<Exec> pool(std::move(loop));
  pool.join();
  CHECK_FALSE(pool.failed());
  CHECK(tries_of == std::map<std::size_t, std::uint32_t>{{0, 2}, {1, 3}, {2, 1}});
  CHECK(made == 4);  // the first, one after datum 0's loss, two after datum 1's throws
}

TEST_CASE("DatumPool: the first datum to fail every try stops the run; a last failure is not retried") {
  SUBCASE("after its tries") {
    std::atomic<int> started{0};
    std::string error;
    std::uint32_t used = 0;
    DatumLoop<Exec> loop;
    loop.count = 100;
    loop.parallel = 1;
    loop.tries = 3;
    loop.make = [&](std::size_t) { return std::make_unique<Exec>(); };
    loop.run = [&](std::size_t i, std::uint32_t, Exec&) -> DatumTry {
      if (i == 10) return {false, "exit status 3", false, false};
      started++;
      return {true, {}, false, false};
    };
    loop.ended = [&](std::size_t i, const DatumTry& last, std::uint32_t tries, bool cut) {
      if (i != 10) return;
      CHECK_FALSE(cut);
      error = last.error;
      used = tries;
    };
    DatumPool<Exec> pool(std::move(loop));
    pool.join();
    REQUIRE(pool.failed());
    CHECK(*pool.failed() == 10);
    CHECK(error == "exit status 3");
    CHECK(used == 3);
    CHECK(started == 10);  // nothing after it was taken
  }
  SUBCASE("a last failure") {
    std::uint32_t used = 0;
    DatumLoop<Exec> loop;
    loop.count = 1;
    loop.tries = 5;
    loop.make = [&](std::size_t) { return std::make_unique<Exec>(); };
    loop.run = [&](std::size_t, std::uint32_t, Exec&) -> DatumTry { return {false, "out of memory", false, true}; };
    loop.ended = [&](std::size_t, const DatumTry&, std::uint32_t tries, bool) { used = tries; };
    DatumPool<Exec> pool(std::move(loop));
    pool.join();
    CHECK(pool.failed());
    CHECK(used == 1);
  }
}

TEST_CASE("DatumPool: abort cuts what is in flight short (not failed) and takes nothing more") {
  std::atomic<int> begun{0}, cut_n{0}, failed_n{0}, ok_n{0};
  std::atomic<bool> release{false};
  std::atomic<int> left{0};
  DatumLoop<Exec> loop;
  loop.count = 50;
  loop.parallel = 2;
  loop.tries = 3;
  loop.make = [&](std::size_t) { return std::make_unique<Exec>(); };
  loop.run = [&](std::size_t, std::uint32_t, Exec&) -> DatumTry {
    begun++;
    while (!release) std::this_thread::sleep_for(1ms);
    return {false, "killed", true, false};  // what a killed container gives
  };
  loop.ended = [&](std::size_t, const DatumTry& last, std::uint32_t, bool cut) {
    if (cut) cut_n++;
    else if (last.ok) ok_n++;
    else failed_n++;
  };
  loop.left = [&] { left++; };
  DatumPool<Exec> pool(std::move(loop));
  REQUIRE(wait_for([&] { return begun == 2; }));
  pool.abort();
  release = true;
  pool.join();
  CHECK(pool.finished());
  CHECK(left == 2);
  CHECK(cut_n == 2);
  CHECK(failed_n == 0);
  CHECK_FALSE(pool.failed());
  CHECK(begun == 2);  // no retry, no new datum after the abort
}

TEST_CASE("DatumPool: no datums, no threads") {
  DatumLoop<Exec> loop;
  loop.count = 0;
  loop.parallel = 4;
  loop.make = [&](std::size_t) -> std::unique_ptr<Exec> { FAIL("made an executor"); return nullptr; };
  DatumPool<Exec> pool(std::move(loop));
  CHECK(pool.finished());
  pool.join();
  CHECK_FALSE(pool.failed());
}
