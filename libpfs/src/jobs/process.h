// process.h: running the helper programs jobs need (the container engine
// to export images, the OCI runtime), without a shell.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace pfs::detail::jobs {

struct ProcessResult {
  int status = -1;        // the exit status; 128+N when killed by signal N
  std::string out, err;   // what it wrote (each cut at ProcessOptions::max_output)
  bool timed_out = false;
};

struct ProcessOptions {
  std::chrono::milliseconds timeout{120000};  // then SIGKILL
  std::size_t max_output = 1 << 20;           // bytes kept of stdout and of stderr
  // The child's stdout and stderr go here instead of being captured (-1: captured).
  int out_fd = -1;
  int err_fd = -1;  // the child's stderr goes here instead (-1: as stdout)
  int in_fd = -1;   // the child's stdin (-1: /dev/null)
};

// Runs argv[0] (looked up on PATH) with argv, stdin from /dev/null (or opts.in_fd).
// Throws kUnsupported when the program is not found (saying `install`
// is the package), kIo when it cannot be started.
ProcessResult run_process(const std::vector<std::string>& argv, const ProcessOptions& opts = {},
                          const char* install = nullptr);

// "podman save: <last line of stderr>": for error messages.
std::string describe_failure(const std::vector<std::string>& argv, const ProcessResult& r);

}  // namespace pfs::detail::jobs
