// http_connection.h: one client connection of the HTTP engine (internal to
// http_engine.cc and http_connection.cc).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

// NOTE: GCC 12 with -fsanitize=address sees a boost::optional in Beast
// 1.74's parser as maybe uninitialized (a false positive, -Werror): off
// for Boost's headers only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#pragma GCC diagnostic pop

#include "http_engine.h"

namespace pfs::detail::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

inline std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch()).count();
}
inline constexpr std::int64_t kNoDeadline = INT64_MAX;

// A fixed set of threads running tasks in the order they come.
class WorkerPool {
 public:
  explicit WorkerPool(std::size_t n);
  ~WorkerPool();  // runs what is queued, then joins
  void post(std::function<void()> task);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

class Connection;

// A network thread: its io_context, and the connections it owns (touched
// only on this thread).
struct IoThread {
  asio::io_context ioc{1};
  std::optional<asio::steady_timer> sweeper;
  std::list<Connection*> conns;
  std::thread thread;
  char junk[16384];  // what lingering connections read, to drop it
};

// What the connections share: options, routes, counters.
struct EngineState {
  EngineOptions opts;
  Router router;
  Authorizer auth;
  std::unique_ptr<WorkerPool> pool;
  std::atomic<bool> stopping{false};
  // Live connections, in all and per client address.
  std::mutex count_mu;
  std::condition_variable count_cv;
  std::size_t live = 0;
  std::map<std::string, std::size_t> per_client;

  void log(std::string_view line) const {
    if (opts.log) opts.log(line);
  }
  void release(const std::string& addr);
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  Connection(EngineState& e, IoThread& io, tcp::socket s, std::string addr);
  ~Connection();
  void start();
  // Called by the sweeper on the network thread: closes what is past due.
  void sweep(std::int64_t now);
  // Called on stop(): closes the connection unless a request is in progress.
  void close_if_idle();

 private:
  enum Phase : int { kHeader, kQuick, kWorker, kLinger, kClosed };
  class SocketBody;
  class SocketWriter;

  void wait_request();
  void read_header();
  void on_header(beast::error_code ec);
  // Checks framing, decodes, authorizes and routes; false after it has
  // answered with an error.
  bool prepare();
  void run_quick();
  void run_worker(bool handler_done);
  void work(bool handler_done);
  void call_handler();
  bool drain_rest();
  void after(bool keep_alive, bool linger);
  void refuse(int status, std::string_view code, std::string message);
  void write_async(bool keep_alive, bool linger_after);
  void linger();
  void linger_more();
  void close();
  void log_request(std::uint64_t bytes);
  std::string head_for(bool keep_alive, std::optional<std::uint64_t> length, bool chunked) const;
  bool blocking_write(const std::vector<asio::const_buffer>& bufs);

  EngineState& e_;
  IoThread& io_;
  tcp::socket sock_;
  int fd_;
  std::string addr_;
  std::list<Connection*>::iterator pos_;
  beast::flat_buffer buf_;
  std::optional<bhttp::request_parser<bhttp::buffer_body>> parser_;
  std::atomic<std::int64_t> deadline_{kNoDeadline};
  std::atomic<int> phase_{kHeader};
  bool timed_out_ = false;
  bool got_bytes_ = false;  // of the request being read
  bool head_only_ = false;
  bool http10_ = false;
  bool expect_continue_ = false, continue_sent_ = false;
  bool body_broken_ = false;  // a body read failed: the connection cannot go on
  bool too_large_ = false;
  bool keep_after_ = false, linger_after_ = false;  // what work() decided
  // A body with a Content-Length is read past the parser: how much is left.
  bool direct_ = false;
  std::uint64_t body_left_ = 0;
  bool body_done() const { return direct_ ? body_left_ == 0 : parser_->is_done(); }
  Request req_;
  Response res_;
  const Route* route_ = nullptr;
  std::string head_;
  Clock::time_point started_;
};

}  // namespace pfs::detail::http
