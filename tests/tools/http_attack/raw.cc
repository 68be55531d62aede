// raw.cc: http_attack raw, one connection that sends stdin's bytes exactly.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "http_attack.h"

namespace http_attack {

int cmd_raw(int argc, char** argv) {
  auto a = parse_args(argc, argv, {"--timeout"}, {"--half-close"});
  auto dst = target(a, 2);
  double timeout = opt_double(a, "--timeout", 5, 0.01, 3600);
  bool half_close = a.flags.count("--half-close") != 0;
  std::string input;
  char buf[65536];
  for (;;) {
    std::size_t n = std::fread(buf, 1, sizeof buf, stdin);
    input.append(buf, n);
    if (n < sizeof buf) break;
  }
  double t0 = now(), deadline = t0 + timeout;
  int err = 0;
  int fd = open_conn(dst, nullptr, err);
  if (fd < 0) {
    fmt::print(stderr, "http_attack raw: connect: {}\n", std::strerror(err));
    return 4;
  }
  bool connected = err == 0, shut = false, closed = false, reset = false, write_failed = false;
  std::size_t sent = 0, received = 0;
  double first_byte = -1, closed_at = -1;
  while (!closed && now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (!connected || (sent < input.size() && !write_failed)) p.events |= POLLOUT;
    int r = ::poll(&p, 1, ms_until(deadline));
    if (r < 0 && errno != EINTR) fatal(fmt::format("poll: {}", std::strerror(errno)));
    if (r <= 0) continue;
    if (!connected) {
      if (int e = socket_error(fd); e != 0) {
        fmt::print(stderr, "http_attack raw: connect: {}\n", std::strerror(e));
        ::close(fd);
        return 4;
      }
      connected = true;
    }
    if ((p.revents & POLLOUT) && sent < input.size() && !write_failed) {
      ssize_t n = ::send(fd, input.data() + sent, input.size() - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<std::size_t>(n);
      else if (n < 0 && errno != EAGAIN && errno != EINTR) write_failed = true;
    }
    if (half_close && !shut && sent == input.size()) {
      ::shutdown(fd, SHUT_WR);
      shut = true;
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n > 0) {
          if (first_byte < 0) first_byte = now();
          std::fwrite(buf, 1, static_cast<std::size_t>(n), stdout);
          received += static_cast<std::size_t>(n);
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        if (n < 0) reset = true;
        closed = true;
        closed_at = now();
        break;
      }
    }
  }
  std::fflush(stdout);
  if (half_close && !shut && connected) ::shutdown(fd, SHUT_WR);
  close_reset(fd);
  auto ms = [t0](double t) { return t < 0 ? -1.0 : (t - t0) * 1000.0; };
  fmt::print(stderr,
             "http_attack raw: sent={}/{} received={} closed={} reset={} write_failed={} "
             "first_byte_ms={:.0f} elapsed_ms={:.0f}\n",
             sent, input.size(), received, closed ? 1 : 0, reset ? 1 : 0, write_failed ? 1 : 0,
             ms(first_byte), ms(closed ? closed_at : now()));
  return closed ? 0 : 3;
}

}  // namespace http_attack
