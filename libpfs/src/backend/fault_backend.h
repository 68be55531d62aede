// fault_backend.h: a Backend that passes every call to another one, with a
// fault point (fault.h) before each step that writes, so a test can fail any
// step of any write operation with ENOSPC, EIO or EDQUOT.
#pragma once

#include <memory>

#include "backend.h"

namespace pfs::detail {

// `backend` itself when PFS_FAULT is unset; otherwise it wrapped.
std::unique_ptr<Backend> with_faults(std::unique_ptr<Backend> backend);

}  // namespace pfs::detail
