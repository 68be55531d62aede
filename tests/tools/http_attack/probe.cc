// probe.cc: http_attack probe, GETs one after another, each on a new connection.
#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "http_attack.h"

namespace http_attack {

int cmd_probe(int argc, char** argv) {
  auto a = parse_args(argc, argv, {"--path", "--count", "--interval", "--timeout", "--from"}, {});
  auto dst = target(a, 2);
  need(a, "--path");
  need(a, "--count");
  long long count = opt_int(a, "--count", 1, 1, 1000000);
  double interval_ms = opt_double(a, "--interval", 0, 0, 3600000);
  double timeout = opt_double(a, "--timeout", 5, 0.01, 3600);
  Sources src(a.has("--from") ? a.opts.at("--from") : "127.0.0.1");
  const std::string request = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: http_attack\r\nConnection: close\r\n\r\n",
      a.opts.at("--path"), addr_str(dst), ntohs(dst.sin_port));
  long long ok = 0, refused = 0, timeouts = 0, non2xx = 0, errors = 0;
  std::map<int, long long> statuses;
  std::vector<double> latency;
  for (long long i = 0; i < count; ++i) {
    if (i > 0 && interval_ms > 0)
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(interval_ms));
    double t0 = now(), deadline = t0 + timeout;
    int err = 0;
    int fd = open_conn(dst, src.next(), err);
    if (fd < 0) {
      if (err == ECONNREFUSED) ++refused;
      else ++errors;
      fmt::print(stderr, "http_attack probe {}: connect: {}\n", i, std::strerror(err));
      continue;
    }
    bool connected = err == 0, eof = false, failed = false;
    std::size_t off = 0;
    std::string in;
    Response resp;
    while (now() < deadline) {
      pollfd p{fd, POLLIN, 0};
      if (!connected || off < request.size()) p.events |= POLLOUT;
      int r = ::poll(&p, 1, ms_until(deadline));
      if (r < 0 && errno != EINTR) fatal(fmt::format("poll: {}", std::strerror(errno)));
      if (r <= 0) continue;
      if (!connected) {
        if (int e = socket_error(fd); e != 0) {
          err = e;
          failed = true;
          break;
        }
        connected = true;
      }
      if ((p.revents & POLLOUT) && off < request.size()) {
        ssize_t w = ::send(fd, request.data() + off, request.size() - off, MSG_NOSIGNAL);
        if (w > 0) off += static_cast<std::size_t>(w);
      }
      if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
        char buf[65536];
        for (;;) {
          ssize_t k = ::recv(fd, buf, sizeof buf, 0);
          if (k > 0) {
            in.append(buf, static_cast<std::size_t>(k));
            continue;
          }
          if (k < 0 && (errno == EAGAIN || errno == EINTR)) break;
          eof = true;
          break;
        }
      }
      resp = parse_response(in, false, eof);
      if (resp.state == Response::kComplete && resp.status / 100 == 1) {
        in.erase(0, resp.end);
        resp = parse_response(in, false, eof);
      }
      if (resp.state != Response::kIncomplete || eof) break;
    }
    close_reset(fd);
    double ms = (now() - t0) * 1000.0;
    if (failed) {
      if (err == ECONNREFUSED) ++refused;
      else ++errors;
      fmt::print(stderr, "http_attack probe {}: connect: {}\n", i, std::strerror(err));
    } else if (resp.state == Response::kIncomplete && !eof) {
      ++timeouts;
      fmt::print(stderr, "http_attack probe {}: no whole answer in {:.1f} s ({} bytes)\n", i,
                 timeout, in.size());
    } else if (resp.state != Response::kComplete) {
      ++errors;
      fmt::print(stderr, "http_attack probe {}: bad or cut answer: {}\n", i, escape(in, 200));
    } else {
      statuses[resp.status]++;
      latency.push_back(ms);
      if (resp.status / 100 == 2) {
        ++ok;
      } else {
        ++non2xx;
        fmt::print(stderr, "http_attack probe {}: status {}\n", i, resp.status);
      }
    }
  }
  kv("count", count);
  kv("ok", ok);
  kv("failures", count - ok);
  kv("refused", refused);
  kv("timeouts", timeouts);
  kv("non2xx", non2xx);
  kv("errors", errors);
  kv("statuses", statuses_str(statuses));
  kv("latency_p50_ms", quantile(latency, 0.5));
  kv("latency_p99_ms", quantile(latency, 0.99));
  kv("latency_max_ms", quantile(latency, 1));
  return 0;
}

}  // namespace http_attack
