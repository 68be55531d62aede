// container.h: one job container, run by an OCI runtime (runc) from a
// bundle pfs writes: the image's root file system read-only, its own
// pid, network (loopback only), ipc, uts, mount and cgroup namespaces,
// memory, CPU and pids limits, no capabilities beyond binding port 80.
//
// pfs reaches the web server inside by creating its sockets in the
// container's network namespace (net_fd(); container_http.h), so nothing
// is published on the host and the container cannot reach the host's
// loopback (where pachctl serve listens).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fsutil.h"
#include "images.h"

namespace pfs::detail::jobs {

// A host directory the container sees at `destination`.
struct Bind {
  std::filesystem::path source;
  std::string destination;
  bool readonly = true;
};

struct ContainerSpec {
  Image image;
  std::vector<std::string> command;  // after the image's entrypoint (see use_entrypoint)
  bool use_entrypoint = true;        // false: `command` is the whole argv (Pachyderm's cmd)
  std::vector<std::string> env;      // "KEY=value", added to (and over) the image's
  std::uint64_t memory = 0;          // bytes (0: no limit)
  std::uint64_t cpu_shares = 0;      // 0: the runtime's default
  double cpus = 0;                   // a CPU quota, in CPUs (0: none)
  std::uint64_t pids = 256;
  std::uint64_t max_log_bytes = 8 << 20;
  std::filesystem::path log_file;  // stdout and stderr go here (created)
  // Pipelines: the image's root file system writable, through an overlay
  // whose upper layer is thrown away with the container (scratch space);
  // the usual capabilities of a container instead of only a web server's;
  // host directories mounted in; and the first process's stdin and stdout
  // connected to these descriptors (stderr still goes to log_file).
  bool writable_root = false;
  bool pipeline_caps = false;
  std::vector<Bind> binds;
  int stdin_fd = -1, stdout_fd = -1;
};

class Runtime;

class Container {
 public:
  ~Container();  // kills and removes the container, joins the log thread
  const std::string& id() const { return id_; }
  pid_t pid() const { return pid_; }
  int net_fd() const { return net_.get(); }
  // True while its first process lives.
  bool running() const;
  // Why it is not running, when it is not: "exited with status 3",
  // "killed: out of memory (limit 64 MiB)"; "" while it runs.
  std::string why_stopped() const;
  // True when the kernel killed one of its processes for want of memory.
  bool out_of_memory() const;
  std::uint64_t memory_limit() const { return memory_; }
  // The last `n` bytes of its log (for error messages).
  std::string log_tail(std::size_t n) const;
  // Bytes of output dropped beyond the log limit.
  std::uint64_t log_dropped() const { return dropped_; }

 private:
  friend class Runtime;
  Container() = default;
  Runtime* rt_ = nullptr;
  std::string id_;
  std::filesystem::path bundle_, log_file_;
  pid_t pid_ = -1;
  UniqueFd net_, pidfd_;
  std::uint64_t memory_ = 0;
  std::thread log_thread_;
  std::atomic<std::uint64_t> dropped_{0};
};

class Runtime {
 public:
  // `dir`: bundles and the runtime's own state (dir/runc) live here.
  Runtime(std::filesystem::path dir, std::string runc);
  // Checks that the runtime can run (root, the program). Throws kUnsupported.
  void check() const;
  // Starts a container; throws kIo/kUnsupported with the runtime's message.
  std::unique_ptr<Container> start(const ContainerSpec& spec);
  // Removes every container of this runtime directory (left by a process
  // that was killed). Returns how many.
  std::size_t remove_leftovers();
  // What the runtime is ("runc version 1.1.5").
  std::string version() const;

 private:
  friend class Container;
  void remove(const std::string& id);
  // Unmounts a bundle's overlay root, if it has one; false when it stays mounted.
  bool unmount_root(const std::string& id);
  std::vector<std::string> base_args() const;
  std::filesystem::path dir_, state_;
  std::string runc_;
  std::atomic<std::uint64_t> seq_{0};
};

}  // namespace pfs::detail::jobs
