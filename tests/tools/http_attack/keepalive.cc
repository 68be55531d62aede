// keepalive.cc: http_attack keepalive, greedy clients that send requests back to back.
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "http_attack.h"

namespace http_attack {

namespace {

struct KaClient {
  enum State { kIdle, kConnecting, kBusy } state = kIdle;
  int fd = -1;
  std::string out;
  std::size_t out_off = 0;
  std::string in;
  double req_start = 0, retry_at = 0;
  long long answers = 0;
};

}  // namespace

int cmd_keepalive(int argc, char** argv) {
  auto a = parse_args(argc, argv, {"--seconds", "--path", "--timeout", "--from"}, {});
  auto dst = target(a, 3);
  auto n = static_cast<std::size_t>(to_int("N", a.pos[2], 1, 50000));
  need(a, "--seconds");
  need(a, "--path");
  double seconds = opt_double(a, "--seconds", 0, 0, 3600);
  double timeout = opt_double(a, "--timeout", 10, 0.01, 3600);
  Sources src(a.has("--from") ? a.opts.at("--from") : "");
  raise_fd_limit();
  const std::string request = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: http_attack\r\n\r\n", a.opts.at("--path"),
      addr_str(dst), ntohs(dst.sin_port));

  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) fatal(fmt::format("epoll_create1: {}", std::strerror(errno)));
  std::vector<KaClient> c(n);
  std::vector<double> latency;
  std::map<int, long long> statuses;
  long long non2xx = 0, reconnects = 0, connect_errors = 0, resets = 0, timeouts = 0, bad = 0;
  long long requests = 0;

  auto drop = [&](KaClient& k, double retry_in) {
    if (k.fd >= 0) {
      ::epoll_ctl(ep, EPOLL_CTL_DEL, k.fd, nullptr);
      close_reset(k.fd);
    }
    k.fd = -1;
    k.state = KaClient::kIdle;
    k.in.clear();
    k.retry_at = now() + retry_in;
  };
  auto want = [&](KaClient& k, std::uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = static_cast<std::uint64_t>(&k - c.data());
    ::epoll_ctl(ep, EPOLL_CTL_MOD, k.fd, &ev);
  };
  // Sends what is left of k.out; waits for EPOLLOUT if it does not all go.
  auto push = [&](KaClient& k) {
    while (k.out_off < k.out.size()) {
      ssize_t r = ::send(k.fd, k.out.data() + k.out_off, k.out.size() - k.out_off, MSG_NOSIGNAL);
      if (r > 0) {
        k.out_off += static_cast<std::size_t>(r);
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno == EAGAIN) {
        want(k, EPOLLIN | EPOLLOUT | EPOLLRDHUP);
        return;
      }
      ++resets;
      drop(k, 0);
      return;
    }
    want(k, EPOLLIN | EPOLLRDHUP);
  };
  auto start_request = [&](KaClient& k, double started) {
    k.out = request;
    k.out_off = 0;
    k.req_start = started;
    k.state = KaClient::kBusy;
    push(k);
  };
  auto start_connect = [&](KaClient& k) {
    int err = 0;
    k.fd = open_conn(dst, src.next(), err);
    if (k.fd < 0) {
      ++connect_errors;
      k.retry_at = now() + 0.1;
      return;
    }
    ++reconnects;
    k.req_start = now();
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.u64 = static_cast<std::uint64_t>(&k - c.data());
    ::epoll_ctl(ep, EPOLL_CTL_ADD, k.fd, &ev);
    if (err == 0) start_request(k, k.req_start);
    else k.state = KaClient::kConnecting;
  };
  auto on_readable = [&](KaClient& k) {
    char buf[65536];
    bool eof = false;
    for (;;) {
      ssize_t r = ::recv(k.fd, buf, sizeof buf, 0);
      if (r > 0) {
        k.in.append(buf, static_cast<std::size_t>(r));
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno == EAGAIN) break;
      eof = true;
      if (r < 0) ++resets;
      break;
    }
    for (;;) {
      auto resp = parse_response(k.in, false, eof);
      if (resp.state == Response::kIncomplete) break;
      if (resp.state == Response::kBad) {
        if (!k.in.empty()) ++bad;
        drop(k, 0);
        return;
      }
      k.in.erase(0, resp.end);
      if (resp.status / 100 == 1) continue;
      double t = now();
      latency.push_back((t - k.req_start) * 1000.0);
      statuses[resp.status]++;
      if (resp.status / 100 != 2) ++non2xx;
      ++k.answers;
      ++requests;
      if (resp.close || resp.until_close || eof) {
        drop(k, 0);
        return;
      }
      start_request(k, t);
      return;
    }
    if (eof) drop(k, 0);
  };

  double end = now() + seconds;
  std::vector<epoll_event> evs(1024);
  while (now() < end) {
    double t = now();
    for (auto& k : c) {
      if (k.state == KaClient::kIdle && t >= k.retry_at) start_connect(k);
      else if (k.state != KaClient::kIdle && t - k.req_start > timeout) {
        ++timeouts;
        drop(k, 0);
      }
    }
    int m = ::epoll_wait(ep, evs.data(), static_cast<int>(evs.size()),
                         std::min(ms_until(end), 50));
    if (m < 0 && errno != EINTR) fatal(fmt::format("epoll_wait: {}", std::strerror(errno)));
    for (int j = 0; j < m; ++j) {
      auto& k = c[evs[j].data.u64];
      if (k.fd < 0) continue;
      if (k.state == KaClient::kConnecting) {
        if (int e = socket_error(k.fd); e != 0) {
          ++connect_errors;
          drop(k, 0.1);
          continue;
        }
        start_request(k, k.req_start);
        continue;
      }
      if (k.state != KaClient::kBusy) continue;
      if ((evs[j].events & EPOLLOUT) && k.out_off < k.out.size()) push(k);
      if (k.fd >= 0 && (evs[j].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        on_readable(k);
    }
  }
  std::vector<double> per;
  long long starved = 0;
  for (auto& k : c) {
    per.push_back(static_cast<double>(k.answers));
    if (k.answers == 0) ++starved;
    close_reset(k.fd);
  }
  ::close(ep);
  kv("clients", static_cast<long long>(n));
  kv("seconds", seconds);
  kv("requests", requests);
  kv("per_client_min", static_cast<long long>(quantile(per, 0)));
  kv("per_client_median", static_cast<long long>(quantile(per, 0.5)));
  kv("per_client_max", static_cast<long long>(quantile(per, 1)));
  kv("starved", starved);
  kv("latency_p50_ms", quantile(latency, 0.5));
  kv("latency_p99_ms", quantile(latency, 0.99));
  kv("latency_max_ms", quantile(latency, 1));
  kv("non2xx", non2xx);
  kv("statuses", statuses_str(statuses));
  kv("connections", reconnects);
  kv("connect_errors", connect_errors);
  kv("resets", resets);
  kv("timeouts", timeouts);
  kv("bad_responses", bad);
  return 0;
}

}  // namespace http_attack
