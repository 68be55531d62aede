// worker_main.cc: pfs-worker, the first process (PID 1) of every pipeline
// container: it runs the pipeline's command once per datum, when the host
// asks, so that one container serves many datums.
//
//   pfs-worker --log FILE [--stdin FILE] -- CMD [ARGS...]
//
// The host prepares a datum's files under /pfs/<input>/ and an empty
// /pfs/out/, then writes a command line to the worker's standard input
// (fields separated by single spaces); the worker answers one line on its
// standard output. It says "ready" when it starts.
//
//   run <datum-id> <timeout-ms> <log-cap-bytes> <job-id>
//       Truncates the log FILE and runs CMD in its own session, with
//       PACH_DATUM_ID and PACH_JOB_ID added to the environment, standard
//       input from --stdin's FILE (the same for every datum) or /dev/null,
//       standard output and error into the log (its first log-cap-bytes
//       bytes; the rest is counted as dropped). A CMD that cannot be run
//       exits 127 with `pfs-worker: cannot run "CMD": <reason>` in the log.
//       When CMD exits, or after timeout-ms (0: none; CMD is then killed),
//       every other process of the container is killed (when not PID 1:
//       only CMD's process group), all are reaped, and the answer is one of
//         exit <code> <dropped-bytes> <duration-ns>
//         signal <signo> <dropped-bytes> <duration-ns>
//         timeout <dropped-bytes> <duration-ns>
//   quit, or the end of input: the worker exits 0.
//   Anything else: "error <message>", and the worker waits for the next.
//
// Static, without sanitizers (pachctl/meson.build): it must run in any image.
// NOTE: a PID 1 gets no default action for signals it has no handler for,
// so SIGTERM and SIGINT do nothing; the host stops a container with SIGKILL.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

std::string log_path, stdin_path;
std::vector<char*> cmd;
// Where CMD's program is, found in $PATH once (as execvp would search it):
// execvp tries each $PATH entry in turn for every datum, and the misses (5
// for `cp` in a Debian-like image) are overlay lookups at each of 10,000
// datums. Empty: not found yet, or CMD names a path.
std::string program;

void find_program() {
  if (!program.empty() || std::strchr(cmd[0], '/')) return;
  const char* env = std::getenv("PATH");
  std::string path = env ? env : "/bin:/usr/bin";  // (glibc's default)
  for (std::size_t at = 0;;) {
    std::size_t colon = path.find(':', at);
    std::string dir = path.substr(at, colon - at);
    std::string file = (dir.empty() ? "." : dir) + "/" + cmd[0];
    struct stat st {};
    if (stat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(file.c_str(), X_OK) == 0) {
      program = file;
      return;
    }
    if (colon == std::string::npos) return;
    at = colon + 1;
  }
}

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// The host is gone if it cannot hear us: nothing left to do.
void answer(const std::string& line) {
  std::string s = line + "\n";
  if (!write_all(1, s.data(), s.size())) _exit(1);
}

// Reaps every child that has ended, without waiting for the others.
void reap_nohang() {
  for (;;) {
    pid_t r = waitpid(-1, nullptr, WNOHANG);
    if (r > 0 || (r < 0 && errno == EINTR)) continue;
    return;
  }
}

bool parse_u64(const std::string& s, std::uint64_t& out) {
  if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos) return false;
  out = std::strtoull(s.c_str(), nullptr, 10);
  return true;
}

// CMD's environment for one datum: the worker's, with PACH_DATUM_ID and
// PACH_JOB_ID set. Built before the child exists (see exec_cmd).
struct Environment {
  std::vector<std::string> vars;
  std::vector<char*> ptrs;
  Environment(const std::string& datum, const std::string& job) {
    for (char** e = environ; *e; ++e)
      if (std::strncmp(*e, "PACH_DATUM_ID=", 14) != 0 && std::strncmp(*e, "PACH_JOB_ID=", 12) != 0) vars.emplace_back(*e);
    vars.push_back("PACH_DATUM_ID=" + datum);
    vars.push_back("PACH_JOB_ID=" + job);
    for (auto& v : vars) ptrs.push_back(v.data());
    ptrs.push_back(nullptr);
  }
};

void write_str(int fd, const char* s) {
  [[maybe_unused]] auto n = write(fd, s, std::strlen(s));
}

// In the child: never returns. The child is vfork()ed (it shares the
// worker's memory until it execs: no copy of its page tables, which was
// the most of a fork's cost at every datum), so it only makes system
// calls: nothing here allocates or writes the worker's variables (its
// signal handlers are its own: no CLONE_SIGHAND).
[[noreturn]] void exec_cmd(int out_fd, const char* in_path, char** envp) {
  setsid();
  int in = open(in_path, O_RDONLY);
  if (in < 0 || dup2(in, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0) {
    const char* why = strerror(errno);
    write_str(out_fd, "pfs-worker: cannot open \"");
    write_str(out_fd, in_path);
    write_str(out_fd, "\": ");
    write_str(out_fd, why);
    write_str(out_fd, "\n");
    _exit(127);
  }
  if (in > 2) close(in);
  // What the worker changed for itself, CMD gets back.
  signal(SIGPIPE, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  // The program found before; execvpe when it is gone since (a datum may
  // change the container's files) or is a script without #! (it then runs
  // it with /bin/sh).
  if (!program.empty()) execve(program.c_str(), cmd.data(), envp);
  execvpe(cmd[0], cmd.data(), envp);
  const char* why = strerror(errno);
  write_str(2, "pfs-worker: cannot run \"");
  write_str(2, cmd[0]);
  write_str(2, "\": ");
  write_str(2, why);
  write_str(2, "\n");
  _exit(127);
}

enum class Copied { kSome, kNone, kEof };

// Copies what the pipe holds (up to 64 KiB) into the log, the first `cap`
// bytes of the datum's output; the rest is counted as dropped. kNone: nothing
// there now (the pipe does not block). A read error counts as the end.
Copied copy_out(int rd, int log, std::uint64_t cap, std::uint64_t& kept, std::uint64_t& dropped) {
  static char buf[65536];
  ssize_t n;
  while ((n = read(rd, buf, sizeof buf)) < 0 && errno == EINTR) {}
  if (n < 0 && errno == EAGAIN) return Copied::kNone;
  if (n <= 0) return Copied::kEof;
  auto len = static_cast<std::uint64_t>(n);
  std::uint64_t take = kept < cap ? std::min(len, cap - kept) : 0;
  if (take > 0 && !write_all(log, buf, take)) take = 0;
  kept += take;
  dropped += len - take;
  return Copied::kSome;
}

void run(const std::string& datum, std::uint64_t timeout_ms, std::uint64_t cap, const std::string& job) {
  reap_nohang();  // orphans of earlier datums, as PID 1 must
  int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (log < 0) return answer("error cannot open the log \"" + log_path + "\": " + strerror(errno));
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) {
    answer(std::string("error pipe: ") + strerror(errno));
    close(log);
    return;
  }
  find_program();
  Environment env(datum, job);
  const char* in_path = stdin_path.empty() ? "/dev/null" : stdin_path.c_str();
  std::int64_t start = now_ns();
  pid_t child = vfork();
  if (child == 0) exec_cmd(p[1], in_path, env.ptrs.data());
  close(p[1]);
  int rd = p[0];
  fcntl(rd, F_SETFL, O_NONBLOCK);  // the drain at the end must never block
  if (child < 0) {
    answer(std::string("error fork: ") + strerror(errno));
    close(rd);
    close(log);
    return;
  }
  // The child is not reaped before this: its pid stays valid.
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
  int pidfd_errno = errno;
  std::uint64_t kept = 0, dropped = 0;
  bool timed_out = false;
  while (pidfd >= 0) {
    int wait_ms = -1;
    if (timeout_ms > 0) {
      // (A timeout over 30 years is none.)
      auto ms = static_cast<std::int64_t>(std::min<std::uint64_t>(timeout_ms, 1000000000000));
      std::int64_t left = start + ms * 1000000 - now_ns();
      if (left <= 0) {
        timed_out = true;
        break;
      }
      wait_ms = static_cast<int>(std::min<std::int64_t>((left + 999999) / 1000000, 1000000));
    }
    pollfd fds[2] = {{pidfd, POLLIN, 0}, {rd, POLLIN, 0}};
    int r = poll(fds, rd >= 0 ? 2 : 1, wait_ms);
    if (r < 0 && errno != EINTR) break;
    if (r > 0 && rd >= 0 && fds[1].revents != 0 && copy_out(rd, log, cap, kept, dropped) == Copied::kEof) {
      close(rd);  // the command and its descendants all closed it
      rd = -1;
    }
    if (r > 0 && fds[0].revents != 0) break;
  }
  std::int64_t end = now_ns();
  // Kill before reaping, so that the child's pid (its group's id) is not reused.
  if (getpid() == 1) kill(-1, SIGKILL);
  else kill(-child, SIGKILL);
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {}
  if (getpid() == 1) {
    // Everything else is dying: reap it all.
    while (waitpid(-1, nullptr, 0) > 0 || errno == EINTR) {}  // until ECHILD
  } else {
    // We are their subreaper (main), so the group empties as we reap; give
    // up after 5 s on a member whose living parent will not reap it.
    for (int i = 0; i < 5000; ++i) {
      reap_nohang();
      if (kill(-child, 0) < 0 && errno == ESRCH) break;
      kill(-child, SIGKILL);
      timespec ms{0, 1000000};
      nanosleep(&ms, nullptr);
    }
  }
  // Whatever was written is in the pipe now; a writer left alive (one that
  // escaped the group, when not PID 1) cannot make us wait.
  if (rd >= 0) {
    while (copy_out(rd, log, cap, kept, dropped) == Copied::kSome) {}
    close(rd);
  }
  close(log);
  if (pidfd < 0) return answer(std::string("error pidfd_open: ") + strerror(pidfd_errno));
  close(pidfd);
  std::string tail = std::to_string(dropped) + " " + std::to_string(end - start);
  if (timed_out) answer("timeout " + tail);
  else if (WIFEXITED(status)) answer("exit " + std::to_string(WEXITSTATUS(status)) + " " + tail);
  else answer("signal " + std::to_string(WTERMSIG(status)) + " " + tail);
}

void command(const std::string& line) {
  std::vector<std::string> f;
  for (size_t at = 0;;) {
    size_t sp = line.find(' ', at);
    f.push_back(line.substr(at, sp - at));
    if (sp == std::string::npos) break;
    at = sp + 1;
  }
  if (f[0] == "run") {
    std::uint64_t timeout_ms = 0, cap = 0;
    if (f.size() != 5 || f[1].empty() || f[4].empty() || !parse_u64(f[2], timeout_ms) || !parse_u64(f[3], cap))
      return answer("error usage: run <datum-id> <timeout-ms> <log-cap-bytes> <job-id>");
    return run(f[1], timeout_ms, cap, f[4]);
  }
  answer("error unknown command \"" + f[0] + "\" (commands: run, quit)");
}

[[noreturn]] void usage() {
  std::fputs("usage: pfs-worker --log FILE [--stdin FILE] -- CMD [ARGS...]\n", stderr);
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  int i = 1;
  for (; i < argc && std::strcmp(argv[i], "--") != 0; i += 2) {
    if (i + 1 >= argc) usage();
    if (std::strcmp(argv[i], "--log") == 0) log_path = argv[i + 1];
    else if (std::strcmp(argv[i], "--stdin") == 0) stdin_path = argv[i + 1];
    else usage();
  }
  if (log_path.empty() || i + 1 >= argc) usage();
  cmd.assign(argv + i + 1, argv + argc);
  cmd.push_back(nullptr);
  // A closed host pipe is an error of write(2), not a death.
  signal(SIGPIPE, SIG_IGN);
  // Off PID 1 (tests on the host), orphans of CMD come back to us, to kill
  // and reap as PID 1 would.
  if (getpid() != 1) prctl(PR_SET_CHILD_SUBREAPER, 1);
  answer("ready");
  std::string buf;
  char chunk[4096];
  for (;;) {
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      if (line == "quit") return 0;
      command(line);
    }
    ssize_t n = read(0, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buf.append(chunk, static_cast<size_t>(n));
  }
  // A last line without its newline still counts.
  if (!buf.empty() && buf != "quit") command(buf);
  return 0;
}
