// http_engine.cc: the listening socket, the network threads, the worker
// pool, the connection caps and the sweeper (http_engine.h has the design).
#include "http_engine.h"

#include <sys/resource.h>
#include <sys/socket.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <fmt/format.h>

#include "http_connection.h"

namespace pfs::detail::http {

namespace {
constexpr auto kSweepEvery = std::chrono::milliseconds(100);
constexpr int kBacklog = 4096;
}  // namespace

bool is_loopback_host(std::string_view host) {
  if (host == "localhost") return true;
  beast::error_code ec;
  auto a = asio::ip::make_address(std::string(host), ec);
  return !ec && a.is_loopback();
}

struct Engine::Impl {
  EngineState st;
  std::vector<std::unique_ptr<IoThread>> io;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::optional<tcp::acceptor> acceptor;
  std::optional<asio::steady_timer> accept_retry;
  std::size_t next = 0;
  int port = -1;
  bool acceptor_closed = false;  // under st.count_mu
  std::atomic<std::int64_t> last_refusal_log{0};
  std::atomic<std::uint64_t> refused{0};

  void accept();
  void on_accept(IoThread& target, tcp::socket s);
  void refuse_fast(tcp::socket& s, std::string_view message);
  void sweep(IoThread& t);
};

Engine::Engine(EngineOptions opts, Router router, Authorizer auth) : impl_(std::make_unique<Impl>()) {
  impl_->st.opts = std::move(opts);
  impl_->st.router = std::move(router);
  impl_->st.auth = std::move(auth);
}

Engine::~Engine() = default;

int Engine::port() const { return impl_->port; }

Result<void> Engine::bind() {
  auto& o = impl_->st.opts;
  std::size_t n = o.io_threads;
  if (n == 0) n = std::clamp<std::size_t>(std::thread::hardware_concurrency(), 1, 8);
  for (std::size_t i = 0; i < n; i++) impl_->io.push_back(std::make_unique<IoThread>());
  // Every connection is a descriptor: as many as the hard limit allows.
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) == 0) {
    if (rl.rlim_cur < rl.rlim_max) {
      rl.rlim_cur = rl.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &rl);
      ::getrlimit(RLIMIT_NOFILE, &rl);
    }
    std::size_t usable = rl.rlim_cur > 256 ? static_cast<std::size_t>(rl.rlim_cur) - 256 : 16;
    if (o.max_connections > usable) {
      impl_->st.log(fmt::format("pachctl serve: at most {} connections (the limit of open files is {}; "
                                "raise it with ulimit -n)",
                                usable, rl.rlim_cur));
      o.max_connections = usable;
    }
  }
  auto& ioc = impl_->io[0]->ioc;
  beast::error_code ec;
  asio::ip::address addr = asio::ip::make_address(o.host, ec);
  if (ec) {
    tcp::resolver resolver(ioc);
    auto found = resolver.resolve(o.host, std::to_string(o.port), ec);
    if (ec || found.empty())
      return Error{ErrorCode::kInvalidArgument,
                   fmt::format("cannot listen on \"{}\": not an IP address or a name of this machine; "
                               "use e.g. --listen 127.0.0.1:{}",
                               o.host, o.port)};
    addr = found.begin()->endpoint().address();
  }
  tcp::endpoint ep(addr, static_cast<unsigned short>(o.port));
  auto& a = impl_->acceptor.emplace(ioc);
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(kBacklog, ec);
  if (ec) {
    ErrorCode code = ec == asio::error::address_in_use    ? ErrorCode::kBusy
                     : ec == asio::error::access_denied   ? ErrorCode::kPermissionDenied
                                                          : ErrorCode::kInvalidArgument;
    return Error{code, fmt::format("cannot listen on {}:{}: {}; pick another with --listen HOST:PORT",
                                   o.host, o.port, ec.message())};
  }
  impl_->port = a.local_endpoint().port();
  return {};
}

Result<void> Engine::run() {
  auto& im = *impl_;
  if (im.st.stopping) return {};
  im.st.pool = std::make_unique<WorkerPool>(std::max<std::size_t>(im.st.opts.workers, 1));
  for (auto& t : im.io) {
    im.guards.push_back(asio::make_work_guard(t->ioc));
    t->sweeper.emplace(t->ioc);
    im.sweep(*t);
  }
  asio::post(im.io[0]->ioc, [&im] { im.accept(); });
  for (auto& t : im.io) t->thread = std::thread([&ioc = t->ioc] { ioc.run(); });
  {
    std::unique_lock lk(im.st.count_mu);
    im.st.count_cv.wait(lk, [&] { return im.st.stopping && im.acceptor_closed && im.st.live == 0; });
  }
  // No connection is left: stop the loops. NOTE: not by cancelling the
  // sweepers from a posted handler: a sweep whose timer had just fired
  // would re-arm itself, and its thread would wait forever (seen under
  // ASan's timing: SIGTERM did not end the server).
  im.guards.clear();
  for (auto& t : im.io) t->ioc.stop();
  for (auto& t : im.io) t->thread.join();
  im.st.pool.reset();
  return {};
}

void Engine::stop() {
  auto& im = *impl_;
  if (im.st.stopping.exchange(true)) return;
  if (im.io.empty() || !im.acceptor) {
    std::lock_guard lk(im.st.count_mu);
    im.acceptor_closed = true;
    im.st.count_cv.notify_all();
    return;
  }
  asio::post(im.io[0]->ioc, [&im] {
    beast::error_code ec;
    im.acceptor->close(ec);
    if (im.accept_retry) im.accept_retry->cancel();
    std::lock_guard lk(im.st.count_mu);
    im.acceptor_closed = true;
    im.st.count_cv.notify_all();
  });
  for (auto& t : im.io)
    asio::post(t->ioc, [t = t.get()] {
      for (Connection* c : t->conns) c->close_if_idle();
    });
}

void Engine::Impl::accept() {
  if (st.stopping || !acceptor->is_open()) return;
  IoThread& target = *io[next++ % io.size()];
  acceptor->async_accept(target.ioc, [this, &target](beast::error_code ec, tcp::socket s) {
    if (ec == asio::error::operation_aborted || st.stopping) return;
    if (ec) {
      // Out of descriptors or memory: wait a little instead of spinning.
      st.log(fmt::format("pachctl serve: accept failed: {}; retrying", ec.message()));
      accept_retry.emplace(io[0]->ioc);
      accept_retry->expires_after(std::chrono::milliseconds(100));
      accept_retry->async_wait([this](beast::error_code e) {
        if (!e) accept();
      });
      return;
    }
    on_accept(target, std::move(s));
    accept();
  });
}

void Engine::Impl::on_accept(IoThread& target, tcp::socket s) {
  beast::error_code ec;
  auto ep = s.remote_endpoint(ec);
  if (ec) return;  // gone already
  std::string addr = ep.address().to_string();
  std::string over;
  {
    std::lock_guard lk(st.count_mu);
    std::size_t& mine = st.per_client[addr];
    if (st.live >= st.opts.max_connections)
      over = fmt::format("the server has its maximum of {} connections open; try again shortly "
                         "(pachctl serve --max-connections)",
                         st.opts.max_connections);
    else if (mine >= st.opts.max_per_client)
      over = fmt::format("too many connections from {} (at most {}; pachctl serve --max-per-client); "
                         "close some, or reuse them",
                         addr, st.opts.max_per_client);
    if (over.empty()) {
      st.live++;
      mine++;
    } else if (mine == 0) {
      st.per_client.erase(addr);
    }
  }
  if (!over.empty()) return refuse_fast(s, over);
  asio::post(target.ioc, [this, &target, s = std::move(s), addr = std::move(addr)]() mutable {
    auto c = std::make_shared<Connection>(st, target, std::move(s), std::move(addr));
    c->start();
  });
}

// A connection over a cap: a 503 written without waiting (it fits in the
// socket's buffer), then closed; no state is kept for it.
void Engine::Impl::refuse_fast(tcp::socket& s, std::string_view message) {
  Response res;  // the same JSON error as every other
  res.error(503, "busy", std::string(message));
  std::string msg = fmt::format(
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\n"
      "Retry-After: 1\r\nConnection: close\r\n\r\n{}",
      res.body.size(), res.body);
  [[maybe_unused]] auto n = ::send(s.native_handle(), msg.data(), msg.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  ::shutdown(s.native_handle(), SHUT_WR);
  beast::error_code ec;
  s.close(ec);
  // One log line a second at most: a flood must not flood the log.
  refused++;
  std::int64_t now = now_ms();
  std::int64_t last = last_refusal_log;
  if (now - last >= 1000 && last_refusal_log.compare_exchange_strong(last, now))
    st.log(fmt::format("pachctl serve: refused {} connection(s) over a cap: {}", refused.exchange(0), message));
}

void Engine::Impl::sweep(IoThread& t) {
  t.sweeper->expires_after(kSweepEvery);
  t.sweeper->async_wait([this, &t](beast::error_code ec) {
    if (ec) return;
    std::int64_t now = now_ms();
    for (Connection* c : t.conns) c->sweep(now);
    sweep(t);
  });
}

}  // namespace pfs::detail::http
