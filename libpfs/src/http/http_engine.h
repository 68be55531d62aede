// http_engine.h: the HTTP/1.1 server engine under pfs::Server: sockets,
// framing, limits and threads. It knows nothing of pfs's routes: it hands
// each well-formed request to a Router and writes the Response back.
//
// Design (docs/http.md, "The server engine"):
// - Event-driven network threads (Boost.Asio, one io_context each) accept,
//   wait for and parse request headers with Boost.Beast's strict parser,
//   and enforce the deadlines and connection caps. An idle or slow
//   connection costs a socket and a few hundred bytes, never a thread.
// - Routes that may block on the store (uploads, commits, listings,
//   large downloads) run on a bounded pool of worker threads, which read
//   the body and write the response on the connection's socket directly;
//   small reads that the page cache answers (GET of a small file, /health)
//   run on the network thread, as nginx serves files from its event loop.
// - A sweeper on each network thread closes connections past their
//   deadline: the header deadline (from the accept, or from a request's
//   first byte), the idle keep-alive timeout, and the I/O timeout of a
//   body that makes no progress.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <pfs/result.h>

#include "http_message.h"

namespace pfs::detail::http {

struct EngineOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  std::size_t workers = 64;     // threads for routes that block
  std::size_t io_threads = 0;   // network threads; 0: one per CPU (at most 8)
  std::size_t max_connections = 16384;
  std::size_t max_per_client = 256;
  std::chrono::milliseconds header_timeout{10000};
  std::chrono::milliseconds idle_timeout{15000};
  std::chrono::milliseconds io_timeout{60000};
  std::uint64_t max_upload = 0;  // 0: no limit
  std::size_t max_header_bytes = 16 * 1024;
  std::size_t max_target_bytes = 8 * 1024;
  std::function<void(std::string_view)> log;
};

// A route as the router finds it.
struct Route {
  std::function<void(Request&, Response&)> handler;
  // For a request this route answers from memory or the page cache in
  // microseconds (and that has no body): true runs it on the network
  // thread, without a thread hop. Empty: always on a worker. NOTE: a
  // route that may list or walk (a glob) must say false for those.
  std::function<bool(const Request&)> quick;
};

// Finds the route of req.method and req.path, filling req.matches;
// nullptr when there is none (the engine answers 404).
using Router = std::function<const Route*(Request& req)>;
// Checks a request's credentials before its body is read; false after it
// filled `res` with the refusal.
using Authorizer = std::function<bool(const Request& req, Response& res)>;

// True for 127.0.0.0/8, ::1 and "localhost": addresses only this machine
// reaches.
bool is_loopback_host(std::string_view host);

class Engine {
 public:
  Engine(EngineOptions opts, Router router, Authorizer auth);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Binds and listens (backlog 4096). Errors: kBusy (in use),
  // kPermissionDenied (a privileged port), kInvalidArgument (a host that
  // is not an IP address of this machine).
  Result<void> bind();
  int port() const;
  // Serves until stop(), then waits for the requests in progress.
  Result<void> run();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pfs::detail::http
