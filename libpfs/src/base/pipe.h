// pipe.h: a bounded byte queue between two threads, read as a Source.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>

#include <pfs/io.h>

namespace pfs::detail {

// Bytes on their way from a thread that is handed them (push: an HTTP
// library's callback) to one that reads them as a Source (pull: put_file, a
// tar reader). Bounded: the pusher waits while kBytes are queued, so memory
// stays small whatever the stream's size.
class BytePipe final : public Source {
 public:
  static constexpr std::size_t kBytes = 1 << 20;
  static constexpr std::size_t kBlock = 256 * 1024;

  // Pushing side. False when the reader gave up (closed the pipe).
  bool push(const char* data, std::size_t n) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return queued_ < kBytes || closed_; });
    if (closed_) return false;
    // Small pieces (an HTTP library hands over a few KiB at a time) are
    // gathered into blocks: fewer allocations and wake-ups.
    if (!q_.empty() && q_.back().size() + n <= kBlock && (q_.size() > 1 || off_ == 0))
      q_.back().append(data, n);
    else
      q_.emplace_back(data, n);
    queued_ += n;
    if (reader_waiting_) cv_.notify_all();
    return true;
  }
  // The stream is complete (ok) or broken off (`why` says how).
  void finish(bool ok, std::string why = "the upload was cut off before its end; nothing was written",
              ErrorCode code = ErrorCode::kInvalidArgument) {
    std::lock_guard lk(mu_);
    done_ = true;
    broken_ = !ok;
    why_ = std::move(why);
    code_ = code;
    cv_.notify_all();
  }

  // Reading side.
  Result<std::size_t> read(std::span<char> buf) override {
    std::unique_lock lk(mu_);
    reader_waiting_ = true;
    cv_.wait(lk, [&] { return !q_.empty() || done_; });
    reader_waiting_ = false;
    if (q_.empty()) {
      if (broken_) return Error{code_, why_};
      return std::size_t{0};
    }
    std::string& front = q_.front();
    std::size_t n = std::min(buf.size(), front.size() - off_);
    std::memcpy(buf.data(), front.data() + off_, n);
    off_ += n;
    queued_ -= n;
    if (off_ == front.size()) {
      q_.pop_front();
      off_ = 0;
    }
    cv_.notify_all();
    return n;
  }
  // The reader is done (or failed): pushes fail from now on.
  void close() {
    std::lock_guard lk(mu_);
    closed_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::string> q_;
  std::size_t off_ = 0, queued_ = 0;
  bool done_ = false, broken_ = false, closed_ = false, reader_waiting_ = false;
  std::string why_;
  ErrorCode code_ = ErrorCode::kInvalidArgument;
};

}  // namespace pfs::detail
