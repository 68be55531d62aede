// fault_backend.cc: the fault-injecting Backend wrapper (fault_backend.h).
#include "fault_backend.h"

#include "fault.h"

namespace pfs::detail {

std::unique_ptr<Backend> with_faults(std::unique_ptr<Backend> backend) { return backend; }

}  // namespace pfs::detail
