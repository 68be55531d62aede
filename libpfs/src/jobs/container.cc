// container.cc: Runtime and Container: an OCI bundle (config.json over the
// image's root file system), `runc run --detach`, the container's output
// drained into a capped log, and `runc delete --force` at the end.
#include "container.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "fail.h"
#include "process.h"

namespace pfs::detail::jobs {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

json mount(const char* dest, const char* type, const char* source, std::vector<std::string> opts) {
  return json{{"destination", dest}, {"type", type}, {"source", source}, {"options", opts}};
}

// The bundle's config.json (OCI runtime spec 1.0).
json oci_config(const ContainerSpec& s, const std::string& id, const fs::path& root) {
  std::vector<std::string> args;
  if (s.use_entrypoint) args = s.image.entrypoint;
  args.insert(args.end(), s.command.begin(), s.command.end());
  std::vector<std::string> env = s.image.env;
  for (const auto& e : s.env) {  // the spec's variables replace the image's
    std::string key = e.substr(0, e.find('=') + 1);
    std::erase_if(env, [&](const std::string& x) { return x.rfind(key, 0) == 0; });
    env.push_back(e);
  }
  bool has_path = false;
  for (const auto& e : env) has_path |= e.rfind("PATH=", 0) == 0;
  if (!has_path) env.push_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  // A job's web server gets only what serving on port 80 needs; a
  // pipeline's command the capabilities a container usually has (as root
  // in its own namespaces: chown, set ids, ...), so ordinary images work.
  std::vector<std::string> caps = {"CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_AUDIT_WRITE"};
  if (s.pipeline_caps)
    caps = {"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_SETGID", "CAP_SETUID",
            "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_KILL", "CAP_AUDIT_WRITE", "CAP_SYS_CHROOT"};
  json resources = {{"devices", json::array({{{"allow", false}, {"access", "rwm"}}})},
                    {"pids", {{"limit", s.pids}}}};
  if (s.memory) resources["memory"] = {{"limit", s.memory}};
  if (s.cpu_shares) resources["cpu"] = {{"shares", s.cpu_shares}};
  if (s.cpus > 0) {
    resources["cpu"]["period"] = 100000;
    resources["cpu"]["quota"] = static_cast<std::int64_t>(s.cpus * 100000);
  }
  json mounts = json::array(
      {mount("/proc", "proc", "proc", {}),
       mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
       mount("/dev/pts", "devpts", "devpts", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}),
       mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
       mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
       mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
       // Scratch space, counted against the memory limit.
       mount("/tmp", "tmpfs", "tmpfs", {"nosuid", "nodev", "mode=1777", "size=262144k"}),
       mount("/run", "tmpfs", "tmpfs", {"nosuid", "nodev", "mode=755", "size=16384k"})});
  for (const auto& b : s.binds) {
    std::vector<std::string> o = {"rbind", "nosuid", "nodev"};
    o.push_back(b.readonly ? "ro" : "rw");
    mounts.push_back(mount(b.destination.c_str(), "bind", b.source.c_str(), o));
  }
  return json{
      {"ociVersion", "1.0.2"},
      {"process",
       {{"terminal", false},
        {"user", {{"uid", 0}, {"gid", 0}}},
        {"args", args},
        {"env", env},
        {"cwd", s.image.workdir.empty() ? "/" : s.image.workdir},
        {"capabilities",
         {{"bounding", caps}, {"effective", caps}, {"permitted", caps}, {"ambient", json::array()}}},
        {"rlimits", json::array({{{"type", "RLIMIT_NOFILE"}, {"hard", 1024}, {"soft", 1024}}})},
        {"noNewPrivileges", true}}},
      {"root", {{"path", root.string()}, {"readonly", !s.writable_root}}},
      {"hostname", "pfs-job"},
      {"mounts", mounts},
      {"linux",
       {{"cgroupsPath", "/pfs-jobs/" + id},
        {"resources", resources},
        // A network namespace of its own: runc brings up its loopback and
        // nothing else, so the container reaches no network at all.
        {"namespaces", json::array({{{"type", "pid"}},
                                    {{"type", "network"}},
                                    {{"type", "ipc"}},
                                    {{"type", "uts"}},
                                    {{"type", "mount"}},
                                    {{"type", "cgroup"}}})},
        {"maskedPaths",
         {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
          "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"}},
        {"readonlyPaths", {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}}}}};
}

// The memory cgroup's record of an OOM kill (v1 or v2).
bool oom_killed(const std::string& id) {
  for (const char* f : {"/sys/fs/cgroup/memory/pfs-jobs/{}/memory.oom_control",
                        "/sys/fs/cgroup/pfs-jobs/{}/memory.events"}) {
    std::ifstream in(fmt::format(fmt::runtime(f), id));
    std::string key;
    std::uint64_t n = 0;
    while (in >> key >> n)
      if (key == "oom_kill" && n > 0) return true;
  }
  return false;
}

}  // namespace

Runtime::Runtime(fs::path dir, std::string runc) : dir_(std::move(dir)), state_(dir_ / "runc"), runc_(std::move(runc)) {}

std::vector<std::string> Runtime::base_args() const { return {runc_, "--root", state_.string()}; }

void Runtime::check() const {
  if (::geteuid() != 0)
    fail(ErrorCode::kUnsupported,
         "running jobs needs root (containers are made with runc, which needs it here); run pachctl as "
         "root, or send the commit to a server that runs jobs (pachctl --address)");
  auto r = run_process({runc_, "--version"}, {}, "runc");
  if (r.status != 0) failf(ErrorCode::kUnsupported, "the OCI runtime does not work: {}", describe_failure({runc_, "--version"}, r));
}

std::string Runtime::version() const {
  auto r = run_process({runc_, "--version"}, {}, "runc");
  auto nl = r.out.find('\n');
  return r.out.substr(0, nl);
}

std::unique_ptr<Container> Runtime::start(const ContainerSpec& spec) {
  auto c = std::unique_ptr<Container>(new Container());
  c->rt_ = this;
  c->id_ = fmt::format("pfs-{}-{}", ::getpid(), seq_++);
  c->bundle_ = dir_ / "bundles" / c->id_;
  c->log_file_ = spec.log_file;
  c->memory_ = spec.memory;
  fs::create_directories(c->bundle_);
  fs::create_directories(state_);
  fs::path root = spec.image.rootfs;
  if (spec.writable_root) {
    // The image stays shared and untouched: writes land in an upper layer
    // in the bundle, removed with it.
    root = c->bundle_ / "rootfs";
    for (const char* d : {"rootfs", "upper", "work"}) fs::create_directories(c->bundle_ / d);
    std::string opts = fmt::format("lowerdir={},upperdir={},workdir={}", spec.image.rootfs.string(),
                                   (c->bundle_ / "upper").string(), (c->bundle_ / "work").string());
    if (::mount("overlay", root.c_str(), "overlay", 0, opts.c_str()) != 0) {
      int e = errno;
      std::error_code ec;
      fs::remove_all(c->bundle_, ec);
      fail_errno(e, "mount an overlay root file system for a container at " + root.string());
    }
  }
  {
    std::ofstream cfg(c->bundle_ / "config.json");
    cfg << oci_config(spec, c->id_, root).dump(2);
    if (!cfg) failf(ErrorCode::kIo, "cannot write {}", (c->bundle_ / "config.json").string());
  }
  // The container's stdout and stderr: a pipe drained into the log file.
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) fail_errno(errno, "make a pipe for a container's output");
  UniqueFd rd(fds[0]), wr(fds[1]);
  UniqueFd log(::open(spec.log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!log) fail_errno(errno, "create " + spec.log_file.string());
  std::uint64_t max = spec.max_log_bytes;
  c->log_thread_ = std::thread([rd = std::move(rd), log = std::move(log), max, c = c.get()] {
    char buf[65536];
    std::uint64_t kept = 0;
    for (;;) {
      ssize_t n = ::read(rd.get(), buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      std::uint64_t take = std::min<std::uint64_t>(static_cast<std::uint64_t>(n), max - kept);
      if (take > 0 && ::write(log.get(), buf, take) > 0) kept += take;
      c->dropped_ += static_cast<std::uint64_t>(n) - take;
    }
    if (c->dropped_ > 0) {
      std::string note = fmt::format("\n[pfs: {} more bytes of output were dropped (log limit {} bytes)]\n",
                                     c->dropped_.load(), max);
      [[maybe_unused]] auto w = ::write(log.get(), note.data(), note.size());
    }
  });
  std::vector<std::string> argv = base_args();
  for (const char* a : {"run", "--detach", "--bundle"}) argv.push_back(a);
  argv.push_back(c->bundle_.string());
  argv.push_back("--pid-file");
  argv.push_back((c->bundle_ / "pid").string());
  argv.push_back(c->id_);
  ProcessOptions po;
  po.out_fd = spec.stdout_fd >= 0 ? spec.stdout_fd : wr.get();
  po.err_fd = wr.get();
  po.in_fd = spec.stdin_fd;
  po.timeout = std::chrono::seconds(60);
  ProcessResult r = run_process(argv, po, "runc");
  wr.reset();  // the container holds the only writing end now
  if (r.status != 0) {
    // runc wrote its complaint where the container's output goes.
    remove(c->id_);
    if (c->log_thread_.joinable()) c->log_thread_.join();
    std::string tail = c->log_tail(600);
    c->rt_ = nullptr;
    failf(ErrorCode::kIo, "the container for image {} did not start ({}): {}", spec.image.ref,
          r.timed_out ? "runc took too long" : fmt::format("runc exit status {}", r.status), tail);
  }
  std::ifstream pidf(c->bundle_ / "pid");
  pidf >> c->pid_;
  if (c->pid_ <= 0) fail(ErrorCode::kIo, "runc started a container but wrote no pid");
  c->pidfd_ = UniqueFd(static_cast<int>(::syscall(SYS_pidfd_open, c->pid_, 0)));
  c->net_ = UniqueFd(::open(fmt::format("/proc/{}/ns/net", c->pid_).c_str(), O_RDONLY | O_CLOEXEC));
  // Gone already (its command exited at once): no namespace to enter; the
  // caller finds it not running and says why, with its output.
  if (!c->net_ && errno != ENOENT && errno != ESRCH)
    fail_errno(errno, "open the network namespace of container " + c->id_);
  return c;
}

void Runtime::remove(const std::string& id) {
  // Best effort, and never a throw: it runs in destructors. What it could
  // not remove, the next engine's remove_leftovers() does.
  try {
    std::vector<std::string> argv = base_args();
    argv.insert(argv.end(), {"delete", "--force", id});
    run_process(argv, {}, "runc");
  } catch (...) {
  }
  if (!unmount_root(id)) return;
  std::error_code ec;
  fs::remove_all(dir_ / "bundles" / id, ec);
}

bool Runtime::unmount_root(const std::string& id) {
  fs::path root = dir_ / "bundles" / id / "rootfs";
  // Lazily, so a busy mount cannot keep it: nothing below is reachable
  // through it afterwards, and remove_all then only meets an empty folder.
  // Still mounted (false): the bundle must stay, remove_all would walk the image.
  return ::umount2(root.c_str(), MNT_DETACH) == 0 || errno == EINVAL || errno == ENOENT;
}

std::size_t Runtime::remove_leftovers() {
  std::size_t n = 0;
  if (fs::exists(state_)) {
    std::vector<std::string> argv = base_args();
    argv.insert(argv.end(), {"list", "--quiet"});
    auto r = run_process(argv, {}, "runc");
    std::istringstream in(r.out);
    for (std::string id; std::getline(in, id);)
      if (!id.empty()) {
        remove(id);
        n++;
      }
  }
  std::error_code ec;
  // Overlay roots of containers that were never made (a kill between the
  // mount and runc) are unmounted before anything is removed.
  if (fs::exists(dir_ / "bundles"))
    for (const auto& e : fs::directory_iterator(dir_ / "bundles", ec))
      if (unmount_root(e.path().filename().string())) fs::remove_all(e.path(), ec);
  return n;
}

bool Container::running() const {
  if (!pidfd_) return ::kill(pid_, 0) == 0;
  pollfd p{pidfd_.get(), POLLIN, 0};
  return ::poll(&p, 1, 0) == 0;
}

bool Container::out_of_memory() const { return oom_killed(id_); }

std::string Container::why_stopped() const {
  if (running()) return {};
  if (oom_killed(id_))
    return fmt::format("killed: out of memory (its limit is {} MiB; raise the job's \"memory\")", memory_ >> 20);
  return "its web server exited";
}

std::string Container::log_tail(std::size_t n) const {
  std::ifstream in(log_file_, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (s.size() > n) s = "..." + s.substr(s.size() - n);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

Container::~Container() {
  if (rt_) rt_->remove(id_);
  if (log_thread_.joinable()) log_thread_.join();
}

}  // namespace pfs::detail::jobs
