// fault.cc: the fault plan of PFS_FAULT (fault.h).
#include "fault.h"

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fsutil.h"

namespace pfs::detail {

namespace {

struct Plan {
  bool enabled = false;
  bool trace = false;
  int err = 0;
  std::uint64_t at = 0;  // the fault point that fails, counting from 1
};

// The errnos a plan may name: what a full or failing disk gives a writer.
int errno_named(std::string_view name) {
  if (name == "ENOSPC") return ENOSPC;
  if (name == "EDQUOT") return EDQUOT;
  if (name == "EIO") return EIO;
  if (name == "EROFS") return EROFS;
  if (name == "EACCES") return EACCES;
  if (name == "EPERM") return EPERM;
  if (name == "EMFILE") return EMFILE;
  return 0;
}

// NOTE: a malformed plan aborts the process: PFS_FAULT is a test-only knob,
// and a test that runs without the fault it asked for would pass for nothing.
[[noreturn]] void bad_plan(const char* value) {
  std::fprintf(stderr,
               "pfs: PFS_FAULT=\"%s\" is not a fault plan: write <ERRNO>@<N>, ERRNO one of ENOSPC, "
               "EDQUOT, EIO, EROFS, EACCES, EPERM, EMFILE and N >= 1 (e.g. ENOSPC@3)\n",
               value);
  std::abort();
}

Plan read_plan() {
  Plan p;
  const char* value = std::getenv("PFS_FAULT");
  const char* trace = std::getenv("PFS_FAULT_TRACE");
  p.trace = trace && std::strcmp(trace, "1") == 0;
  if (!value || !*value) {
    p.enabled = p.trace;  // tracing alone counts the points without failing one
    return p;
  }
  std::string_view v(value);
  std::size_t at = v.find('@');
  if (at == std::string_view::npos) bad_plan(value);
  p.err = errno_named(v.substr(0, at));
  std::string_view n = v.substr(at + 1);
  auto [end, ec] = std::from_chars(n.data(), n.data() + n.size(), p.at);
  if (p.err == 0 || ec != std::errc() || end != n.data() + n.size() || p.at == 0) bad_plan(value);
  p.enabled = true;
  return p;
}

const Plan& plan() {
  static const Plan p = read_plan();
  return p;
}

std::atomic<std::uint64_t> points_passed{0};

}  // namespace

bool faults_enabled() { return plan().enabled; }

void fault_point(std::string_view op, std::string_view what) {
  const Plan& p = plan();
  if (!p.enabled) return;
  std::uint64_t n = points_passed.fetch_add(1, std::memory_order_relaxed) + 1;
  bool fires = p.err != 0 && n == p.at;
  if (p.trace)
    std::fprintf(stderr, "pfs fault point %llu: %.*s %.*s%s\n", static_cast<unsigned long long>(n),
                 static_cast<int>(op.size()), op.data(), static_cast<int>(what.size()), what.data(),
                 fires ? " (fails)" : "");
  if (fires) fail_errno(p.err, std::string(op) + " " + std::string(what));
}

}  // namespace pfs::detail
