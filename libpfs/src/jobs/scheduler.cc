// scheduler.cc: RunScheduler (scheduler.h).
#include "scheduler.h"

namespace pfs::detail::jobs {

RunScheduler::~RunScheduler() { stop(); }

void RunScheduler::add(Source s) {
  {
    std::lock_guard lk(mu_);
    sources_.push_back(std::move(s));
    generation_++;
  }
  cv_.notify_all();
}

void RunScheduler::start(std::size_t threads) {
  std::lock_guard lk(mu_);
  if (!threads_.empty() || stopping_) return;
  for (std::size_t i = 0; i < std::max<std::size_t>(threads, 1); i++) threads_.emplace_back([this] { loop(); });
}

void RunScheduler::wake() {
  {
    std::lock_guard lk(mu_);
    generation_++;
  }
  cv_.notify_all();
}

void RunScheduler::stop() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
    threads.swap(threads_);
  }
  cv_.notify_all();
  for (auto& t : threads) t.join();
}

void RunScheduler::loop() {
  for (;;) {
    std::function<void()> work;
    {
      std::unique_lock lk(mu_);
      for (;;) {
        if (stopping_) return;
        std::uint64_t seen = generation_;
        // The oldest runnable run of all sources.
        Source* best = nullptr;
        std::int64_t best_ns = 0;
        for (auto& s : sources_)
          if (auto ns = s.peek(); ns && (!best || *ns < best_ns)) {
            best = &s;
            best_ns = *ns;
          }
        if (best) {
          if ((work = best->take())) break;
          continue;  // taken away meanwhile (a stop): look again
        }
        cv_.wait(lk, [&] { return stopping_ || generation_ != seen; });
      }
    }
    try {
      work();
    } catch (...) {
      // (The engines record their runs' ends and catch what they throw.)
    }
    // Its end may let others run (a job that reads it, the pipeline's next
    // run), on this thread or another.
    wake();
  }
}

}  // namespace pfs::detail::jobs
