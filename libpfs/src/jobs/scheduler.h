// scheduler.h: RunScheduler, the one pool of threads that runs what both
// halves of the engine queue: v0.8 job runs (engine.cc) and pipeline runs
// (pipeline_engine.cc). JobsOptions::max_runs bounds them together, and
// the oldest runnable run goes first, whichever kind it is.
//
// Each half keeps its own queue and its own rules of what may run (a job
// waits for the jobs of its commit it reads; a pipeline runs one run at a
// time) and offers them through a Source. The scheduler asks every source
// for the queue time of its oldest runnable run and takes the oldest.
//
// Locks: a source's peek and take run under the scheduler's lock and may
// take their engine's lock inside it. So an engine never calls wake()
// while it holds its own lock (it would wait for a scheduler thread that
// waits for that lock).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

namespace pfs::detail::jobs {

class RunScheduler {
 public:
  struct Source {
    // The queue time (ns) of the source's oldest run that may start now.
    std::function<std::optional<std::int64_t>()> peek;
    // Takes that run off the queue and returns the work that runs it (on a
    // scheduler thread, no lock held); empty when there is none after all.
    std::function<std::function<void()>()> take;
  };

  RunScheduler() = default;
  ~RunScheduler();  // stop()
  RunScheduler(const RunScheduler&) = delete;
  RunScheduler& operator=(const RunScheduler&) = delete;

  // Adds a source (at any time).
  void add(Source s);
  // Starts `threads` threads (once; at least one).
  void start(std::size_t threads);
  // Something was queued, became runnable or ended: look again. Never
  // with an engine's lock held (see above).
  void wake();
  // Takes nothing more and waits for the threads: what they run ends by
  // the engines' own stop (their containers killed), not by this.
  void stop();

 private:
  void loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Source> sources_;
  std::vector<std::thread> threads_;
  std::uint64_t generation_ = 0;  // +1 on every wake(): a wake between a look and a wait is not lost
  bool stopping_ = false;
};

}  // namespace pfs::detail::jobs
