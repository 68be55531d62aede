// pipeline_worker.h: one container of a pipeline run, serving its datums
// one after another: pfs-worker (worker_main.cc) is its first process and
// runs the pipeline's cmd once per datum when asked (a container per datum
// would cost ~40 ms each; an exec in a running one costs what it costs on
// the host).
//
// Inside the container:
//   /pfs/<input>/...   the datum's files, read-only (a bind of in/<input>)
//   /pfs/out/          where the command writes (a bind of out/, emptied
//                      by the engine after each datum)
//   /.pfs/             pfs-worker, the spec's stdin lines and the datum's
//                      log (a bind of ctl/)
//   everything else    the image, writable through an overlay that is
//                      thrown away with the container (scratch space)
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "container.h"
#include "fsutil.h"

namespace pfs::detail::jobs {

struct WorkerSetup {
  Image image;
  std::vector<std::string> cmd;
  std::vector<std::string> env;          // "KEY=value"
  std::vector<std::string> stdin_lines;  // fed to every run of cmd
  std::set<std::string> inputs;          // the names under /pfs/
  std::uint64_t memory = 0;
  double cpus = 0;
  std::uint64_t pids = 256;
  std::uint64_t max_log_bytes = 8 << 20;  // per datum
  std::filesystem::path dir;              // its own folder (created, emptied)
  std::filesystem::path worker_binary;    // pfs-worker
  std::chrono::milliseconds start_timeout{30000};
};

struct DatumOutcome {
  bool ok = false;
  std::string error;  // when !ok: "cmd exited with status 3", "timed out after 10 s", ...
  std::int64_t duration_ns = 0;
  std::uint64_t log_dropped = 0;
  bool container_lost = false;  // the container died: start a new one for the next datum
};

class DatumWorker {
 public:
  // Starts the container and waits until pfs-worker is ready. Throws kIo
  // (with the container's output) when it does not start.
  DatumWorker(Runtime& rt, WorkerSetup setup);
  ~DatumWorker();  // asks pfs-worker to quit, removes the container

  std::filesystem::path in_dir(const std::string& input) const { return setup_.dir / "in" / input; }
  std::filesystem::path out_dir() const { return setup_.dir / "out"; }
  std::filesystem::path log_file() const { return setup_.dir / "ctl" / "log"; }
  // Creates the file `path` (relative, checked by the caller) of the next
  // datum under in/<input>/, with its parent folders, open for writing.
  // What is placed here is what clear() removes.
  UniqueFd place(const std::string& input, const std::string& path);
  // Empties in/* and out/ for the next datum: the files place() made (a
  // container cannot change in/: it is bound read-only) and whatever the
  // last datum left in out/ (nothing when take_outputs() took it).
  void clear();
  // Moves everything the datum wrote to /pfs/out into the folder `dest`
  // below `dirfd` (on the same file system) and returns the regular files
  // among it, relative paths with sizes, sorted. Symbolic links and other
  // entries move too but are not listed, and none is followed: what a
  // container left cannot point the engine elsewhere.
  std::vector<std::pair<std::string, std::uint64_t>> take_outputs(int dirfd, const std::string& dest);
  // What the last datum wrote to its log (stdout and stderr).
  std::string log();
  // Runs cmd once over what in/ holds now. `timeout` 0: none.
  DatumOutcome run(const std::string& datum_id, const std::string& job_id, std::chrono::milliseconds timeout);
  // Kills the container (from another thread: a stop); run() then returns
  // with container_lost.
  void kill();
  pid_t pid() const { return container_ ? container_->pid() : -1; }

 private:
  std::string read_line(std::chrono::steady_clock::time_point deadline);
  Runtime& rt_;
  WorkerSetup setup_;
  std::unique_ptr<Container> container_;
  UniqueFd ctl_;  // pfs-worker's stdin and stdout
  // Descriptors held for the worker's life (a path walk per datum and
  // folder costs at 10,000 datums): in/<input>, out/, ctl/log.
  std::map<std::string, UniqueFd> in_fds_;
  UniqueFd out_fd_, log_fd_;
  // What place() made since the last clear(): files, then the folders it
  // created (parents before children), each as (input, path).
  std::vector<std::pair<std::string, std::string>> placed_files_, placed_dirs_;
  bool out_taken_ = true;  // out/ is empty (nothing ran since take_outputs)
  UniqueFd mark_;  // ctl/datum: "<run> <datum>" of the datum running (get-logs -f)
  std::size_t mark_size_ = 0;
  std::string buffered_;
};

// Where pfs-worker is: `configured` when set, else $PFS_WORKER, else next
// to the running program, else where `ninja install` puts it. Throws
// kUnsupported saying how to get it.
std::filesystem::path find_worker_binary(const std::filesystem::path& configured);

}  // namespace pfs::detail::jobs
