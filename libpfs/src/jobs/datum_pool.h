// datum_pool.h: DatumPool, the loop every run's datums go through, a map
// job's (runner.cc: each file POSTed to the job's web server) and a
// pipeline's (pipeline_run.cc: each datum run by pfs-worker) alike.
//
// `parallel` threads, each with an executor of its own made on first use
// (an HTTP connection into the job's container; a container serving
// datums one after another), take the next datum and try it up to `tries`
// times. The first datum that fails all its tries stops the others from
// taking more (what is in flight finishes), as does abort() from another
// thread (a stop: the caller also kills the containers, so that what is in
// flight fails fast).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "fail.h"

namespace pfs::detail::jobs {

struct DatumTry {
  bool ok = false;
  std::string error;  // why it failed
  bool lost = false;  // the executor is unusable: the next try makes a new one
  bool last = false;  // no use trying again (the job's only container stopped, the run's time is up)
};

template <class Exec>
struct DatumLoop {
  std::size_t count = 0;  // datums 0 .. count-1
  std::size_t parallel = 1;
  std::uint32_t tries = 1;
  std::chrono::milliseconds backoff{0};  // before try t+1: backoff x t
  // Worker k's executor. What it throws is that try's failure (lost).
  std::function<std::unique_ptr<Exec>(std::size_t worker)> make;
  // Try `attempt` (1, 2, ...) of datum i.
  std::function<DatumTry(std::size_t i, std::uint32_t attempt, Exec& exec)> run;
  // Datum i has ended: ok, failed after `tries` tries, or (cut) stopped by
  // abort() before it succeeded. Called on the worker's thread; the
  // pool's failure, if this datum is it, is already set.
  std::function<void(std::size_t i, const DatumTry& last, std::uint32_t tries, bool cut)> ended;
  // Optional: an executor was made (true) or is about to be destroyed
  // (false): to kill its container at a stop.
  std::function<void(Exec& exec, bool made)> watch;
  // Optional: a worker thread left (finished() may have become true).
  std::function<void()> left;
};

template <class Exec>
class DatumPool {
 public:
  explicit DatumPool(DatumLoop<Exec> loop) : loop_(std::move(loop)) {
    n_ = std::min(std::max<std::size_t>(loop_.parallel, 1), loop_.count);
    finished_ = n_ == 0;
    threads_.reserve(n_);
    for (std::size_t k = 0; k < n_; k++) threads_.emplace_back([this, k] { work(k); });
  }
  ~DatumPool() { join(); }
  DatumPool(const DatumPool&) = delete;
  DatumPool& operator=(const DatumPool&) = delete;

  void abort() { abort_ = true; }
  bool aborted() const { return abort_; }
  // Every worker has left.
  bool finished() const { return finished_; }
  void join() {
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  // The first datum that failed all its tries (after join()).
  std::optional<std::size_t> failed() const { return failed_; }

 private:
  void work(std::size_t k) {
    std::unique_ptr<Exec> exec;
    auto drop = [&] {
      if (exec && loop_.watch) loop_.watch(*exec, false);
      exec.reset();
    };
    while (!abort_) {
      std::size_t i = next_++;
      if (i >= loop_.count) break;
      DatumTry last;
      std::uint32_t t = 0;
      while (t < std::max<std::uint32_t>(loop_.tries, 1) && !abort_) {
        if (t > 0 && loop_.backoff.count() > 0) std::this_thread::sleep_for(loop_.backoff * t);
        t++;
        try {
          if (!exec) {
            exec = loop_.make(k);
            if (loop_.watch) loop_.watch(*exec, true);
          }
          last = loop_.run(i, t, *exec);
        } catch (Fail& f) {
          last = DatumTry{false, f.error.message, true, false};
        } catch (const std::exception& e) {
          last = DatumTry{false, std::string("internal error: ") + e.what(), true, false};
        }
        if (last.ok || last.last) break;
        if (last.lost) drop();
      }
      bool cut = !last.ok && abort_ && !last.last;
      if (!last.ok && !cut) {
        std::lock_guard lk(mu_);
        if (!failed_) failed_ = i;
        abort_ = true;
      }
      loop_.ended(i, last, t, cut);
    }
    drop();
    if (++left_ == n_) finished_ = true;
    if (loop_.left) loop_.left();
  }

  DatumLoop<Exec> loop_;
  std::size_t n_ = 0;  // threads
  std::vector<std::thread> threads_;
  std::atomic<std::size_t> next_{0};
  std::atomic<bool> abort_{false};
  std::atomic<std::size_t> left_{0};
  std::atomic<bool> finished_{false};
  std::mutex mu_;
  std::optional<std::size_t> failed_;
};

}  // namespace pfs::detail::jobs
