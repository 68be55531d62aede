// fault.h: fault injection for tests (leveldb's ErrorEnv is the model).
//
// PFS_FAULT=<ERRNO>@<N> (for example ENOSPC@3) makes the N-th fault point a
// process passes fail as a system call failing with that errno would. Fault
// points sit before every step that writes: each mutating Backend call
// (fault_backend.h wraps the backend) and each metadata file written. With
// PFS_FAULT unset a fault point costs one load of a flag.
#pragma once

#include <string_view>

namespace pfs::detail {

// True when PFS_FAULT names a plan (read once, at the first call).
bool faults_enabled();

// Counts one fault point; throws a Fail (the errno's code, `what` and the
// errno's text in the message) when it is the one the plan chose. `op` names
// the step (for PFS_FAULT_TRACE).
void fault_point(std::string_view op, std::string_view what);

}  // namespace pfs::detail
