// fault.h: fault injection for tests (leveldb's ErrorEnv is the model).
//
// PFS_FAULT=<ERRNO>@<N> (for example ENOSPC@3) makes the N-th fault point a
// process passes fail as a system call failing with that errno would
// (ERRNO: ENOSPC, EDQUOT, EIO, EROFS, EACCES, EPERM or EMFILE; anything else
// aborts the process with a message, since a test that asked for a fault must
// not pass without it). Fault points sit before every step that writes: each
// mutating Backend call (fault_backend.h wraps the backend) and each step of
// a metadata file written (fsutil.h write_file_atomic). PFS_FAULT_TRACE=1
// prints every point passed ("pfs fault point N: OP WHAT") to stderr, so a
// test can count the steps of an operation. With neither set a fault point
// costs one load of a flag.
#pragma once

#include <string_view>

namespace pfs::detail {

// True when PFS_FAULT names a plan or PFS_FAULT_TRACE=1 (read once, at the
// first call): then fault points are counted.
bool faults_enabled();

// Counts one fault point; when it is the one the plan chose, throws the Fail
// that fail_errno() would: the errno's code (code_of_errno) and the message
// "OP WHAT: <strerror> (<advice>)". `op` names the step ("publish", "write"),
// `what` the branch, commit or file it is about. Thread-safe.
void fault_point(std::string_view op, std::string_view what);

}  // namespace pfs::detail
