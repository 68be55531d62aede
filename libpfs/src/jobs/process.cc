// process.cc: run_process: posix_spawnp with pipes, poll, a deadline.
#include "process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "fail.h"
#include "fsutil.h"

extern char** environ;

namespace pfs::detail::jobs {

namespace {

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) fail_errno(errno, "make a pipe");
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    if (r >= 0) ::close(r);
    if (w >= 0) ::close(w);
  }
};

}  // namespace

ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& opts,
                          const char* install) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  Pipe out, err;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  if (opts.in_fd >= 0)
    posix_spawn_file_actions_adddup2(&fa, opts.in_fd, 0);
  else
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  int target_out = opts.out_fd >= 0 ? opts.out_fd : out.w;
  int target_err = opts.err_fd >= 0 ? opts.err_fd : opts.out_fd >= 0 ? opts.out_fd : err.w;
  posix_spawn_file_actions_adddup2(&fa, target_out, 1);
  posix_spawn_file_actions_adddup2(&fa, target_err, 2);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  // A child starts with default signal handling and nothing blocked.
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc == ENOENT)
    failf(ErrorCode::kUnsupported, "{} is not installed{}", argv[0],
          install ? fmt::format(" (apt-get install {})", install) : std::string());
  if (rc != 0) fail_errno(rc, "start " + argv[0]);
  ::close(out.w);
  out.w = -1;
  ::close(err.w);
  err.w = -1;

  ProcessResult res;
  auto deadline = std::chrono::steady_clock::now() + opts.timeout;
  bool open_out = true, open_err = true;
  char buf[65536];
  while (open_out || open_err) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      res.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    pollfd p[2] = {{out.r, POLLIN, 0}, {err.r, POLLIN, 0}};
    if (!open_out) p[0].fd = -1;
    if (!open_err) p[1].fd = -1;
    int n = ::poll(p, 2, static_cast<int>(std::min<long>(left.count(), 1000)));
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; i++) {
      if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = ::read(p[i].fd, buf, sizeof buf);
      if (got <= 0) {
        (i == 0 ? open_out : open_err) = false;
        continue;
      }
      std::string& to = i == 0 ? res.out : res.err;
      if (to.size() < opts.max_output)
        to.append(buf, std::min<std::size_t>(static_cast<std::size_t>(got), opts.max_output - to.size()));
    }
  }
  // Its output is closed (or goes elsewhere): wait for it to end, still
  // within the deadline.
  int st = 0;
  for (;;) {
    pid_t w = ::waitpid(pid, &st, res.timed_out ? 0 : WNOHANG);
    if (w == pid) break;
    if (w < 0 && errno != EINTR) break;
    if (w == 0) {
      if (std::chrono::steady_clock::now() >= deadline) {
        res.timed_out = true;
        ::kill(pid, SIGKILL);
      } else {
        ::usleep(2000);
      }
    }
  }
  res.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return res;
}

std::string describe_failure(const std::vector<std::string>& argv, const ProcessResult& r) {
  std::string what = argv.empty() ? "?" : argv[0];
  if (argv.size() > 1) what += " " + argv[1];
  if (r.timed_out) return what + ": took too long and was stopped";
  std::string msg = r.err.empty() ? r.out : r.err;
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  if (auto nl = msg.rfind('\n'); nl != std::string::npos) msg = msg.substr(nl + 1);
  if (msg.size() > 400) msg = msg.substr(0, 400) + "...";
  return fmt::format("{} (exit status {}){}{}", what, r.status, msg.empty() ? "" : ": ", msg);
}

}  // namespace pfs::detail::jobs
