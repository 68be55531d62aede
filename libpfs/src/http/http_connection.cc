// http_connection.cc: one client connection: the request's life from its
// first byte to the response's last (see http_engine.h for the design).
//
// A connection is owned by one network thread. It waits for a request
// (async_wait: no buffer while idle), reads its headers with Beast's parser
// (async), checks them, then runs the route either on the network thread
// (quick routes) or on a worker thread that reads the body and writes the
// response with blocking calls on the same socket; the network thread has
// no operation pending on the socket meanwhile. The sweeper of the network
// thread enforces deadlines: it cancels the pending operation of a
// connection in the network phases, and shuts down the socket of one whose
// worker is blocked on a client that stopped reading or sending.
#include "http_connection.h"

#include <strings.h>
#include <sys/socket.h>

#include <array>
#include <cstring>
#include <limits>

#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <fmt/format.h>

#include <pfs/json.h>

namespace pfs::detail::http {

// ---- the worker pool

WorkerPool::WorkerPool(std::size_t n) {
  for (std::size_t i = 0; i < n; i++)
    threads_.emplace_back([this] {
      for (;;) {
        std::function<void()> task;
        {
          std::unique_lock lk(mu_);
          cv_.wait(lk, [&] { return stop_ || !tasks_.empty(); });
          if (tasks_.empty()) return;
          task = std::move(tasks_.front());
          tasks_.pop_front();
        }
        task();
      }
    });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void WorkerPool::post(std::function<void()> task) {
  {
    std::lock_guard lk(mu_);
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void EngineState::release(const std::string& addr) {
  std::lock_guard lk(count_mu);
  live--;
  if (auto it = per_client.find(addr); it != per_client.end() && --it->second == 0) per_client.erase(it);
  count_cv.notify_all();
}

namespace {

std::int64_t secs(std::chrono::milliseconds ms) { return std::max<std::int64_t>(1, ms.count() / 1000); }

// What a body read's error means to the client.
std::string body_error(const beast::error_code& ec) {
  if (ec == bhttp::error::partial_message || ec == bhttp::error::end_of_stream ||
      ec == asio::error::eof || ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
      ec == asio::error::shut_down || ec == asio::error::operation_aborted)
    return "the request body was cut off before its end (the client closed the connection or "
           "stalled); nothing was written";
  return fmt::format("the request body is malformed ({}; see RFC 9112 for chunked framing); nothing "
                     "was written",
                     ec.message());
}

}  // namespace

// The request body, read by the route on its worker thread.
class Connection::SocketBody final : public RequestBody {
 public:
  explicit SocketBody(Connection& c) : c_(c) {}
  bool too_large() const override { return c_.too_large_; }

  Result<std::size_t> read(std::span<char> buf) override {
    if (c_.body_broken_) return Error{ErrorCode::kInvalidArgument, "the request body could not be read"};
    if (c_.body_done() || buf.empty()) return std::size_t{0};
    if (c_.expect_continue_ && !c_.continue_sent_) {
      // The route wants the body: now the client may send it.
      c_.continue_sent_ = true;
      static constexpr std::string_view k100 = "HTTP/1.1 100 Continue\r\n\r\n";
      if (!c_.blocking_write({asio::buffer(k100.data(), k100.size())})) {
        c_.body_broken_ = true;
        return Error{ErrorCode::kInvalidArgument, "the client closed the connection before its body"};
      }
    }
    beast::error_code ec;
    std::size_t got = c_.direct_ ? read_direct(buf, ec) : read_chunked(buf, ec);
    if (ec) {
      c_.body_broken_ = true;
      return Error{ErrorCode::kInvalidArgument, body_error(ec)};
    }
    total_ += got;
    std::uint64_t max = c_.e_.opts.max_upload;
    if (max > 0 && total_ > max) {
      c_.too_large_ = c_.body_broken_ = true;
      return Error{ErrorCode::kInvalidArgument, "the request body is too large"};
    }
    return got;
  }

 private:
  // A body with a Content-Length: what the header read left in the
  // buffer, then straight from the socket into the caller's buffer (no
  // copy through the parser, reads as large as the caller's).
  std::size_t read_direct(std::span<char> buf, beast::error_code& ec) {
    std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), c_.body_left_));
    if (c_.buf_.size() > 0) {
      std::size_t n = std::min(want, c_.buf_.size());
      std::memcpy(buf.data(), c_.buf_.data().data(), n);
      c_.buf_.consume(n);
      c_.body_left_ -= n;
      return n;
    }
    c_.deadline_ = now_ms() + c_.e_.opts.io_timeout.count();
    std::size_t n = c_.sock_.read_some(asio::buffer(buf.data(), want), ec);
    c_.deadline_ = kNoDeadline;
    if (!ec && n == 0) ec = asio::error::eof;
    if (ec) return 0;
    c_.body_left_ -= n;
    return n;
  }

  // A chunked body, through Beast's parser (which checks the framing).
  std::size_t read_chunked(std::span<char> buf, beast::error_code& ec) {
    if (c_.buf_.capacity() < kReadBuffer) c_.buf_.reserve(kReadBuffer);
    auto& b = c_.parser_->get().body();
    for (;;) {
      b.data = buf.data();
      b.size = buf.size();
      c_.deadline_ = now_ms() + c_.e_.opts.io_timeout.count();
      bhttp::read_some(c_.sock_, c_.buf_, *c_.parser_, ec);
      c_.deadline_ = kNoDeadline;
      if (ec == bhttp::error::need_buffer) ec = {};
      std::size_t got = buf.size() - b.size;
      b.data = nullptr;
      if (ec) return 0;
      if (got > 0 || c_.parser_->is_done()) return got;
    }
  }

  static constexpr std::size_t kReadBuffer = 64 * 1024;
  Connection& c_;
  std::uint64_t total_ = 0;
};

// A streamed response body, written on the worker thread; the headers go
// out with the first piece.
class Connection::SocketWriter final : public BodyWriter {
 public:
  SocketWriter(Connection& c, bool chunked) : c_(c), chunked_(chunked) {}

  bool write(const char* data, std::size_t n) override {
    if (n == 0) return true;
    std::vector<asio::const_buffer> bufs;
    if (!head_sent_) bufs.push_back(asio::buffer(c_.head_));
    char size_line[24];
    if (chunked_) {
      auto r = fmt::format_to_n(size_line, sizeof size_line, "{:x}\r\n", n);
      bufs.push_back(asio::buffer(size_line, r.size));
    }
    bufs.push_back(asio::buffer(data, n));
    if (chunked_) bufs.push_back(asio::buffer("\r\n", 2));
    head_sent_ = true;
    if (!c_.blocking_write(bufs)) return false;
    sent_ += n;
    return true;
  }

  // The end of the body (and the headers, when nothing was written).
  bool finish() {
    std::vector<asio::const_buffer> bufs;
    if (!head_sent_) bufs.push_back(asio::buffer(c_.head_));
    if (chunked_) bufs.push_back(asio::buffer("0\r\n\r\n", 5));
    head_sent_ = true;
    return bufs.empty() || c_.blocking_write(bufs);
  }
  std::uint64_t sent() const { return sent_; }

 private:
  Connection& c_;
  bool chunked_;
  bool head_sent_ = false;
  std::uint64_t sent_ = 0;
};

Connection::Connection(EngineState& e, IoThread& io, tcp::socket s, std::string addr)
    : e_(e), io_(io), sock_(std::move(s)), fd_(sock_.native_handle()), addr_(std::move(addr)) {
  pos_ = io_.conns.insert(io_.conns.end(), this);
}

// NOTE: runs on the network thread only (the last reference is always
// dropped there), so the thread's list needs no lock.
Connection::~Connection() {
  io_.conns.erase(pos_);
  e_.release(addr_);
}

void Connection::start() {
  beast::error_code ec;
  sock_.set_option(tcp::no_delay(true), ec);
  deadline_ = now_ms() + e_.opts.header_timeout.count();  // from the accept
  wait_request();
}

// NOTE: no async_wait for the next request: Asio's epoll reactor re-arms
// the descriptor (epoll_ctl) for every wait, while a read after one that
// drained the socket goes straight to epoll. The sweeper notices when the
// first bytes of a request arrive (the buffer is no longer empty) and
// starts the header deadline then.
void Connection::wait_request() {
  if (e_.stopping) return close();
  timed_out_ = false;
  got_bytes_ = buf_.size() > 0;
  if (got_bytes_) deadline_ = now_ms() + e_.opts.header_timeout.count();
  // Idle: keep no big buffer (an idle connection costs little).
  if (!got_bytes_ && buf_.capacity() > 4096) buf_ = beast::flat_buffer();
  read_header();
}

void Connection::read_header() {
  phase_ = kHeader;
  started_ = Clock::now();
  parser_.emplace();
  parser_->header_limit(static_cast<std::uint32_t>(e_.opts.max_header_bytes));
  // max_upload is checked while reading. NOTE: not boost::none: Beast 1.74
  // compares a Content-Length with the optional limit, and none loses.
  parser_->body_limit(std::numeric_limits<std::uint64_t>::max());
  bhttp::async_read_header(sock_, buf_, *parser_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
    self->on_header(ec);
  });
}

void Connection::on_header(beast::error_code ec) {
  if (ec) {
    if (timed_out_ && buf_.size() == 0) return close();  // idle too long: nothing to answer
    if (timed_out_)
      return refuse(408, "timeout",
                    fmt::format("the request's line and headers did not arrive within {} s; send them "
                                "at once (pachctl serve --header-timeout)",
                                secs(e_.opts.header_timeout)));
    if (ec == bhttp::error::header_limit || ec == bhttp::error::buffer_overflow)
      return refuse(431, "invalid_argument",
                    fmt::format("the request's headers are larger than {} bytes", e_.opts.max_header_bytes));
    bool parse_error = ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category();
    if (!parse_error || ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message)
      return close();  // the client went away (or the server stops)
    return refuse(400, "invalid_argument",
                  fmt::format("malformed HTTP request: {} (RFC 9112)", ec.message()));
  }
  if (!prepare()) return;
  if (!req_.has_body && route_->quick && route_->quick(req_)) return run_quick();
  run_worker(false);
}

bool Connection::prepare() {
  auto& msg = parser_->get();
  req_ = Request{};
  res_ = Response{};
  expect_continue_ = continue_sent_ = body_broken_ = too_large_ = false;
  req_.method = std::string(msg.method_string());
  req_.target = std::string(msg.target());
  req_.remote_addr = addr_;
  http10_ = msg.version() == 10;
  head_only_ = req_.method == "HEAD";
  auto bad = [&](std::string m) {
    refuse(400, "invalid_argument", std::move(m));
    return false;
  };
  if (msg.version() != 10 && msg.version() != 11)
    return bad(fmt::format("HTTP/{}.{} is not spoken here: use HTTP/1.1", msg.version() / 10,
                           msg.version() % 10));
  if (req_.target.size() > e_.opts.max_target_bytes) {
    refuse(414, "invalid_argument",
           fmt::format("the request target is longer than {} bytes", e_.opts.max_target_bytes));
    return false;
  }
  // Framing, stricter than Beast (RFC 9112 section 6): one Content-Length
  // of digits only; chunked as the only transfer coding; not both.
  int lengths = 0, codings = 0, hosts = 0;
  std::string coding, expect;
  for (const auto& f : msg) {
    std::string_view v(f.value().data(), f.value().size());
    if (f.name() == bhttp::field::content_length) {
      lengths++;
      std::string_view t = trim(v);
      if (t.empty() || t.find_first_not_of("0123456789") != std::string_view::npos)
        return bad(fmt::format("Content-Length \"{}\" is not a number of bytes", std::string(v.substr(0, 40))));
    } else if (f.name() == bhttp::field::transfer_encoding) {
      codings++;
      coding = std::string(trim(v));
    } else if (f.name() == bhttp::field::host) {
      hosts++;
    } else if (f.name() == bhttp::field::expect) {
      expect = std::string(trim(v));
    }
    req_.headers.emplace_back(std::string(f.name_string()), std::string(v));
  }
  if (lengths > 1) return bad(fmt::format("the request has {} Content-Length headers; send one", lengths));
  if (codings > 0 && lengths > 0)
    return bad("the request has both Content-Length and Transfer-Encoding; send one of them");
  if (codings > 1 || (codings == 1 && (!iequals(coding, "chunked") || http10_)))
    return bad(fmt::format("Transfer-Encoding \"{}\" is not supported: send the body with "
                           "Content-Length, or with Transfer-Encoding: chunked alone (HTTP/1.1)",
                           coding.substr(0, 60)));
  if (!http10_ && hosts != 1) return bad("an HTTP/1.1 request needs exactly one Host header");
  req_.has_body = parser_->chunked() || parser_->content_length().value_or(0) > 0;
  direct_ = !parser_->chunked();
  body_left_ = direct_ ? parser_->content_length().value_or(0) : 0;
  if (!expect.empty()) {
    if (!iequals(expect, "100-continue")) {
      refuse(417, "invalid_argument", "the only expectation understood is Expect: 100-continue");
      return false;
    }
    expect_continue_ = req_.has_body && !http10_;
  }
  if (auto r = decode_target(req_.target, req_); !r) return bad(r.error().message);
  if (req_.path != "/health" && !e_.auth(req_, res_)) {
    write_async(false, req_.has_body);
    return false;
  }
  route_ = e_.router(req_);
  if (!route_) {
    res_.error(404, "not_found", fmt::format("no route {} {} (see docs/http.md)", req_.method, req_.path));
    write_async(!req_.has_body && msg.keep_alive(), req_.has_body);
    return false;
  }
  std::uint64_t max = e_.opts.max_upload;
  if (max > 0 && parser_->content_length().value_or(0) > max) {
    refuse(413, "too_large",
           fmt::format("the request body is larger than this server accepts ({} bytes; pachctl serve "
                       "--max-upload)",
                       max));
    return false;
  }
  return true;
}

void Connection::call_handler() {
  try {
    route_->handler(req_, res_);
  } catch (const std::exception& ex) {
    // NOTE: never the exception's text to the client: it is for the log.
    e_.log(fmt::format("internal error in {} {}: {}", req_.method, req_.path, ex.what()));
    res_.error(500, "internal", "internal error in the server (its log has the details)");
  } catch (...) {
    res_.error(500, "internal", "internal error in the server");
  }
  if (too_large_)
    res_.error(413, "too_large",
               fmt::format("the request body is larger than this server accepts ({} bytes; pachctl "
                           "serve --max-upload)",
                           e_.opts.max_upload));
}

void Connection::run_quick() {
  phase_ = kQuick;
  call_handler();
  if (res_.stream && !head_only_) return run_worker(true);
  write_async(parser_->get().keep_alive(), false);
}

void Connection::run_worker(bool handler_done) {
  phase_ = kWorker;
  deadline_ = kNoDeadline;
  e_.pool->post([self = shared_from_this(), handler_done]() mutable {
    self->work(handler_done);
    Connection* c = self.get();
    // Back to the network thread, with the last reference (see ~Connection).
    asio::post(c->io_.ioc, [self = std::move(self)] {
      self->phase_ = kQuick;
      self->after(self->keep_after_, self->linger_after_);
    });
  });
}

// On a worker thread: the route, then the response, with blocking I/O.
void Connection::work(bool handler_done) {
  SocketBody body(*this);
  req_.body = &body;
  if (!handler_done) call_handler();
  bool body_done = !req_.has_body || this->body_done();
  // A small rest of a body the route did not want is read and dropped, so
  // that the connection can go on (not when the client waits for a 100).
  if (!body_done && !body_broken_ && (!expect_continue_ || continue_sent_)) body_done = drain_rest();
  bool keep = body_done && !body_broken_ && parser_->get().keep_alive() && !e_.stopping;
  std::uint64_t bytes = 0;
  if (res_.stream && !head_only_) {
    bool chunked = !res_.stream_length && !http10_;
    if (!res_.stream_length && !chunked) keep = false;  // HTTP/1.0: the end is the close
    head_ = head_for(keep, res_.stream_length, chunked);
    SocketWriter w(*this, chunked);
    bool ok = false;
    try {
      ok = res_.stream(w);
    } catch (const std::exception& ex) {
      res_.cut_reason = ex.what();
    }
    ok = ok && w.finish() && (!res_.stream_length || w.sent() == *res_.stream_length);
    if (!ok) {
      keep = false;
      if (res_.cut_reason.empty()) res_.cut_reason = "the client closed the connection or stalled";
    }
    bytes = w.sent();
  } else {
    auto len = res_.stream ? res_.stream_length : std::optional<std::uint64_t>(res_.body.size());
    head_ = head_for(keep, len, false);
    std::vector<asio::const_buffer> bufs{asio::buffer(head_)};
    if (!head_only_ && !res_.body.empty()) bufs.push_back(asio::buffer(res_.body));
    if (!blocking_write(bufs)) keep = false;
    else bytes = head_only_ ? 0 : res_.body.size();
  }
  log_request(bytes);
  req_.body = nullptr;
  keep_after_ = keep;
  linger_after_ = !keep && req_.has_body && !this->body_done();
}

bool Connection::drain_rest() {
  constexpr std::uint64_t kMaxDrain = 1 << 20;
  char buf[16384];
  std::uint64_t total = 0;
  SocketBody body(*this);
  while (total <= kMaxDrain) {
    auto n = body.read(buf);
    if (!n) return false;
    if (*n == 0) return true;
    total += *n;
  }
  return false;
}

void Connection::after(bool keep_alive, bool linger_first) {
  if (keep_alive && !e_.stopping) {
    parser_.reset();
    req_ = Request{};
    res_ = Response{};
    deadline_ = now_ms() + e_.opts.idle_timeout.count();
    return wait_request();
  }
  if (linger_first) return linger();
  close();
}

void Connection::refuse(int status, std::string_view code, std::string message) {
  res_ = Response{};
  res_.error(status, code, std::move(message));
  write_async(false, true);
}

void Connection::write_async(bool keep_alive, bool linger_after) {
  keep_alive = keep_alive && !e_.stopping;
  phase_ = kQuick;
  head_ = head_for(keep_alive, res_.stream ? res_.stream_length : std::optional<std::uint64_t>(res_.body.size()), false);
  std::array<asio::const_buffer, 2> bufs{asio::buffer(head_), asio::buffer(res_.body)};
  if (head_only_) bufs[1] = asio::const_buffer();
  deadline_ = now_ms() + e_.opts.io_timeout.count();
  asio::async_write(sock_, bufs,
                    [self = shared_from_this(), keep_alive, linger_after](beast::error_code ec, std::size_t) {
                      self->deadline_ = kNoDeadline;
                      self->log_request(ec || self->head_only_ ? 0 : self->res_.body.size());
                      if (ec) return self->close();
                      self->after(keep_alive, linger_after);
                    });
}

// After an error response on a connection that still has unread input:
// stop sending, and read and drop what the client still sends for a short
// while before closing, so that the client reads the response instead of
// a reset (what nginx calls a lingering close).
void Connection::linger() {
  phase_ = kLinger;
  timed_out_ = false;
  deadline_ = now_ms() + std::min<std::int64_t>(e_.opts.io_timeout.count(), 5000);
  beast::error_code ec;
  sock_.shutdown(tcp::socket::shutdown_send, ec);
  if (ec) return close();
  linger_more();
}

void Connection::linger_more() {
  sock_.async_read_some(asio::buffer(io_.junk), [self = shared_from_this()](beast::error_code ec, std::size_t) {
    if (ec) return self->close();
    self->linger_more();
  });
}

void Connection::close() {
  phase_ = kClosed;
  deadline_ = kNoDeadline;
  beast::error_code ec;
  sock_.shutdown(tcp::socket::shutdown_both, ec);
  sock_.close(ec);
}

void Connection::sweep(std::int64_t now) {
  int p = phase_;
  if (p == kHeader && !got_bytes_ && buf_.size() > 0) {
    // A request began: its line and headers have header_timeout from now
    // (a new connection's deadline counts from its accept already).
    got_bytes_ = true;
    started_ = Clock::now();
    deadline_ = std::min<std::int64_t>(deadline_, now + e_.opts.header_timeout.count());
  }
  if (deadline_.load(std::memory_order_relaxed) > now) return;
  deadline_ = kNoDeadline;
  if (p == kClosed) return;
  if (p == kWorker) {
    // A worker is blocked on this socket: wake it with an error. NOTE:
    // ::shutdown only, on the descriptor: the socket object is the
    // worker's while it runs.
    ::shutdown(fd_, SHUT_RDWR);
    return;
  }
  timed_out_ = true;
  beast::error_code ec;
  sock_.cancel(ec);
}

void Connection::close_if_idle() {
  int p = phase_;
  if (p == kHeader || p == kLinger) {
    beast::error_code ec;
    sock_.cancel(ec);
  }
}

bool Connection::blocking_write(const std::vector<asio::const_buffer>& bufs) {
  beast::error_code ec;
  deadline_ = now_ms() + e_.opts.io_timeout.count();
  asio::write(sock_, bufs, ec);
  deadline_ = kNoDeadline;
  return !ec;
}

std::string Connection::head_for(bool keep_alive, std::optional<std::uint64_t> length, bool chunked) const {
  std::string h;
  h.reserve(256);
  auto out = std::back_inserter(h);
  fmt::format_to(out, "HTTP/1.1 {} {}\r\nDate: {}\r\n", res_.status, reason_phrase(res_.status), http_date_now());
  if (!res_.content_type.empty()) fmt::format_to(out, "Content-Type: {}\r\n", res_.content_type);
  for (const auto& [k, v] : res_.headers) {
    h += k;
    h += ": ";
    for (char c : v) h += (c == '\r' || c == '\n') ? ' ' : c;  // a header is one line
    h += "\r\n";
  }
  if (chunked) h += "Transfer-Encoding: chunked\r\n";
  else if (length) fmt::format_to(out, "Content-Length: {}\r\n", *length);
  if (!keep_alive) h += "Connection: close\r\n";
  else if (http10_) h += "Connection: keep-alive\r\n";
  h += "\r\n";
  return h;
}

void Connection::log_request(std::uint64_t bytes) {
  if (!e_.opts.log) return;
  auto ms = std::chrono::duration<double, std::milli>(Clock::now() - started_).count();
  auto wall = std::chrono::duration_cast<std::chrono::nanoseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  std::string note = res_.cut_reason.empty() ? std::string() : " cut off: " + res_.cut_reason;
  e_.log(fmt::format("{} {} {} {} {} {} {:.1f}ms{}", format_time_utc(wall), addr_,
                     req_.method.empty() ? "-" : req_.method, req_.target.empty() ? "-" : req_.target,
                     res_.status, bytes, ms, note));
}

}  // namespace pfs::detail::http
