// http_attack.h: what the commands of http_attack share: time, arguments,
// sockets, text, statistics, the response parser, and the commands themselves
// (main.cc says what each does).
#pragma once

#include <netinet/in.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace http_attack {

// ---- time and failure (common.cc, main.cc) ----------------------------------------

// Seconds since the program started.
double now();

// Milliseconds from now until t (seconds since the start, as now()), at
// least 0: a timeout for poll and epoll_wait.
int ms_until(double t);

// Prints msg and the usage to stderr and exits with 2 (main.cc).
[[noreturn]] void usage_error(const std::string& msg);

// Prints msg to stderr and exits with 1: the tool itself failed.
[[noreturn]] void fatal(const std::string& msg);

// ---- arguments (common.cc) ------------------------------------------------------------

struct Args {
  std::vector<std::string> pos;
  std::map<std::string, std::string> opts;
  std::set<std::string> flags;

  bool has(const std::string& name) const { return opts.count(name) != 0; }
};

// The arguments after argv[1] (the command): valued options take the next
// argument, flags none; anything else starting with "--" is a usage error.
Args parse_args(int argc, char** argv, std::initializer_list<std::string_view> valued,
                std::initializer_list<std::string_view> flags);

double to_double(const std::string& name, const std::string& s, double lo, double hi);
long long to_int(const std::string& name, const std::string& s, long long lo, long long hi);
double opt_double(const Args& a, const std::string& name, double def, double lo, double hi);
long long opt_int(const Args& a, const std::string& name, long long def, long long lo,
                  long long hi);
// A usage error unless option name was given.
void need(const Args& a, const std::string& name);

// ---- addresses and sockets (common.cc) ---------------------------------------------------

bool is_loopback(const sockaddr_in& sa);
sockaddr_in parse_addr(const std::string& host, int port);
// HOST PORT from the first two of npos positional arguments; loopback only
// unless HTTP_ATTACK_ALLOW_REMOTE=1.
sockaddr_in target(const Args& a, std::size_t npos);
std::string addr_str(const sockaddr_in& sa);

// Source addresses to bind, used in turn.
class Sources {
 public:
  Sources() = default;
  // "" (none), a prefix such as "127.0.1" (.1 to .250), or one address.
  explicit Sources(const std::string& spec);
  static Sources range(const std::string& prefix, int first, int last);
  // The next address to bind, or nullptr if there are none.
  const sockaddr_in* next();

 private:
  std::vector<sockaddr_in> addrs_;
  std::size_t next_ = 0;
};

// A non-blocking TCP socket, bound to SRC if given, connecting to DST.
// Returns the descriptor, or -1; err is 0 (connected), EINPROGRESS, or the
// errno of the failure.
int open_conn(const sockaddr_in& dst, const sockaddr_in* src, int& err);
// The pending error of fd (SO_ERROR), 0 if none.
int socket_error(int fd);
// Closes with a reset: no TIME_WAIT left behind on this side.
void close_reset(int fd);
void raise_fd_limit();

// ---- text (common.cc) -------------------------------------------------------------------

// Printable ASCII as it is, everything else (and backslash) escaped; at most
// max bytes of s.
std::string escape(std::string_view s, std::size_t max = 400);
std::string lower(std::string_view s);
bool starts_with(std::string_view s, std::string_view p);
// The status of "HTTP/1.x NNN ...", or 0.
int status_of(std::string_view b);
// A C++ exception's text that leaked into a response.
bool exception_text(std::string_view b);

// ---- statistics and output (common.cc) --------------------------------------------------

// The q-quantile (nearest rank) of v, or -1 when v is empty.
double quantile(std::vector<double> v, double q);
// "200:5,404:1", or "none".
std::string statuses_str(const std::map<int, long long>& m);
// One key=value line on stdout.
void kv(std::string_view k, long long v);
void kv(std::string_view k, double v);
void kv(std::string_view k, const std::string& v);

// ---- HTTP responses (response.cc) ----------------------------------------------------------

struct Response {
  enum State { kIncomplete, kComplete, kBad } state = kIncomplete;
  int status = 0;
  std::size_t end = 0;       // bytes of b the response takes
  bool close = false;        // Connection: close
  bool until_close = false;  // body delimited by the close
};

// Parses one response at the start of b. head: the request was HEAD; eof: no
// more bytes will come.
Response parse_response(std::string_view b, bool head, bool eof);

// ---- the fuzzer's requests (fuzz_safe.cc, fuzz_requests.cc) ------------------------------------

// Every line of req that reads as the request line of a writing method (in
// any case, after any blanks) has a target the fuzzer may write to. Lines
// end at CR or LF, so a request smuggled in a body is checked too.
bool safe_request(std::string_view req);

// Random and mutated requests, the same for the same seed; only those that
// pass safe_request.
class RequestGen {
 public:
  RequestGen(std::uint64_t seed, std::string host, std::string token);
  ~RequestGen();
  RequestGen(const RequestGen&) = delete;
  RequestGen& operator=(const RequestGen&) = delete;

  std::string next();
  // How many requests were made again because they were not safe.
  long long unsafe() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- the commands: argv[1] is the command; each returns the exit status --------------------

int cmd_raw(int argc, char** argv);                   // raw.cc
int cmd_hold(int argc, char** argv, bool slowloris);  // hold.cc: idle, slowloris
int cmd_keepalive(int argc, char** argv);             // keepalive.cc
int cmd_probe(int argc, char** argv);                 // probe.cc
int cmd_fuzz(int argc, char** argv);                  // fuzz.cc

}  // namespace http_attack
