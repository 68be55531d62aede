// pipeline_worker.cc: DatumWorker: a pipeline container with pfs-worker as
// its first process, and the line protocol that runs one datum in it.
#include "pipeline_worker.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "fail.h"

#ifndef PFS_LIBEXECDIR
#define PFS_LIBEXECDIR "/usr/local/libexec"
#endif

namespace pfs::detail::jobs {

namespace fs = std::filesystem;

fs::path find_worker_binary(const fs::path& configured) {
  if (!configured.empty()) {
    if (!fs::exists(configured))
      failf(ErrorCode::kUnsupported, "pfs-worker is not at {} (the configured path)", configured.string());
    return configured;
  }
  if (const char* env = std::getenv("PFS_WORKER"); env && *env) {
    if (!fs::exists(env)) failf(ErrorCode::kUnsupported, "pfs-worker is not at {} ($PFS_WORKER)", env);
    return env;
  }
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec && fs::exists(self.parent_path() / "pfs-worker")) return self.parent_path() / "pfs-worker";
  fs::path installed = fs::path(PFS_LIBEXECDIR) / "pfs" / "pfs-worker";
  if (fs::exists(installed)) return installed;
  failf(ErrorCode::kUnsupported,
        "pipelines need pfs-worker (the program that runs a pipeline's command inside its containers), "
        "and it is neither next to this program nor at {}: install pfs (ninja -C build install) or set "
        "PFS_WORKER to its path",
        installed.string());
}

namespace {

// Empties a folder (without following links the container left).
void empty_dir(int fd) {
  for (const auto& name : list_dir_names(fd)) remove_tree(fd, name);
}

// Regular files below `dirfd`, with their sizes (see take_outputs).
void walk_files(int dirfd, const std::string& rel, std::vector<std::pair<std::string, std::uint64_t>>& out) {
  for (const auto& name : list_dir_names(dirfd)) {
    auto st = stat_at(dirfd, name);
    if (!st) continue;
    std::string path = rel.empty() ? name : rel + "/" + name;
    if (S_ISREG(st->st_mode)) {
      out.emplace_back(path, static_cast<std::uint64_t>(st->st_size));
    } else if (S_ISDIR(st->st_mode)) {
      UniqueFd sub = open_dir(dirfd, name);
      walk_files(sub.get(), path, out);
    }
  }
}

}  // namespace

DatumWorker::DatumWorker(Runtime& rt, WorkerSetup setup) : rt_(rt), setup_(std::move(setup)) {
  std::error_code ec;
  fs::remove_all(setup_.dir, ec);
  fs::create_directories(setup_.dir / "ctl");
  fs::create_directories(setup_.dir / "out");
  fs::create_directories(setup_.dir / "in");
  fs::copy_file(setup_.worker_binary, setup_.dir / "ctl" / "pfs-worker");
  fs::permissions(setup_.dir / "ctl" / "pfs-worker", fs::perms(0755));
  std::vector<std::string> argv = {"/.pfs/pfs-worker", "--log", "/.pfs/log"};
  if (!setup_.stdin_lines.empty()) {
    std::ofstream in(setup_.dir / "ctl" / "stdin", std::ios::binary);
    for (const auto& l : setup_.stdin_lines) in << l << '\n';
    if (!in) failf(ErrorCode::kIo, "cannot write {}", (setup_.dir / "ctl" / "stdin").string());
    argv.insert(argv.end(), {"--stdin", "/.pfs/stdin"});
  }
  argv.push_back("--");
  argv.insert(argv.end(), setup_.cmd.begin(), setup_.cmd.end());

  ContainerSpec cs;
  cs.image = setup_.image;
  cs.command = argv;
  cs.use_entrypoint = false;  // Pachyderm: cmd replaces the image's entrypoint
  cs.env = setup_.env;
  cs.memory = setup_.memory;
  cs.cpus = setup_.cpus;
  cs.pids = setup_.pids;
  cs.max_log_bytes = 1 << 20;  // pfs-worker's own complaints only; datums log to ctl/log
  cs.log_file = setup_.dir / "container.log";
  cs.writable_root = true;
  cs.pipeline_caps = true;
  cs.binds.push_back({setup_.dir / "ctl", "/.pfs", false});
  cs.binds.push_back({setup_.dir / "out", "/pfs/out", false});
  for (const auto& name : setup_.inputs) {
    fs::create_directories(in_dir(name));
    cs.binds.push_back({in_dir(name), "/pfs/" + name, true});
    in_fds_[name] = open_dir(AT_FDCWD, in_dir(name).string());
  }
  out_fd_ = open_dir(AT_FDCWD, out_dir().string());
  log_fd_ = UniqueFd(::open(log_file().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!log_fd_) fail_errno(errno, "create " + log_file().string());
  // One socket pair is pfs-worker's stdin and stdout: a socket, so that a
  // write to a container that died fails (MSG_NOSIGNAL) instead of raising
  // SIGPIPE in the whole process.
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
    fail_errno(errno, "make a socket pair for a pipeline container");
  ctl_ = UniqueFd(sv[0]);
  UniqueFd theirs(sv[1]);
  cs.stdin_fd = theirs.get();
  cs.stdout_fd = theirs.get();
  container_ = rt_.start(cs);
  theirs.reset();  // the container holds the only copy now
  std::string line = read_line(std::chrono::steady_clock::now() + setup_.start_timeout);
  if (line != "ready") {
    std::string why = container_->running() ? "it did not say it was ready" : container_->why_stopped();
    std::string tail = container_->log_tail(600);
    failf(ErrorCode::kIo, "the container for image {} did not start: {}{}{}", setup_.image.ref,
          line.empty() ? why : "pfs-worker said: " + line, tail.empty() ? "" : ": ", tail);
  }
}

DatumWorker::~DatumWorker() {
  if (ctl_) {
    static const char quit[] = "quit\n";
    [[maybe_unused]] auto n = ::send(ctl_.get(), quit, sizeof quit - 1, MSG_NOSIGNAL);
  }
  ctl_.reset();
  container_.reset();  // kills and removes it
  std::error_code ec;
  fs::remove_all(setup_.dir, ec);
}

UniqueFd DatumWorker::place(const std::string& input, const std::string& path) {
  int in = in_fds_.at(input).get();
  if (auto slash = path.rfind('/'); slash != std::string::npos) {
    // Parents first; each one made here is removed by clear().
    for (std::size_t at = path.find('/'); at != std::string::npos && at <= slash; at = path.find('/', at + 1)) {
      std::string dir = path.substr(0, at);
      if (::mkdirat(in, dir.c_str(), 0755) == 0) placed_dirs_.emplace_back(input, dir);
      else if (errno != EEXIST) fail_errno(errno, "create " + (in_dir(input) / dir).string());
    }
  }
  UniqueFd fd(::openat(in, path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd) fail_errno(errno, "create " + (in_dir(input) / path).string());
  placed_files_.emplace_back(input, path);
  return fd;
}

void DatumWorker::clear() {
  // Only what place() made: unlinking it is a system call per file, where
  // listing the folders to find it cost eight.
  for (const auto& [input, path] : placed_files_)
    if (::unlinkat(in_fds_.at(input).get(), path.c_str(), 0) != 0 && errno != ENOENT)
      fail_errno(errno, "remove " + (in_dir(input) / path).string());
  for (auto it = placed_dirs_.rbegin(); it != placed_dirs_.rend(); ++it)
    if (::unlinkat(in_fds_.at(it->first).get(), it->second.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT)
      fail_errno(errno, "remove " + (in_dir(it->first) / it->second).string());
  placed_files_.clear();
  placed_dirs_.clear();
  if (!out_taken_) empty_dir(out_fd_.get());
  out_taken_ = true;
}

std::vector<std::pair<std::string, std::uint64_t>> DatumWorker::take_outputs(int dirfd, const std::string& dest) {
  std::vector<std::pair<std::string, std::uint64_t>> files;
  for (const auto& name : list_dir_names(out_fd_.get())) {
    if (auto st = stat_at(out_fd_.get(), name); st && S_ISREG(st->st_mode)) {
      files.emplace_back(name, static_cast<std::uint64_t>(st->st_size));
    } else if (st && S_ISDIR(st->st_mode)) {
      UniqueFd sub = open_dir(out_fd_.get(), name);
      walk_files(sub.get(), name, files);
    }
    std::string to = dest + "/" + name;
    if (::renameat(out_fd_.get(), name.c_str(), dirfd, to.c_str()) != 0)
      fail_errno(errno, fmt::format("move {} to {}/{}", (out_dir() / name).string(), fd_path(dirfd), to));
  }
  out_taken_ = true;
  std::sort(files.begin(), files.end());
  return files;
}

std::string DatumWorker::log() {
  struct stat st {};
  if (::fstat(log_fd_.get(), &st) != 0 || st.st_size <= 0) return {};
  std::string out(static_cast<std::size_t>(st.st_size), '\0');
  ssize_t n = ::pread(log_fd_.get(), out.data(), out.size(), 0);
  out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
  return out;
}

void DatumWorker::kill() {
  if (container_ && container_->pid() > 0) ::kill(container_->pid(), SIGKILL);
}

std::string DatumWorker::read_line(std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    if (auto nl = buffered_.find('\n'); nl != std::string::npos) {
      std::string line = buffered_.substr(0, nl);
      buffered_.erase(0, nl + 1);
      return line;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return {};
    pollfd p{ctl_.get(), POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(std::min<long>(left.count(), 1000)));
    if (n < 0 && errno != EINTR) return {};
    if (n <= 0) continue;
    char buf[4096];
    ssize_t got = ::read(ctl_.get(), buf, sizeof buf);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return {};  // it died
    buffered_.append(buf, static_cast<std::size_t>(got));
  }
}

DatumOutcome DatumWorker::run(const std::string& datum_id, const std::string& job_id,
                              std::chrono::milliseconds timeout) {
  DatumOutcome o;
  // Which datum the log is of, for readers that follow it (get-logs -f):
  // the log is emptied first, so it never shows the last datum's lines.
  // (pfs-worker opens the log by its path for each datum: when the last
  // datum's command removed it, the one held here is no longer it.)
  struct stat st {};
  if (::fstat(log_fd_.get(), &st) == 0 && st.st_nlink == 0)
    if (UniqueFd fd{::open(log_file().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)}) log_fd_ = std::move(fd);
  (void)!::ftruncate(log_fd_.get(), 0);
  out_taken_ = false;
  // (One descriptor for the worker's life: an open per datum is a cost at
  // 10,000 datums. The line's length changes only with the run.)
  if (!mark_) mark_ = UniqueFd(::open((setup_.dir / "ctl" / "datum").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  if (mark_) {
    std::string line = job_id + ' ' + datum_id + '\n';
    if (line.size() != mark_size_ && ::ftruncate(mark_.get(), 0) == 0) mark_size_ = line.size();
    (void)!::pwrite(mark_.get(), line.data(), line.size(), 0);
  }
  std::string cmd = fmt::format("run {} {} {} {}\n", datum_id, timeout.count(), setup_.max_log_bytes, job_id);
  auto start = std::chrono::steady_clock::now();
  if (::send(ctl_.get(), cmd.data(), cmd.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(cmd.size())) {
    o.container_lost = true;
    o.error = "its container stopped: " + container_->why_stopped();
    return o;
  }
  // pfs-worker enforces the timeout itself; this deadline only catches a
  // container that hangs as a whole.
  auto deadline = timeout.count() > 0 ? start + timeout + std::chrono::seconds(30)
                                      : std::chrono::steady_clock::time_point::max();
  std::string line = read_line(deadline);
  o.duration_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
  std::istringstream in(line);
  std::string kind;
  in >> kind;
  if (kind == "exit" || kind == "signal" || kind == "timeout") {
    long long value = 0, dropped = 0, ns = 0;
    if (kind != "timeout") in >> value;
    in >> dropped >> ns;
    o.log_dropped = static_cast<std::uint64_t>(dropped);
    if (ns > 0) o.duration_ns = ns;
    if (kind == "exit" && value == 0) {
      o.ok = true;
    } else if (kind == "exit") {
      o.error = fmt::format("{} exited with status {}", setup_.cmd[0], value);
    } else if (kind == "signal") {
      o.error = fmt::format("{} was killed by signal {} ({})", setup_.cmd[0], value, ::strsignal(static_cast<int>(value)));
      if (container_->out_of_memory())
        o.error += fmt::format(": out of memory (the limit is {} MiB; raise resource_limits.memory)",
                               setup_.memory >> 20);
    } else {
      o.error = fmt::format("timed out after {} ms (datum_timeout); it was killed", timeout.count());
    }
    return o;
  }
  o.container_lost = true;
  if (line.empty() && container_->running()) {
    o.error = "its container stopped answering; it was killed";
    kill();
  } else if (!line.empty()) {
    o.error = "pfs-worker said: " + line;
  } else {
    o.error = "its container stopped: " + container_->why_stopped();
    if (container_->out_of_memory())
      o.error = fmt::format("its container ran out of memory (the limit is {} MiB; raise resource_limits.memory)",
                            setup_.memory >> 20);
  }
  return o;
}

}  // namespace pfs::detail::jobs
