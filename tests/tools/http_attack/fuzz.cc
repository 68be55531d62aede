// fuzz.cc: http_attack fuzz, random and mutated requests, one connection each,
// many in flight; counts the answers and notices a server that died.
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "http_attack.h"

namespace http_attack {

namespace {

struct Slot {
  int fd = -1;
  bool connecting = false, shut = false, eof = false, reset = false;
  std::string req;
  std::size_t off = 0;
  std::string in;
  std::size_t in_total = 0;
  double started = 0, answered_at = -1;
  long long id = 0;
};

}  // namespace

int cmd_fuzz(int argc, char** argv) {
  auto a = parse_args(argc, argv,
                      {"--count", "--seed", "--token", "--concurrency", "--timeout", "--max-seconds",
                       "--from"},
                      {});
  auto dst = target(a, 2);
  need(a, "--count");
  need(a, "--seed");
  long long count = opt_int(a, "--count", 0, 0, 1000000000);
  auto seed = static_cast<std::uint64_t>(opt_int(a, "--seed", 0, 0, INT64_MAX));
  auto conc = static_cast<std::size_t>(opt_int(a, "--concurrency", 32, 1, 4096));
  double timeout = opt_double(a, "--timeout", 3, 0.05, 600);
  double max_seconds = opt_double(a, "--max-seconds", 600, 1, 86400);
  Sources src = a.has("--from") ? Sources(a.opts.at("--from")) : Sources::range("127.0.0", 1, 254);
  raise_fd_limit();
  RequestGen gen(seed, fmt::format("{}:{}", addr_str(dst), ntohs(dst.sin_port)),
                 a.has("--token") ? a.opts.at("--token") : "");

  int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) fatal(fmt::format("epoll_create1: {}", std::strerror(errno)));
  std::vector<Slot> slots(conc);
  std::deque<std::string> recent;  // the last requests started
  long long issued = 0, done = 0, by_class[6] = {0, 0, 0, 0, 0, 0}, no_response = 0, resets = 0,
            timeouts = 0, bad = 0, multi = 0, interim = 0, leaks = 0, connect_errors = 0,
            kept_open = 0, local_errors = 0;
  bool died = false;
  std::vector<std::pair<long long, std::string>> in_flight;  // when the server died
  auto server_died = [&] {
    if (died) return;
    died = true;
    for (auto& s : slots)
      if (s.fd >= 0) in_flight.emplace_back(s.id, s.req);
  };
  int shown = 0, timeouts_shown = 0;
  const double t_begin = now(), stop_at = t_begin + max_seconds;

  auto finish = [&](Slot& s, bool timed_out) {
    ::epoll_ctl(ep, EPOLL_CTL_DEL, s.fd, nullptr);
    close_reset(s.fd);
    s.fd = -1;
    ++done;
    if (timed_out && s.answered_at < 0) {
      ++timeouts;
      if (timeouts_shown < 5) {
        ++timeouts_shown;
        fmt::print(stderr, "http_attack fuzz: no answer and no close in {} s for request {}: {}\n  -> {}\n",
                   timeout, s.id, escape(s.req, 1500), escape(s.in, 300));
      }
    }
    if (s.in.empty()) {
      if (s.reset) ++resets;
      else if (!timed_out) ++no_response;
      return;
    }
    std::string_view b = s.in;
    bool head = starts_with(s.req, "HEAD ");
    std::vector<int> finals;
    std::size_t pos = 0;
    while (pos < b.size()) {
      int st = status_of(b.substr(pos));
      if (st == 0) break;
      if (st / 100 == 1) ++interim;
      else finals.push_back(st);
      auto r = parse_response(b.substr(pos), head, true);
      if (r.state != Response::kComplete || r.end == 0) break;
      pos += r.end;
    }
    if (finals.empty()) {
      if (status_of(b) == 0) ++bad;
      return;
    }
    by_class[std::min(finals[0] / 100, 5)]++;
    if (finals.size() > 1) ++multi;
    if (exception_text(b)) {
      ++leaks;
      if (shown < 10) {
        ++shown;
        fmt::print(stderr, "http_attack fuzz: exception text in the answer to request {}: {}\n  -> {}\n",
                   s.id, escape(s.req, 1500), escape(b, 600));
      }
    }
    for (std::size_t i = 0; i < finals.size(); ++i) {
      int st = finals[i];
      if (st >= 500) {
        if (finals[0] < 500) by_class[5]++;  // a later answer of the connection
        if (shown < 10) {
          ++shown;
          fmt::print(stderr, "http_attack fuzz: status {} for request {}: {}\n  -> {}\n", st, s.id,
                     escape(s.req, 1500), escape(b, 300));
        }
        break;
      }
    }
  };
  auto pump = [&](Slot& s) {
    while (s.off < s.req.size()) {
      ssize_t w = ::send(s.fd, s.req.data() + s.off, s.req.size() - s.off, MSG_NOSIGNAL);
      if (w > 0) {
        s.off += static_cast<std::size_t>(w);
        continue;
      }
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && errno == EAGAIN) return;
      s.off = s.req.size();  // the server stopped reading: what it said still counts
      s.shut = true;
    }
    if (!s.shut) {
      ::shutdown(s.fd, SHUT_WR);
      s.shut = true;
    }
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = static_cast<std::uint64_t>(&s - slots.data());
    ::epoll_ctl(ep, EPOLL_CTL_MOD, s.fd, &ev);
  };
  auto drain = [&](Slot& s) {
    char buf[65536];
    for (;;) {
      ssize_t r = ::recv(s.fd, buf, sizeof buf, 0);
      if (r > 0) {
        if (s.in.size() < (256u << 10)) s.in.append(buf, static_cast<std::size_t>(r));
        s.in_total += static_cast<std::size_t>(r);
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && errno == EAGAIN) break;
      if (r < 0) s.reset = true;
      s.eof = true;
      break;
    }
    if (s.eof) {
      finish(s, false);
      return;
    }
    if (s.answered_at < 0 && status_of(s.in) >= 200 &&
        parse_response(s.in, starts_with(s.req, "HEAD "), false).state == Response::kComplete)
      s.answered_at = now();
  };
  auto start = [&](Slot& s) {
    s = Slot{};
    s.req = gen.next();
    s.id = issued;
    recent.push_back(s.req);
    if (recent.size() > std::max<std::size_t>(64, 2 * conc)) recent.pop_front();
    int err = 0;
    s.fd = open_conn(dst, src.next(), err);
    if (s.fd < 0) {
      if (err == ECONNREFUSED) {
        s.fd = -1;
        server_died();
        return;
      }
      ++local_errors;
      if (local_errors > 1000) fatal(fmt::format("connect: {}", std::strerror(err)));
      fmt::print(stderr, "http_attack fuzz: connect: {}\n", std::strerror(err));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      return;
    }
    ++issued;
    s.started = now();
    s.connecting = err != 0;
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
    ev.data.u64 = static_cast<std::uint64_t>(&s - slots.data());
    ::epoll_ctl(ep, EPOLL_CTL_ADD, s.fd, &ev);
    if (!s.connecting) pump(s);
  };

  std::vector<epoll_event> evs(conc + 1);
  for (;;) {
    double t = now();
    bool more = !died && issued < count && t < stop_at;
    std::size_t active = 0;
    for (auto& s : slots) {
      if (s.fd >= 0) {
        if (t - s.started > timeout) finish(s, true);
        else if (s.answered_at >= 0 && t - s.answered_at > 0.5) {  // answered, left open
          ++kept_open;
          finish(s, false);
        }
      }
      if (s.fd < 0 && more) {
        start(s);
        more = !died && issued < count;
      }
      if (s.fd >= 0) ++active;
    }
    if (active == 0 && !more) break;
    int m = ::epoll_wait(ep, evs.data(), static_cast<int>(evs.size()), 20);
    if (m < 0 && errno != EINTR) fatal(fmt::format("epoll_wait: {}", std::strerror(errno)));
    for (int j = 0; j < m; ++j) {
      auto& s = slots[evs[j].data.u64];
      if (s.fd < 0) continue;
      if (s.connecting) {
        int e = socket_error(s.fd);
        if (e != 0) {
          ::epoll_ctl(ep, EPOLL_CTL_DEL, s.fd, nullptr);
          ::close(s.fd);
          s.fd = -1;
          if (e == ECONNREFUSED) server_died();
          else ++connect_errors;
          continue;
        }
        s.connecting = false;
      }
      if ((evs[j].events & EPOLLOUT) && !s.shut) pump(s);
      if (s.fd >= 0 && (evs[j].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) drain(s);
    }
  }
  if (died) {
    fmt::print(stderr, "http_attack fuzz: connection refused: the server died\n");
    for (auto& [id, r] : in_flight)
      fmt::print(stderr, "http_attack fuzz: in flight when it died: request {}: {}\n", id, escape(r, 2000));
    fmt::print(stderr,
               "http_attack fuzz: the last {} requests, oldest first (repeat with --concurrency 1 "
               "and the same seed to find the one):\n",
               recent.size());
    for (auto& r : recent) fmt::print(stderr, "  {}\n", escape(r, 300));
  }
  ::close(ep);
  double secs = now() - t_begin;
  kv("seed", static_cast<long long>(seed));
  kv("requests", done);
  kv("status_1xx", by_class[1]);
  kv("status_2xx", by_class[2]);
  kv("status_3xx", by_class[3]);
  kv("status_4xx", by_class[4]);
  kv("status_5xx", by_class[5]);
  kv("interim_1xx", interim);
  kv("no_response", no_response);
  kv("resets", resets);
  kv("timeouts", timeouts);
  kv("kept_open", kept_open);
  kv("bad_responses", bad);
  kv("multi_responses", multi);
  kv("exception_text", leaks);
  kv("connect_errors", connect_errors + local_errors);
  kv("unsafe_regenerated", gen.unsafe());
  kv("server_died", static_cast<long long>(died ? 1 : 0));
  kv("seconds", secs);
  kv("requests_per_second", secs > 0 ? static_cast<double>(done) / secs : 0.0);
  return 0;
}

}  // namespace http_attack
