// main.cc: http_attack's usage and commands. http_attack is a hostile HTTP/1.1
// client, to test `pachctl serve` the way a client on the network can treat it
// (tests/cli/http_hostile_test.sh, scripts/http-fuzz.sh). Plain POSIX sockets
// and epoll; loopback targets only (HTTP_ATTACK_ALLOW_REMOTE=1 lifts that).
// Results go to stdout as key=value lines; the exit status is 0 unless the tool
// itself failed (1), was used wrongly (2), or as the command says. Every loop
// is bounded in count and time.
//
//   raw HOST PORT [--timeout S] [--half-close]
//       Sends stdin's bytes exactly, reads until the server closes or S
//       seconds (default 5) pass, and writes the bytes read to stdout; one
//       summary line on stderr. Exit 0: the server closed the connection;
//       3: still open at the timeout; 4: could not connect.
//   idle HOST PORT N --hold S [--from PREFIX]
//       N connections that send nothing, held S seconds.
//   slowloris HOST PORT N --hold S [--interval S2] [--from PREFIX]
//       N connections that send "GET /health HTTP/1.1\r\nHost: x\r\n", then
//       one byte of "X-a: b\r\n" every S2 seconds (default 1), for S seconds.
//   keepalive HOST PORT N --seconds S --path P [--timeout S2] [--from PREFIX]
//       N keep-alive clients doing GET P back to back for S seconds.
//   probe HOST PORT --path P --count N [--interval MS] [--timeout S] [--from ADDR]
//       N sequential GETs, each on a new connection.
//   fuzz HOST PORT --count N --seed S [--token T] [--concurrency C]
//        [--timeout S] [--max-seconds S] [--from PREFIX]
//       N random and mutated requests, one connection each, C in flight.
//       Writes only under /file/fuzz/ (and /dir/fuzz/) or to branches named
//       fuzz*; never a path that would leave the store.
//
// --from PREFIX: "127.0.1" binds source addresses 127.0.1.1 .. 127.0.1.250 in
// turn; a whole address ("127.0.0.2") binds that one.
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "http_attack.h"

namespace http_attack {

namespace {

constexpr std::string_view kUsage =
    "usage: http_attack raw HOST PORT [--timeout S] [--half-close] < request\n"
    "       http_attack idle HOST PORT N --hold S [--from PREFIX]\n"
    "       http_attack slowloris HOST PORT N --hold S [--interval S] [--from PREFIX]\n"
    "       http_attack keepalive HOST PORT N --seconds S --path P [--timeout S] [--from PREFIX]\n"
    "       http_attack probe HOST PORT --path P --count N [--interval MS] [--timeout S]"
    " [--from ADDR]\n"
    "       http_attack fuzz HOST PORT --count N --seed S [--token T] [--concurrency C]"
    " [--timeout S] [--max-seconds S] [--from PREFIX]\n";

}  // namespace

[[noreturn]] void usage_error(const std::string& msg) {
  fmt::print(stderr, "http_attack: {}\n{}", msg, kUsage);
  std::exit(2);
}

}  // namespace http_attack

int main(int argc, char** argv) {
  using namespace http_attack;
  ::signal(SIGPIPE, SIG_IGN);
  if (argc < 2) usage_error("no command");
  std::string cmd = argv[1];
  if (cmd == "raw") return cmd_raw(argc, argv);
  if (cmd == "idle") return cmd_hold(argc, argv, false);
  if (cmd == "slowloris") return cmd_hold(argc, argv, true);
  if (cmd == "keepalive") return cmd_keepalive(argc, argv);
  if (cmd == "probe") return cmd_probe(argc, argv);
  if (cmd == "fuzz") return cmd_fuzz(argc, argv);
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    fmt::print("{}", kUsage);
    return 0;
  }
  usage_error("unknown command " + cmd);
}
